"""Reading config.toml: every problem found at once, each with its line."""

from __future__ import annotations

import logging
import os
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from digest import logos
from digest.config.checks import check, resolve
from digest.config.models import MailingList, Settings, slugify
from digest.config.problems import Problem, problems_from
from digest.errors import ConfigError
from digest.tomlpos import Loc, TomlPositions

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "config.toml"
DEFAULT_TEMPLATES = "templates"


class Config:
    """Validated settings plus where they came from, for resolving relative paths."""

    def __init__(self, settings: Settings, path: Path, positions: TomlPositions) -> None:
        self.settings = settings
        self.path = path
        self.root = path.parent
        self._positions = positions

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        return resolve(self.root, relative)

    @property
    def templates(self) -> Path | None:
        """The newsroom's templates folder, whose files override the packaged templates.

        ``[render] templates``, else a ``templates/`` folder beside config.toml; None when the
        config names none and there is none there (an /etc/digest/config.toml): the packaged
        templates then serve alone.
        """
        named = self.settings.render.templates
        if named is not None:
            return self.resolve(named)
        beside = self.root / DEFAULT_TEMPLATES
        return beside if beside.is_dir() else None

    def error(self, loc: Loc, message: str, hint: str | None = None) -> ConfigError:
        """A ConfigError pointing at the line of ``loc`` in the config file."""
        return Problem(loc, message, hint).error(self.path, self._positions)

    def mailing_list(self, name: str) -> MailingList:
        for mailing_list in self.settings.lists:
            if mailing_list.name == name:
                return mailing_list
        names = ", ".join(m.name for m in self.settings.lists)
        raise ConfigError(f"no list named {name!r} in {self.path} (lists: {names})")

    def subscriber_file(self, mailing_list: MailingList) -> Path | None:
        """The list's subscriber CSV, resolved; None for a list of web sign-ups only."""
        return self.resolve(mailing_list.subscribers) if mailing_list.subscribers else None

    def list_desks(self, mailing_list: MailingList) -> tuple[str, ...]:
        """The list's desks (all when it names none) in the newsroom's ``[desks] order``."""
        chosen = mailing_list.desks
        return tuple(desk for desk in self.settings.desks.order if chosen is None or desk in chosen)

    def list_timezone(self, mailing_list: MailingList) -> str:
        return mailing_list.timezone or self.settings.newsroom.timezone

    def logo_files(self) -> dict[str, Path]:
        """The logo files `digest serve` publishes (``digest.logos``), by their published name."""
        newsroom = self.settings.newsroom
        sources = (newsroom.logo_url, newsroom.logo_dark_url)
        return {logos.published_name(s): self.resolve(s) for s in sources if s and logos.is_file(s)}

    def desk_url(self, desk: str) -> str:
        links = self.settings.desks.links
        if desk in links:
            return links[desk]
        return f"{self.settings.newsroom.site_url}/{quote(slugify(desk))}"


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config, else $DIGEST_CONFIG, else ./config.toml."""
    return Path(explicit or os.environ.get("DIGEST_CONFIG") or DEFAULT_CONFIG)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a config file.

    Raises one ConfigError carrying every problem found (``problems``), each naming its key
    and line, in the order of the file.
    """
    file = config_path(path).expanduser()
    text = _read(file)
    data = _parse(text, file)
    positions = TomlPositions(text)
    problems: list[Problem] = []
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems += problems_from(exc, Settings)
    problems += check(data, file.resolve().parent)
    for warning in [problem for problem in problems if problem.warning]:
        log.warning("%s", warning.error(file, positions))
    problems = [problem for problem in problems if not problem.warning]
    if problems or settings is None:
        errors = [problem.error(file, positions) for problem in problems]
        # In the file's order; a problem with no line of its own (a missing table) comes last.
        errors.sort(key=lambda error: (error.line is None, error.line or 0))
        raise ConfigError.of(errors)
    return Config(settings, file.resolve(), positions)


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "config file not found",
            path=file,
            hint="pass --config PATH, set DIGEST_CONFIG, or run from the folder holding config.toml",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file: {exc}", path=file) from None


def _parse(text: str, file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.14 gives the position as attributes; earlier versions only in the text.
        found = re.search(r"\(at line (\d+), column \d+\)$", str(exc))
        line = getattr(exc, "lineno", None) or (int(found.group(1)) if found else None)
        message = getattr(exc, "msg", None) or (str(exc)[: found.start()].strip() if found else str(exc))
        raise ConfigError(f"not valid TOML: {message}", path=file, line=line) from None
