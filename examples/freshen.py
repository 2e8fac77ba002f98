"""Copy the example feeds, moving every date so the newest is 30 minutes ago.

Usage: python examples/freshen.py [--src examples/stories] [--dest examples/feeds]

The committed example stories carry fixed dates, so a digest built from them on
another day would find nothing recent. This copies every feed file (.xml, .rss,
.atom, .json) from --src to --dest, shifting each date by one common offset of
whole minutes so the newest date across all files lands 30 minutes before now.
Only the date text is rewritten (by regular expression), so each file keeps its
formatting and each date its format and UTC offset: RSS <pubDate> and
<lastBuildDate> (RFC 822), Atom <published> and <updated>, JSON Feed
"date_published" and "date_modified" (ISO 8601).
"""

import argparse
import os
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

FEED_SUFFIXES = {".xml", ".rss", ".atom", ".json"}
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Each pattern captures the date text in a group named "date".
RFC822_FIELD = re.compile(r"<(pubDate|lastBuildDate)>\s*(?P<date>[^<]+?)\s*</\1>")
ATOM_FIELD = re.compile(r"<(published|updated)>\s*(?P<date>[^<]+?)\s*</\1>")
JSON_FIELD = re.compile(r'"(date_published|date_modified)"\s*:\s*"(?P<date>[^"]+)"')

RFC822 = re.compile(
    r"(?:(?P<dow>[A-Za-z]{3}),\s*)?(?P<day>\d{1,2})\s+(?P<mon>[A-Za-z]{3})\s+(?P<year>\d{4})\s+"
    r"(?P<hm>\d{2}:\d{2})(?P<sec>:\d{2})?\s+(?P<zone>\S+)$"
)
ISO8601 = re.compile(
    r"(?P<stamp>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?)(?P<frac>\.\d+)?(?P<zone>Z|[+-]\d{2}:?\d{2})$"
)


def _aware(value: datetime) -> datetime:
    """Treat a naive datetime (RFC 822 "-0000") as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_rfc822(text: str) -> datetime:
    if not RFC822.match(text):
        raise ValueError(f"not an RFC 822 date: {text!r}")
    return _aware(parsedate_to_datetime(text))


def shift_rfc822(text: str, offset: timedelta) -> str:
    """Shift an RFC 822 date, keeping its zone token, seconds and weekday style."""
    m = RFC822.match(text)
    if not m:
        raise ValueError(f"not an RFC 822 date: {text!r}")
    new = parse_rfc822(text) + offset  # keeps the original fixed UTC offset
    day = f"{new.day:02d}" if len(m["day"]) == 2 else str(new.day)
    out = f"{day} {MONTHS[new.month - 1]} {new.year} {new:%H:%M}"
    out += f":{new:%S}" if m["sec"] else ""
    out = f"{DAYS[new.weekday()]}, {out}" if m["dow"] else out
    return f"{out} {m['zone']}"


def parse_iso(text: str) -> datetime:
    m = ISO8601.match(text)
    if not m:
        raise ValueError(f"not an ISO 8601 date with a UTC offset: {text!r}")
    zone = m["zone"].replace("Z", "+00:00")
    if ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    return datetime.fromisoformat(m["stamp"] + zone)


def shift_iso(text: str, offset: timedelta) -> str:
    """Shift an ISO 8601 date; fraction and zone text are kept verbatim."""
    m = ISO8601.match(text)
    if not m:
        raise ValueError(f"not an ISO 8601 date with a UTC offset: {text!r}")
    new = parse_iso(text) + offset
    stamp = new.strftime("%Y-%m-%dT%H:%M:%S" if m["stamp"].count(":") == 2 else "%Y-%m-%dT%H:%M")
    return stamp + (m["frac"] or "") + m["zone"]


FIELDS: list[tuple[re.Pattern[str], Callable[[str], datetime], Callable[[str, timedelta], str]]] = [
    (RFC822_FIELD, parse_rfc822, shift_rfc822),
    (ATOM_FIELD, parse_iso, shift_iso),
    (JSON_FIELD, parse_iso, shift_iso),
]


def find_dates(text: str) -> list[datetime]:
    """Every shiftable date in a feed's text, as aware datetimes."""
    return [parse(m["date"]) for pattern, parse, _ in FIELDS for m in pattern.finditer(text)]


def shift_text(text: str, offset: timedelta) -> str:
    """Return text with every shiftable date moved by offset."""
    for pattern, _, shift in FIELDS:

        def replace(m: re.Match[str], shift: Callable[[str, timedelta], str] = shift) -> str:
            start, end = m.start("date") - m.start(), m.end("date") - m.start()
            return m.group(0)[:start] + shift(m["date"], offset) + m.group(0)[end:]

        text = pattern.sub(replace, text)
    return text


def write_atomic(path: Path, text: str) -> None:
    """Write text to path via a temporary file in the same directory."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; feeds are meant to be readable
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=Path("examples/stories"))
    parser.add_argument("--dest", type=Path, default=Path("examples/feeds"))
    args = parser.parse_args(argv)

    sources = sorted(p for p in args.src.iterdir() if p.is_file() and p.suffix in FEED_SUFFIXES)
    texts = {p: p.read_bytes().decode("utf-8") for p in sources}
    dates = [d for text in texts.values() for d in find_dates(text)]
    if not dates:
        parser.error(f"no feed dates found in {args.src}")

    target = datetime.now(UTC) - timedelta(minutes=30)
    offset = timedelta(minutes=(target - max(dates)) // timedelta(minutes=1))
    args.dest.mkdir(parents=True, exist_ok=True)
    for path, text in texts.items():
        write_atomic(args.dest / path.name, shift_text(text, offset))

    hours = offset / timedelta(hours=1)
    print(f"freshen: wrote {len(texts)} feeds to {args.dest} ({len(dates)} dates shifted {hours:+.2f} h)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
