"""What `/api/preview` answers, declared once: the page's script (static/app.js) reads these keys.

Every answer carries the page's controls (``Controls``); then either the shown variant
(``Shown``, with ``error`` None) or why there is none (``Failed``).
"""

from __future__ import annotations

from typing import TypedDict

from digest.config import Config
from digest.errors import DigestError, TemplateError
from digest.preview.checks import GMAIL_CLIP, Check, run_checks
from digest.preview.model import Preview


class Problem(TypedDict):
    message: str  # with its hint, if any
    path: str | None
    line: int | None


class ErrorInfo(Problem):
    """The first problem (as before several were reported), the template if it is one, and all."""

    template: str | None
    problems: list[Problem]


class Size(TypedDict):
    bytes: int
    limit: int
    clipped: bool


class Window(TypedDict):
    start: str
    end: str


class EditionInfo(TypedDict):
    id: str
    timezone: str
    window: Window
    item_count: int


class Item(TypedDict):
    id: str
    title: str
    desk: str
    url: str
    new: bool


class RecipientInfo(TypedDict):
    email: str
    name: str
    unsubscribe_url: str


class SubscriberInfo(TypedDict):
    email: str
    name: str
    desks: list[str]
    status: str


class Controls(TypedDict):
    """In every answer: what the list picker and the desk boxes offer."""

    version: int
    lists: list[str]
    desks: list[str]
    list: str | None


class Failed(Controls):
    error: ErrorInfo


class Shown(Controls):
    date: str
    variant: str
    selected_desks: list[str]
    subject: str
    preheader: str
    headers: dict[str, str]
    text: str
    size: Size
    checks: list[Check]
    warnings: list[str]
    items: list[Item]
    new_count: int
    empty: bool
    error: None
    edition: EditionInfo
    recipient: RecipientInfo
    subscriber: SubscriberInfo | None
    demo_secret: bool
    transports: list[str]
    transport: str | None
    last_result: str | None
    held: str | None


def _problem(exc: DigestError) -> Problem:
    message = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
    return {"message": message, "path": str(exc.path) if exc.path else None, "line": exc.line}


def error_info(exc: BaseException) -> ErrorInfo:
    """Why there is no preview: the first problem (message, file, template, line) and all of them.

    A config with several mistakes reports each in ``problems``, with its line, as the CLI does.
    """
    if isinstance(exc, DigestError):
        template = str(exc.path) if isinstance(exc, TemplateError) and exc.path else None
        problems = [_problem(problem) for problem in exc.problems]
        return {**_problem(exc), "template": template, "problems": problems}
    unexpected: Problem = {"message": f"unexpected {type(exc).__name__}: {exc}", "path": None, "line": None}
    return {**unexpected, "template": None, "problems": [unexpected]}


def where(problem: Problem) -> str:
    """``path:line`` of a problem ("" when it has no file)."""
    return ":".join(str(part) for part in (problem["path"], problem["line"]) if part)


def controls(version: int, config: Config | None, list_name: str | None) -> Controls:
    """The lists, and the desks of the chosen list (default: the first)."""
    answer: Controls = {"version": version, "lists": [], "desks": [], "list": None}
    if config is None:
        return answer
    answer["lists"] = [m.name for m in config.settings.lists]
    chosen = next((m for m in config.settings.lists if m.name == (list_name or answer["lists"][0])), None)
    if chosen is not None:
        answer["list"] = chosen.name
        answer["desks"] = list(config.list_desks(chosen))
    return answer


def shown(base: Controls, preview: Preview, config: Config | None) -> Shown:
    """The answer showing ``preview``: the edition, its checks, headers and recipient."""
    edition, size, subscriber = preview.edition, preview.html_bytes, preview.subscriber
    mailing_list = config.mailing_list(preview.list_name) if config else None
    return {
        **base,
        "list": preview.list_name,
        "date": edition.date.isoformat(),
        "desks": list(preview.list_desks),
        "variant": preview.variant_label,
        "selected_desks": list(preview.selected_desks),
        "subject": preview.rendered.subject,
        "preheader": preview.rendered.preheader,
        "headers": dict(preview.headers),
        "text": preview.text,
        "size": {"bytes": size, "limit": GMAIL_CLIP, "clipped": size >= GMAIL_CLIP},
        "checks": run_checks(preview),
        "warnings": list(preview.warnings),
        "items": [
            {"id": item.id, "title": item.title, "desk": item.desk, "url": item.url, "new": item.new}
            for item in preview.items
        ],
        "new_count": preview.new_count,
        "empty": preview.empty,
        "error": None,
        "edition": {
            "id": edition.id,
            "timezone": edition.timezone,
            "window": {"start": edition.window.start.isoformat(), "end": edition.window.end.isoformat()},
            "item_count": len(edition.items),
        },
        "recipient": {
            "email": preview.recipient.email,
            "name": preview.recipient.name,
            "unsubscribe_url": preview.recipient.unsubscribe_url,
        },
        "subscriber": None
        if subscriber is None
        else {
            "email": subscriber.email,
            "name": subscriber.name,
            "desks": list(subscriber.desks or preview.list_desks),
            "status": subscriber.status,
        },
        "demo_secret": preview.demo_secret,
        "transports": list(config.settings.transports) if config else [],
        "transport": mailing_list.transport if mailing_list else None,
        "last_result": preview.last_result,
        "held": preview.held,
    }
