"""One exception tree: every error a user can act on is a DigestError.

Each carries where it happened (a file and line, a feed, a template) so the CLI can print
one line that says what is wrong, where, and how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class DigestError(Exception):
    """Base of every expected failure; the CLI prints it without a traceback."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.hint = hint

    def where(self) -> str:
        if self.path is None:
            return ""
        return f"{self.path}:{self.line}" if self.line else str(self.path)

    def __str__(self) -> str:
        text = self.message
        where = self.where()
        if where:
            text = f"{where}: {text}"
        if self.hint:
            text = f"{text} ({self.hint})"
        return text

    @property
    def problems(self) -> tuple[DigestError, ...]:
        """The separate problems this error reports; the CLI prints each on a line of its own."""
        return (self,)


class ConfigError(DigestError):
    """config.toml is missing, malformed, or names something that does not exist.

    One error may carry several problems (``problems``, each a ConfigError with its line):
    it then reads as the first (``message``, ``line``) and prints one problem per line.
    """

    _several: tuple[ConfigError, ...] = ()

    @classmethod
    def of(cls, problems: Sequence[ConfigError]) -> ConfigError:
        """One error reporting every one of ``problems`` (at least one)."""
        if len(problems) == 1:
            return problems[0]
        first = problems[0]
        error = cls(first.message, path=first.path, line=first.line, hint=first.hint)
        error._several = tuple(problems)
        return error

    @property
    def problems(self) -> tuple[ConfigError, ...]:
        return self._several or (self,)

    def __str__(self) -> str:
        return "\n".join(DigestError.__str__(problem) for problem in self.problems)


class FeedError(DigestError):
    """A feed could not be fetched or parsed; the edition goes on without it.

    ``transient`` marks what may pass by itself (a timeout, a dropped connection, a 5xx, a
    429): `digest send` tries such a feed again before the edition freezes without it.
    """

    def __init__(self, message: str, *, transient: bool = False, **where: object) -> None:
        super().__init__(message, **where)  # type: ignore[arg-type]
        self.transient = transient


class TemplateError(DigestError):
    """A template failed to compile or render (jinja2 or MJML)."""


class StateError(DigestError):
    """The state database is unreadable, corrupted, or from a newer version."""


class NoStateError(StateError):
    """A reader (the preview) found no digest state where the config points: nothing to read yet."""


class OutputError(DigestError):
    """An output file could not be written."""


class TransportError(DigestError):
    """A transport cannot send at all (no server, bad credentials, a request it refused)."""


class SubscriberError(DigestError):
    """A subscriber file cannot be read at all (individual bad rows are only reported)."""


class SpamAssassinError(DigestError):
    """SpamAssassin could not score a message: it timed out, failed, or gave no verdict."""


class SpamAssassinMissing(SpamAssassinError):
    """perl, or its Mail::SpamAssassin module, is not installed."""
