"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo

from digest.model import FeedResult


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column is left ragged."""
    rows = [list(map(str, row)) for row in rows]
    widths = [max([len(headers[i])] + [len(row[i]) for row in rows]) for i in range(len(headers) - 1)]

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
        return "  ".join([*padded, cells[-1]]).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def feed_table(results: Iterable[FeedResult], zone: ZoneInfo) -> str:
    rows = []
    details = []
    for result in results:
        newest = result.newest
        count = len(result.warnings)
        rows.append(
            [
                result.source,
                result.status,
                str(len(result.items)),
                f"{newest.astimezone(zone):%Y-%m-%d %H:%M}" if newest else "-",
                str(count) if count else "-",
            ]
        )
        details.extend(f"{result.source}: {warning}" for warning in result.warnings)
    text = table(["FEED", "STATUS", "ITEMS", "NEWEST", "WARNINGS"], rows)
    if details:
        text += "\n\nWarnings:\n" + "\n".join(f"- {detail}" for detail in details)
    return text
