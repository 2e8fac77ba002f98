"""Validation errors → problems in the newsroom's words, each pointing at its key.

pydantic speaks Python ("Input should be a valid tuple"); an editor reading config.toml wants
"must be a list of desk names, not "Ukraine"", and, for a misspelled key, the one it meant.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from digest.errors import ConfigError
from digest.tomlpos import Loc, TomlPositions


@dataclass(frozen=True)
class Expects:
    """Field metadata: what the key holds, in plain words, for its wrong-type message."""

    what: str


class Problem(NamedTuple):
    """One mistake in config.toml: the key it is about (which gives the line) and what is wrong."""

    loc: Loc
    message: str
    hint: str | None = None
    # What the message is prefixed with, when not the key itself (an unknown key's table).
    label: str | None = None
    # Logged when the config is loaded, not refused (a DKIM key under the recommended size).
    warning: bool = False

    def error(self, path: str | os.PathLike[str], positions: TomlPositions) -> ConfigError:
        """This problem as a ConfigError at its line: ``path:line: key: message``."""
        label = dotted(self.loc) if self.label is None else self.label
        return ConfigError(
            f"{label}: {self.message}" if label else self.message,
            path=os.fspath(path),
            line=positions.line_of(self.loc),
            hint=self.hint,
        )


# What a value of the wrong type should have been, by pydantic's error type.
_EXPECTED = {
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "text",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "list_type": "a list",
    "tuple_type": "a list",
}

# Range and length errors: their bound (from the error's context) in words.
_BOUNDS = {
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "string_too_short": "must be at least {min_length} characters long",
    "string_too_long": "must be at most {max_length} characters long",
}


def dotted(loc: Loc) -> str:
    """``("feeds", 1, "desk")`` → ``feeds[1].desk``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def shown(value: object) -> str:
    """A value as config.toml spells it (``true``, ``"8"``), or what it is when it is long."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dt.date | dt.time):
        return "a date" if isinstance(value, dt.date) else "a time"
    return repr(value)


def problems_from(exc: ValidationError, model: type[BaseModel], prefix: Loc = ()) -> list[Problem]:
    """Every error of ``exc`` (raised validating ``model`` at ``prefix``) as a Problem.

    A required key missing because it is misspelled is left out: the unknown key's
    suggestion says it. So is "must not be empty" for a list whose items are all wrong.
    """
    errors = [(_clean(error["loc"]), error) for error in exc.errors()]
    meant = {
        (*loc[:-1], suggestion)
        for loc, error in errors
        if error["type"] == "extra_forbidden"
        for suggestion in _closest(loc, model)
    }
    wrong = [loc for loc, error in errors if error["type"] != "too_short"]
    problems = []
    for loc, error in errors:
        if error["type"] == "missing" and loc in meant:
            continue
        if error["type"] == "too_short" and any(other[: len(loc)] == loc for other in wrong):
            continue
        problems.append(_describe(loc, error, model, prefix))
    return problems


def _clean(loc: Iterable[str | int]) -> Loc:
    # pydantic adds the member of a union ("tuple[str, ...]", "function-after[…]") to locations.
    return tuple(part for part in loc if not (isinstance(part, str) and "[" in part))


def _describe(loc: Loc, error: Mapping[str, Any], model: type[BaseModel], prefix: Loc) -> Problem:
    kind = error["type"]
    where = (*prefix, *_untagged(loc, model))
    if kind == "extra_forbidden":
        return _unknown(loc, error["input"], model, prefix)
    context = error.get("ctx") or {}
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        # pydantic names the table; the mistake is its key that picks the member (`backend`).
        key = context["discriminator"].strip("'")
        if kind == "union_tag_not_found":
            return Problem((*where, key), "required key is missing")
        tags = [tag.replace("'", '"') for tag in context["expected_tags"].split(", ")]
        choices = f"{', '.join(tags[:-1])} or {tags[-1]}" if len(tags) > 1 else tags[0]
        return Problem((*where, key), f"must be {choices}, not {shown(error['input'].get(key))}")
    annotation, field = _target(model, loc)
    if kind == "missing":
        section = _section(where, annotation)
        if section:
            return Problem(where, f"required section {section} is missing", label="")
        return Problem(where, "required key is missing")
    if context.get("error") is not None:  # a ValueError of ours: already in plain words
        return Problem(where, str(context["error"]))
    got = shown(error.get("input"))
    if kind == "literal_error":  # the choices as config.toml spells them: "smtp", not 'smtp'
        choices = context["expected"].replace("'", '"')
        return Problem(where, f"must be {choices}, not {got}")
    expects = _expects(annotation, field)
    if kind in _EXPECTED:
        return Problem(where, f"must be {expects or _EXPECTED[kind]}, not {got}")
    if kind == "string_pattern_mismatch":
        return Problem(where, f"must be {expects or 'text matching ' + context['pattern']}, not {got}")
    if kind in ("too_short", "string_too_short") and context.get("min_length") == 1:
        return Problem(where, "must not be empty")
    if kind in _BOUNDS:
        return Problem(where, _BOUNDS[kind].format(**context))
    return Problem(where, f"{error['msg']} (got {got})")


def _unknown(loc: Loc, value: object, model: type[BaseModel], prefix: Loc) -> Problem:
    """An unknown key or section, with the known one it most resembles (or all of them)."""
    where = (*prefix, *_untagged(loc, model))
    meant = _closest(loc, model)
    if isinstance(value, Mapping) or (isinstance(value, list) and value and isinstance(value[0], Mapping)):
        brackets = "[{}]" if isinstance(value, Mapping) else "[[{}]]"
        section = brackets.format(_name(where))
        suggestion = brackets.format(_name((*where[:-1], meant[0]))) if meant else None
        return Problem(where, f"unknown section {section}{_suggest(suggestion, loc, model)}", label="")
    suggestion = repr(meant[0]) if meant else None
    key = f"unknown key {loc[-1]!r}{_suggest(suggestion, loc, model)}"
    return Problem(where, key, label=dotted(where[:-1]))


def _suggest(suggestion: str | None, loc: Loc, model: type[BaseModel]) -> str:
    if suggestion:
        return f": did you mean {suggestion}?"
    return f" (known here: {', '.join(_known(loc, model))})"


def _name(loc: Loc) -> str:
    """A table's name as its header spells it: ``desks.categories``, ``feeds``."""
    return ".".join(part for part in loc if isinstance(part, str))


def _section(loc: Loc, annotation: Any) -> str | None:
    """``[desks]`` or ``[[feeds]]`` when ``annotation`` is a table or tables, else None."""
    inner = _unwrap(annotation)
    if get_origin(inner) is tuple:
        return f"[[{_name(loc)}]]" if _is_table(_unwrap(get_args(inner)[0])) else None
    return f"[{_name(loc)}]" if _is_table(inner) else None


def _is_table(annotation: Any) -> bool:
    return get_origin(annotation) is dict or (
        isinstance(annotation, type) and issubclass(annotation, BaseModel)
    )


def _known(loc: Loc, model: type[BaseModel]) -> list[str]:
    table = _unwrap(_target(model, loc[:-1])[0])
    return list(table.model_fields) if isinstance(table, type) and issubclass(table, BaseModel) else []


def _closest(loc: Loc, model: type[BaseModel]) -> list[str]:
    name = loc[-1] if loc else None
    return difflib.get_close_matches(name, _known(loc, model), n=1) if isinstance(name, str) else []


def _target(model: type[BaseModel], loc: Loc) -> tuple[Any, FieldInfo | None]:
    """The type found at ``loc`` inside ``model``, and its field when ``loc`` ends at one."""
    annotation: Any = model
    field = None
    for part in loc:
        inner = _unwrap(annotation)
        member = _member(inner, part)
        if member is not None:
            annotation, field = member, None
        elif isinstance(inner, type) and issubclass(inner, BaseModel) and isinstance(part, str):
            field = inner.model_fields.get(part)
            if field is None:
                return None, None
            annotation = field.annotation
        elif get_origin(inner) in (tuple, list, dict):
            annotation, field = get_args(inner)[-1 if get_origin(inner) is dict else 0], None
        else:
            return None, None
    return annotation, field


def _member(annotation: Any, tag: str | int) -> type[BaseModel] | None:
    """The model of a tagged union (``A | B``, told apart by a Literal key) that ``tag`` names.

    pydantic puts the tag in an error's location (``transports.mail.smtp.port``) to say which
    member it validated against.
    """
    if get_origin(annotation) not in (Union, types.UnionType) or not isinstance(tag, str):
        return None
    for member in get_args(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            literals = [
                f.annotation for f in member.model_fields.values() if get_origin(f.annotation) is Literal
            ]
            if any(tag in get_args(literal) for literal in literals):
                return member
    return None


def _untagged(loc: Loc, model: type[BaseModel]) -> Loc:
    """``loc`` as config.toml spells it: without the tags of tagged unions."""
    return tuple(
        part
        for index, part in enumerate(loc)
        if _member(_unwrap(_target(model, loc[:index])[0]), part) is None
    )


def _unwrap(annotation: Any) -> Any:
    """``X`` from ``Annotated[X, …]`` and from ``X | None``."""
    if get_origin(annotation) is Annotated:
        return _unwrap(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _unwrap(members[0]) if len(members) == 1 else annotation
    return annotation


def _expects(annotation: Any, field: FieldInfo | None) -> str | None:
    """The Expects of a field, or of the type of an item or value inside one."""
    # pydantic moves a field's Annotated metadata to the field; an item's type keeps its own,
    # and an optional field (``Timezone | None``) keeps its alias's inside the union.
    metadata = [*(field.metadata if field else ()), *getattr(annotation, "__metadata__", ())]
    if get_origin(annotation) in (Union, types.UnionType):
        for member in get_args(annotation):
            metadata += getattr(member, "__metadata__", ())
    return next((item.what for item in metadata if isinstance(item, Expects)), None)
