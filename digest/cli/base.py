"""What every command shares: the lazily loaded config and one-line error reporting."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

import click

from digest.config import Config, load_config
from digest.dates import parse_day
from digest.errors import DigestError


class Context:
    """What every command shares: the config, loaded on first use so --help needs none."""

    def __init__(self, config_file: str | None, debug: bool, log_format: str = "text") -> None:
        self.config_file = config_file
        self.debug = debug
        self.log_format = log_format
        self._config: Config | None = None

    @property
    def colour(self) -> bool:
        """Colour codes belong only on a terminal a person reads, never in a file or JSON."""
        return self.log_format == "text" and sys.stderr.isatty()

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_file)
        return self._config


class Day(click.ParamType):  # type: ignore[type-arg]  # generic only in click's stubs to come
    """A YYYY-MM-DD option; a wrong one is a usage error that says what is wrong with it."""

    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return parse_day(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class DigestGroup(click.Group):
    """Prints a DigestError as one line (no traceback unless --debug) and exits 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except DigestError as exc:
            if _debugging(ctx):
                raise
            for problem in exc.problems:
                click.secho(f"error: {problem}", fg="red", err=True)
            ctx.exit(1)
        except Exception as exc:
            if _debugging(ctx):
                raise
            click.secho(
                f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                fg="red",
                err=True,
            )
            ctx.exit(70)


def _debugging(ctx: click.Context) -> bool:
    return isinstance(ctx.obj, Context) and ctx.obj.debug


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Formatter(logging.Formatter):
    """Plain "warning: …" lines for people; times and logger names only with --debug."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


# Attributes every LogRecord has; anything else was passed in `extra=` and belongs in JSON.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def setup_logging(debug: bool, log_format: str = "text", level: int | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    elif debug or (level is not None and level <= logging.INFO):
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    else:
        handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # APScheduler narrates every run at INFO and warns of missed runs; digest logs both itself.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if debug else logging.ERROR)
    root.setLevel(logging.DEBUG if debug else level if level is not None else logging.WARNING)
