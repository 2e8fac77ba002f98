"""What an import of a subscriber file did, and how an import tells files and rows apart."""

from __future__ import annotations

import hashlib
import heapq
import json
from dataclasses import dataclass, field
from pathlib import Path

from digest.errors import SubscriberError
from digest.subscribers import MAX_PROBLEMS, Problem, Subscriber


@dataclass
class ImportReport:
    """What an import did; ``skipped`` when the file had not changed since the last one."""

    list_name: str
    path: Path
    skipped: bool = False
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    kept: int = 0
    invalid: int = 0
    duplicates: int = 0
    forgotten: int = 0
    pending: int = 0  # rows saying "pending" for an address the store does not have
    removal_held: int = 0  # readers gone from a file with bad rows: kept until it is fixed
    problems: list[Problem] = field(default_factory=list)  # the earliest lines' (MAX_PROBLEMS)
    problems_omitted: int = 0
    # The kept problems' lines, latest first (-line, index in ``problems``): a first import tells
    # its duplicates and forgotten rows once the file is read, after the other bad rows.
    _latest: list[tuple[int, int]] = field(default_factory=list, repr=False, compare=False)

    @property
    def bad(self) -> int:
        return self.invalid + self.duplicates

    def keep(self, problem: Problem) -> None:
        """Keep ``problem`` if it is among the MAX_PROBLEMS earliest lines told so far (in
        place of the latest kept one), and count the one left out."""
        if len(self.problems) < MAX_PROBLEMS:
            heapq.heappush(self._latest, (-problem.line, len(self.problems)))
            self.problems.append(problem)
            return
        self.problems_omitted += 1
        latest, index = self._latest[0]
        if problem.line < -latest:
            self.problems[index] = problem
            heapq.heapreplace(self._latest, (-problem.line, index))

    def describe(self) -> str:
        where = f"{self.list_name} ({self.path})"
        if self.skipped:
            return f"{where}: unchanged since the last import; nothing to do"
        line = (
            f"{where}: {self.new:,} new, {self.changed:,} changed by the file, {self.unchanged:,} unchanged, "
            f"{self.removed:,} removed, {self.kept:,} kept by the reader's choice, {self.bad:,} bad rows"
            f" ({self.duplicates:,} duplicates)"
        )
        if self.forgotten or self.pending:
            line += f", {self.forgotten:,} forgotten and {self.pending:,} unconfirmed sign-ups not imported"
        if self.removal_held:
            line += (
                f"; {self.removal_held:,} readers gone from the file are kept until its bad rows are fixed"
            )
        return line


def fingerprint(path: Path, list_desks: tuple[str, ...]) -> str:
    """The file's SHA-256 (streamed) and the list's desks, which decide what its rows mean."""
    digest = hashlib.sha256(json.dumps(list_desks).encode() + b"\n")
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        hint = "check the list's `subscribers` path in config.toml and that the file is readable"
        raise SubscriberError(f"cannot open the file: {exc.strerror or exc}", path=path, hint=hint) from None
    return digest.hexdigest()


def row_hash(row: Subscriber) -> str:
    """The row as the file says it (its address folded, its desks as the list spells them)."""
    # Unit and record separators cannot be in a cell that passed the reader (one line, no
    # control characters in a desk name), so no two different rows give the same text.
    desks = "\x00" if row.desks is None else "\x1e".join(row.desks)
    values = "\x1f".join((row.key, row.name, desks, row.status))
    return hashlib.blake2b(values.encode("utf-8"), digest_size=16).hexdigest()
