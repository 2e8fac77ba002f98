"""Find the line of a key in a TOML file, so config errors can say where to look.

``tomllib`` returns plain data without positions; this scanner walks the text once and
records the line of every table header and key, addressed the way pydantic reports an
error's location (``("feeds", 2, "desk")``).
"""

from __future__ import annotations

import re

Loc = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_\-.]+)\s*=""")


def _split_dotted(name: str) -> list[str]:
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([^.\s]+)', name)
    return [quoted or literal or bare for quoted, literal, bare in parts]


class TomlPositions:
    """Line numbers (1-based) of the tables and keys of one TOML document."""

    def __init__(self, text: str) -> None:
        self._lines: dict[Loc, int] = {}
        counts: dict[tuple[str, ...], int] = {}
        table: Loc = ()
        depth = 0  # open brackets of a multi-line value: its lines hold no keys
        for number, line in enumerate(text.splitlines(), start=1):
            if depth > 0:
                depth += line.count("[") - line.count("]")
                continue
            header = _HEADER.match(line)
            if header:
                names = tuple(_split_dotted(header.group(2)))
                if header.group(1) == "[[":
                    index = counts.get(names, 0)
                    counts[names] = index + 1
                    table = (*names, index)
                else:
                    table = self._resolve(names, counts)
                self._lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                loc = (*table, *_split_dotted(key.group(1)))
                self._lines.setdefault(loc, number)
                value = line[key.end() :]
                depth = max(0, value.count("[") - value.count("]"))

    @staticmethod
    def _resolve(names: tuple[str, ...], counts: dict[tuple[str, ...], int]) -> Loc:
        """``[feeds.options]`` after ``[[feeds]]`` belongs to the latest feed."""
        for cut in range(len(names), 0, -1):
            prefix = names[:cut]
            if prefix in counts:
                return (*prefix, counts[prefix] - 1, *names[cut:])
        return names

    def line_of(self, loc: Loc) -> int | None:
        """The line of ``loc``, or of the nearest enclosing key or table that has one."""
        for cut in range(len(loc), 0, -1):
            line = self._lines.get(tuple(loc[:cut]))
            if line is None and 0 in loc[:cut]:
                # A key that takes one table or an array of them (``dkim``), written as one
                # table: validation numbers it 0, the file does not.
                line = self._lines.get(tuple(part for part in loc[:cut] if part != 0))
            if line is not None:
                return line
        return None
