"""Checks beyond one key's type: names that must match across tables, and the files named.

They run on whatever validated, even when other keys did not, so that one load reports
every problem: a feed's unknown desk is found next to a misspelled ``[fetch]`` key.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from digest import logos
from digest.config.models import Desks, Feed, MailingList, Newsroom, Render, find_feed
from digest.config.problems import Problem
from digest.tomlpos import Loc

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class _Tables:
    """The tables of a config as far as they validated: None for one that did not."""

    desks: Desks | None
    feeds: tuple[Feed | None, ...]
    lists: tuple[MailingList | None, ...]
    # The aliases defined, whether or not their options are right (those have problems of their own).
    transports: Collection[str]
    render: Render | None
    newsroom: Newsroom | None

    @classmethod
    def salvage(cls, data: Mapping[str, Any]) -> _Tables:
        transports = data.get("transports")
        return cls(
            desks=_salvage(Desks, data.get("desks")),
            feeds=tuple(_salvage(Feed, raw) for raw in _array(data.get("feeds"))),
            lists=tuple(_salvage(MailingList, raw) for raw in _array(data.get("lists"))),
            transports=set(transports) if isinstance(transports, Mapping) else set(),
            render=_salvage(Render, data.get("render", {})),
            newsroom=_salvage(Newsroom, data.get("newsroom")),
        )


def _array(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _salvage(model: type[Model], raw: object) -> Model | None:
    """``raw`` as ``model`` without its wrong keys (their defaults instead), or None."""
    if not isinstance(raw, Mapping):
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        wrong = {error["loc"][0] for error in exc.errors() if error["loc"]}
    try:
        return model.model_validate({key: value for key, value in raw.items() if key not in wrong})
    except ValidationError:
        return None  # a required key is wrong: its own error is reported


def check(data: Mapping[str, Any], root: Path, env: Mapping[str, str] | None = None) -> list[Problem]:
    """The problems of ``data`` (parsed config.toml) that its models cannot see on their own.

    ``root`` is the config file's folder, against which relative paths are resolved; ``env``
    (default: the process's environment) holds the keys that key_env settings name.
    """
    tables = _Tables.salvage(data)
    return [
        *_desk_names(tables),
        *_list_references(tables),
        *_files(tables, root),
        *_logo_files(tables.newsroom, root),
        *_dkim_keys(data, root, os.environ if env is None else env),
    ]


def unknown_desk(desk: str, order: tuple[str, ...]) -> str:
    return f"desk {desk!r} is not in [desks] order ({', '.join(order)}); add it there or fix the name"


def _desk_names(tables: _Tables) -> list[Problem]:
    """Every desk named in [desks.categories], [desks.links], feeds and lists is in the order."""
    if tables.desks is None:
        return []  # without a valid order there is nothing to check names against
    order = tables.desks.order
    named: list[tuple[tuple[str | int, ...], str]] = [
        *((("desks", "categories", category), desk) for category, desk in tables.desks.categories.items()),
        *((("desks", "links", desk), desk) for desk in tables.desks.links),
        *((("feeds", index, "desk"), feed.desk) for index, feed in enumerate(tables.feeds) if feed),
        *(
            (("lists", index, "desks"), desk)
            for index, mailing_list in enumerate(tables.lists)
            if mailing_list
            for desk in mailing_list.desks or ()
        ),
    ]
    return [Problem(loc, unknown_desk(desk, order)) for loc, desk in named if desk not in order]


def _list_references(tables: _Tables) -> list[Problem]:
    """Each list's name is unique, and its required feeds and its transport exist."""
    problems = []
    feeds = [feed for feed in tables.feeds if feed]
    seen: set[str] = set()
    for index, mailing_list in enumerate(tables.lists):
        if mailing_list is None:
            continue
        if mailing_list.name in seen:
            problems.append(Problem(("lists", index, "name"), f"list {mailing_list.name!r} is defined twice"))
        seen.add(mailing_list.name)
        # A feed that did not validate may be the one named: only a complete set can say "none".
        unknown = [ref for ref in mailing_list.required_feeds if find_feed(feeds, ref) is None]
        if unknown and len(feeds) == len(tables.feeds):
            labels = ", ".join(repr(feed.label) for feed in feeds)
            problems += [
                Problem(
                    ("lists", index, "required_feeds"),
                    f"no feed named {reference!r} (feeds: {labels}); use a feed's name or source",
                )
                for reference in unknown
            ]
        if mailing_list.transport not in tables.transports:
            problems.append(
                Problem(
                    ("lists", index, "transport"),
                    f"transport {mailing_list.transport!r} is not defined; "
                    f"add a [transports.{mailing_list.transport}] table",
                )
            )
    return problems


def _files(tables: _Tables, root: Path) -> list[Problem]:
    """The feed files, subscriber files and templates folder the config names exist."""
    problems = []
    for index, feed in enumerate(tables.feeds):
        if feed and not feed.is_remote and not resolve(root, feed.source).is_file():
            problems.append(
                Problem(
                    ("feeds", index, "source"),
                    f"feed file {feed.source!r} not found (looked in {resolve(root, feed.source)})",
                    hint="fix the path (relative to config.toml) or use an http(s) URL"
                    + (
                        "; run `make demo` to generate the example feeds"
                        if "examples/" in feed.source
                        else ""
                    ),
                )
            )
    for index, mailing_list in enumerate(tables.lists):
        if (
            mailing_list
            and mailing_list.subscribers
            and not resolve(root, mailing_list.subscribers).is_file()
        ):
            problems.append(
                Problem(
                    ("lists", index, "subscribers"),
                    f"subscriber file {mailing_list.subscribers!r} not found",
                    hint="create it with a header row `email,name,desks,status`",
                )
            )
    templates = tables.render.templates if tables.render else None
    if templates is not None and not resolve(root, templates).is_dir():
        problems.append(Problem(("render", "templates"), f"templates folder {templates!r} not found"))
    return problems


def _logo_files(newsroom: Newsroom | None, root: Path) -> list[Problem]:
    """The logo files config.toml names can be published: found, small, the image they say."""
    problems = []
    for key in ("logo_url", "logo_dark_url"):
        source = getattr(newsroom, key, None)
        if source and logos.is_file(source) and (message := logos.problem(source, resolve(root, source))):
            size = f"{logos.MAX_BYTES // 1024} KB"
            hint = f"name a PNG, JPEG or GIF under {size} (relative to config.toml), or its https URL"
            problems.append(Problem(("newsroom", key), message, hint=hint))
    return problems


def resolve(root: Path, relative: str) -> Path:
    """A path from the config, relative to the config file's folder ``root``."""
    return (root / Path(relative).expanduser()).resolve()


def _dkim_keys(data: Mapping[str, Any], root: Path, env: Mapping[str, str]) -> list[Problem]:
    """Every DKIM key an SMTP transport names can sign: read, parsed, strong enough.

    A key_env that is not set is no problem here: commands that send nothing (build, preview,
    serve) need no key, and the SMTP transport refuses to start without it.
    """
    transports = data.get("transports")
    problems: list[Problem] = []
    for alias, table in transports.items() if isinstance(transports, Mapping) else ():
        if not isinstance(table, Mapping) or table.get("backend") != "smtp":
            continue
        raw = table.get("dkim")
        for index, signer in enumerate([raw] if isinstance(raw, Mapping) else _array(raw)):
            # A single [transports.x.dkim] table has its keys' lines without an index.
            where = ("transports", alias, "dkim", *((index,) if isinstance(raw, list) else ()))
            if isinstance(signer, Mapping):
                problems += _dkim_key(signer, where, root, env)
    return problems


def _dkim_key(signer: Mapping[str, Any], where: Loc, root: Path, env: Mapping[str, str]) -> list[Problem]:
    # Imported here: reading a config without DKIM never loads the cryptography libraries.
    from digest.dkimkey import RECOMMENDED_RSA_BITS, KeyProblem, load_key

    key_file, key_env = signer.get("key_file"), signer.get("key_env")
    if isinstance(key_file, str) and key_file and key_env is None:
        loc, what, path = (*where, "key_file"), f"key file {key_file!r}", resolve(root, key_file)
        try:
            key_bytes = path.read_bytes()
        except FileNotFoundError:
            message = f"{what} not found (looked in {path})"
            return [Problem(loc, message, hint=f"fix the path (relative to config.toml); {_MAKE_KEY}")]
        except OSError as exc:
            return [Problem(loc, f"cannot read {what}: {exc.strerror or exc}")]
    elif isinstance(key_env, str) and key_env and key_file is None and env.get(key_env):
        loc, what, key_bytes = (*where, "key_env"), f"${key_env}", env[key_env].encode("utf-8", "replace")
    else:
        return []  # no key, both, or a wrong type: the model reports it
    try:
        key = load_key(key_bytes)
    except KeyProblem as exc:
        return [Problem(loc, f"{what} {exc}", hint=_MAKE_KEY)]
    if key.weak:
        message = f"{what} is an RSA key of {key.bits} bits; RFC 8301 asks for {RECOMMENDED_RSA_BITS}"
        return [Problem(loc, message, hint="some receivers may ignore the signature", warning=True)]
    return []


_MAKE_KEY = "make one with `openssl genrsa -out dkim-rsa.pem 2048` or `dknewkey --ktype ed25519 dkim-ed`"
