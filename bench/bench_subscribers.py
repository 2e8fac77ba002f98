"""Time and peak memory of reading, checking and importing big subscriber lists: memory must stay flat.

Writes two synthetic CSVs into a temp folder (``--rows`` rows and a tenth of that; by default
1,000,000 and 100,000): desks chosen from the five of `config.toml`, a few names and addresses
with non-ASCII letters, ~0.2% duplicate addresses in another case, ~1% invalid rows. Each file
is read in a fresh subprocess, once with `read_subscribers` to the end, once with
`check_subscribers`, once imported with `import_subscribers` into a new SQLite store (the
first import of a list, as `digest send` does it), and once imported again after a name changed
in one row of a thousand ("again": the import of any later day whose file changed, which
compares each row with its stored reader; the first import is not timed), so the peak RSS
(`ru_maxrss`) belongs to that one size and stage. Nothing touches the network: email-validator
only checks syntax. ``--postgresql``: the imports go into a store on a local PostgreSQL server
(Debian's, as in the tests, but syncing to disk), a new database for each run.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import itertools
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digest.state import Store

DESKS = ("Ukraine", "North America", "Business", "Europe", "Culture")
FIRST = ["Olha", "James", "Sofie", "Dmytro", "Priya", "Lúcia", "Jürgen", "Aisha", "Søren", "Zoë", "Олена"]
LAST = ["Marchenko", "Whitaker", "Lindqvist", "Savchuk", "Raman", "Ferreira", "Hoffmann", "Коваль", "Dubois"]
DOMAINS = ["example.org", "example.com", "example.net", "news.example.org"]
STAGES = ("read", "check", "import", "again")
BROKEN = [
    lambda address: address.replace("@", "."),  # no @
    lambda address: address.replace(".", " ", 1),  # a space
    lambda address: address.replace("@", "@@"),  # two @
]


def address(n: int) -> str:
    """The n-th subscriber's address, computed rather than remembered so duplicates cost nothing."""
    if n % 97 == 0:  # some SMTPUTF8 local parts and IDN domains, the slow path of email-validator
        return f"jürgen.{n}@bücher.example"
    return f"{FIRST[n % len(FIRST)].lower()}.{n}@{DOMAINS[n % len(DOMAINS)]}"


def write_list(path: Path, rows: int, seed: int = 7) -> dict[str, int]:
    """Write ``rows`` data rows to ``path``; return how many of each kind were written."""
    rng = random.Random(seed)
    kinds = {"valid": 0, "duplicate": 0, "invalid": 0}
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["email", "name", "desks", "status"])
        for n in range(rows):
            email = address(n)
            kind = "valid"
            roll = rng.random()
            if roll < 0.002 and n > 0:
                email, kind = address(rng.randrange(n)).upper(), "duplicate"
            elif roll < 0.012:
                kind = "invalid"
                email = rng.choice(BROKEN)(email) if roll < 0.009 else email
            kinds[kind] += 1
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}" if rng.random() < 0.9 else ""
            picked = rng.sample(DESKS, rng.randint(1, 3)) if rng.random() < 0.7 else []
            if kind == "invalid" and email == address(n):
                picked.append("Sport")  # a desk the list does not have
            status = rng.choice(["active", "", "", "Active"]) if rng.random() < 0.95 else "unsubscribed"
            out.writerow([email, name, ";".join(picked), status])
    return kinds


def child(stage: str, path: Path) -> None:
    """Run one stage over one file and print its time and memory as JSON (in a fresh process)."""
    from digest.subscribers import Problem, check_subscribers, read_subscribers

    with contextlib.ExitStack() as setup:  # the store, closed once its import is measured
        store = setup.enter_context(new_store()) if stage in ("import", "again") else None
        if store is not None and stage == "again":
            import_into(store, path)
            path = with_names_changed(path, every=1000)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start, cpu = time.perf_counter(), cpu_seconds()
        if stage == "read":
            counts = {"subscribers": 0, "problems": 0}
            for entry in read_subscribers(path, DESKS):
                counts["problems" if isinstance(entry, Problem) else "subscribers"] += 1
        elif store is not None:
            counts = import_into(store, path)
        else:
            report = check_subscribers(path, DESKS)
            counts = {"rows": report.rows, "invalid": report.invalid, "duplicates": report.duplicates}
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"seconds": seconds, "cpu": cpu, "base_kib": base, "peak_kib": peak, "counts": counts}))


def cpu_seconds() -> float:
    """CPU seconds of this process and of the children it waited for (a large file's import
    reads it in a second process: digest.readahead)."""
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


@contextlib.contextmanager
def new_store() -> Iterator[Store]:
    """A new store: in the database ``DIGEST_BENCH_DATABASE`` names, else in a SQLite file of a
    temporary folder."""
    from digest.state import Store

    with tempfile.TemporaryDirectory(prefix="digest-bench-store-") as folder:
        url = os.environ.get("DIGEST_BENCH_DATABASE") or f"sqlite:///{folder}/state.sqlite3"
        with Store(url).migrate() as store:
            yield store


def import_into(store: Store, path: Path) -> dict[str, int]:
    """Import ``path`` as the bench list's file; the report's counts."""
    from digest.state.imports import import_subscribers

    report = import_subscribers(store, "bench", path, DESKS, now=dt.datetime.now(dt.UTC))
    counts = {"new": report.new, "invalid": report.invalid, "duplicates": report.duplicates}
    return counts | ({"changed": report.changed} if report.changed else {})


def with_names_changed(path: Path, every: int) -> Path:
    """A copy of the list whose every ``every``-th row has another name (as editors change a few)."""
    changed = path.with_name(f"{path.stem}-changed.csv")
    with (
        path.open(encoding="utf-8", newline="") as source,
        changed.open("w", encoding="utf-8", newline="") as out,
    ):
        writer = csv.writer(out)
        for n, row in enumerate(csv.reader(source)):
            writer.writerow([row[0], f"{row[1]} Jr", *row[2:]] if n and n % every == 0 else row)
    return changed


def measure(stage: str, path: Path, database: str | None = None) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", stage, str(path)]
    env = {**os.environ, "DIGEST_BENCH_DATABASE": database or ""}
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout)


@contextlib.contextmanager
def databases(postgresql: bool) -> Iterator[Iterator[str | None]]:
    """A new database's URL for each run: on a local PostgreSQL server, else None (SQLite)."""
    if not postgresql:
        yield itertools.repeat(None)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pgserver import PostgresServer

    server = PostgresServer(fsync=True).start()
    try:
        yield (server.create_database(f"bench_{n}") for n in itertools.count())
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=1_000_000, metavar="N", help="rows in the big file (default 1,000,000)"
    )
    parser.add_argument(
        "--stages", nargs="+", choices=STAGES, default=STAGES, help="the stages to run (default all)"
    )
    parser.add_argument(
        "--postgresql", action="store_true", help="import into a local PostgreSQL server, not SQLite"
    )
    parser.add_argument("--child", nargs=2, metavar=("STAGE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0
    if args.rows < 10:
        parser.error("--rows must be at least 10")
    cpu = platform.processor() or platform.machine()
    print(f"machine: {platform.platform()}, {cpu}, {os.cpu_count()} CPUs")
    print(f"python:  {platform.python_implementation()} {sys.version.split()[0]}, ", end="")
    print(f"email-validator {version('email-validator')}, SQLite {__import__('sqlite3').sqlite_version}\n")
    # CPU seconds beside the wall's: on a machine busy with other work they are the steadier.
    print(f"{'rows':>10} {'stage':<6}{'seconds':>9}{'CPU s':>7}{'rows/s':>9}{'peak RSS MiB':>14}", end="")
    print(f"{'growth MiB':>12}  counts")
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as folder, databases(args.postgresql) as urls:
        for rows in (args.rows // 10, args.rows):
            path = Path(folder) / f"list-{rows}.csv"
            kinds = write_list(path, rows)
            size = path.stat().st_size / 2**20
            for stage in args.stages:
                result = measure(stage, path, next(urls) if stage in ("import", "again") else None)
                seconds, used = float(result["seconds"]), float(result["cpu"])  # type: ignore[arg-type]
                peak, base = int(result["peak_kib"]), int(result["base_kib"])  # type: ignore[call-overload]
                print(
                    f"{rows:>10,} {stage:<6}{seconds:>9.1f}{used:>7.1f}{rows / seconds:>9,.0f}"
                    f"{peak / 1024:>14.1f}{(peak - base) / 1024:>12.1f}  {result['counts']}"
                )
            print(f"{'':>10} file {size:.1f} MiB, written as {kinds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
