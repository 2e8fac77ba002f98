"""An edition's results as editors read them: a text block, a JSON object, or one line."""

from __future__ import annotations

from typing import Any

from digest.report import table
from digest.results import BOUNCE_LINE, COMPLAINT_LINE, EditionResults

NOT_REPORTED = "not reported"


def percent(rate: float | None, digits: int = 2) -> str:
    """0.0042 → "0.42%"; no denominator (nothing sent) → "-"."""
    return "-" if rate is None else f"{rate * 100:.{digits}f}%"


def _against(rate: float | None, line: float) -> str:
    if rate is None:
        return "nothing sent"
    return "OVER the line" if rate >= line else "under the line"


def one_line(results: EditionResults) -> str:
    """e.g. "sent 9,812 · bounces 0.4% · complaints 0.01% · clicks 312" (jobs, the preview)."""
    clicks = NOT_REPORTED if results.clicks is None else f"{results.clicks:,}"
    return (
        f"sent {results.sent:,} · bounces {percent(results.bounce_rate, 1)} · "
        f"complaints {percent(results.complaint_rate)} · clicks {clicks}"
    )


def _reported(value: int | None, label: str) -> str:
    return f"{label} {NOT_REPORTED}" if value is None else f"{label} {value:,}"


def format_text(results: EditionResults) -> str:
    """The report of one edition, for a terminal."""
    r = results
    base = "delivered" if r.delivered is not None else "sent (deliveries not reported)"
    unsubscribes = ", ".join(f"{source} {count:,}" for source, count in r.unsubscribes.items())
    lines = [
        f"{r.edition_id} (list {r.list_name})",
        f"  recipients {r.recipients:,}: sent {r.sent:,}, failed {r.failed:,}",
        f"  {_reported(r.delivered, 'delivered')}, hard bounces {r.hard_bounces:,}, "
        f"soft bounces {r.soft_bounces:,}, dropped {r.dropped:,}, complaints {r.complaints:,}",
        f"  unsubscribes {r.unsubscribed:,} ({unsubscribes})",
    ]
    if r.clicks is None:
        lines.append(
            f"  opens {NOT_REPORTED}, clicks {NOT_REPORTED} (no provider reports them for this edition)"
        )
    else:
        lines.append(
            f"  opened by {r.opens or 0:,}, clicks {r.clicks:,} (by {r.click_readers or 0:,} readers)"
        )
    lines += [
        f"  complaint rate {percent(r.complaint_rate)} of {base}: "
        f"{_against(r.complaint_rate, COMPLAINT_LINE)} ({percent(COMPLAINT_LINE, 1)}, Gmail's)",
        f"  bounce rate {percent(r.bounce_rate)} (hard bounces of sent): "
        f"{_against(r.bounce_rate, BOUNCE_LINE)} ({percent(BOUNCE_LINE, 0)})",
    ]
    if r.clicks is not None:
        lines += ["", "  clicks per desk:"]
        lines += _indent(table(["DESK", "CLICKS"], [[d.desk, f"{d.clicks:,}"] for d in r.desks]))
        if r.other_clicks:
            lines.append(f"    (and {r.other_clicks:,} on other links: archive, preferences, …)")
        lines += ["", f"  top {len(r.top_stories)} stories by clicks:"]
        rows = [
            [str(n), f"{s.clicks:,}", f"{s.readers:,}", s.desk, s.title]
            for n, s in enumerate(r.top_stories, 1)
        ]
        lines += _indent(table(["#", "CLICKS", "READERS", "DESK", "STORY"], rows)) if rows else ["    none"]
    return "\n".join(lines)


def _indent(text: str) -> list[str]:
    return [f"    {line}" for line in text.splitlines()]


def as_json(results: EditionResults) -> dict[str, Any]:
    """The report of one edition as JSON; figures no source reports are null."""
    r = results
    return {
        "edition": r.edition_id,
        "list": r.list_name,
        "date": r.date.isoformat() if r.date else None,
        "recipients": r.recipients,
        "sent": r.sent,
        "failed": r.failed,
        "delivered": r.delivered,
        "hard_bounces": r.hard_bounces,
        "soft_bounces": r.soft_bounces,
        "dropped": r.dropped,
        "complaints": r.complaints,
        "unsubscribes": dict(r.unsubscribes),
        "opens": r.opens,
        "clicks": r.clicks,
        "click_readers": r.click_readers,
        "clicks_per_desk": {d.desk: d.clicks for d in r.desks} if r.clicks is not None else None,
        "other_clicks": r.other_clicks,
        "top_stories": [
            {"title": s.title, "url": s.url, "desk": s.desk, "clicks": s.clicks, "readers": s.readers}
            for s in r.top_stories
        ],
        "complaint_rate": r.complaint_rate,
        "complaint_rate_of": "delivered" if r.delivered is not None else "sent",
        "complaint_line": COMPLAINT_LINE,
        "bounce_rate": r.bounce_rate,
        "bounce_line": BOUNCE_LINE,
    }
