"""The README documents every command and every configuration key, and keeps its two commands."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from pydantic import BaseModel

from digest.cli import cli
from digest.config import Settings
from tests.test_cli import commands

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def config_keys(model: type[BaseModel], table: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        nested = next((t for t in inner if isinstance(t, type) and issubclass(t, BaseModel)), None)
        if nested is not None and not table:
            keys += config_keys(nested, name)
        elif table:
            keys.append(f"{table} {name}")
    return keys


@pytest.mark.parametrize("key", config_keys(Settings))
def test_every_config_key_is_in_the_reference(key: str) -> None:
    table, name = key.split()
    pattern = rf"`\[{{1,2}}{re.escape(table)}(\.<name>)?\]{{1,2}} {re.escape(name)}`"
    assert re.search(pattern, README) or f"[{table}.{name}]" in README, f"README lacks {key}"


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


# Groups (`digest subscribers`) are documented through their commands, each checked here.
LEAF_COMMANDS = [p for p in commands(cli) if p and not isinstance(_command(p), click.Group)]


@pytest.mark.parametrize("path", LEAF_COMMANDS, ids=" ".join)
def test_every_command_is_in_the_readme(path: tuple[str, ...]) -> None:
    assert f"`digest {' '.join(path)}" in README


def test_quick_start_has_the_two_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^make \w+", quick, re.M) == ["make demo", "make test"]


def backend_options() -> list[tuple[str, str]]:
    from digest.config import BACKENDS

    return [
        (name, option)
        for name, backend in BACKENDS.items()
        for option in backend.options.model_fields
        if option != "backend"  # the key that picks the backend: documented as [transports.<name>] backend
    ]


@pytest.mark.parametrize(("backend", "option"), backend_options(), ids=lambda v: str(v))
def test_every_transport_option_is_in_the_reference(backend: str, option: str) -> None:
    rows = [line for line in README.splitlines() if line.startswith(f"| `{backend}` |")]
    assert any(f"`{option}`" in row.split("|")[2] for row in rows), f"README lacks {backend} {option}"


def test_nothing_reads_outside_the_repository() -> None:
    """A clone in any folder passes `make test`: no file the build or tests use reaches for a
    sibling folder (such as a `shared` folder beside the clone); what they need is in the repository."""
    root = Path(__file__).resolve().parent.parent
    sibling = re.compile(r"\.\.[/\\]shared|parent\s*/\s*[\"']shared[\"']|parent\.parent\s*/\s*[\"']shared")
    files = [root / "Makefile", root / ".ci" / "run"]
    files += [
        path for folder in ("digest", "tests", "bench", "examples") for path in (root / folder).rglob("*.py")
    ]
    found = [
        str(path.relative_to(root)) for path in files if sibling.search(path.read_text(encoding="utf-8"))
    ]
    assert found == []
    assert (root / "tests" / "sendgrid-oai" / "tsg_mail_v3.yaml").is_file()
    assert "MIT License" in (root / "tests" / "sendgrid-oai" / "LICENSE").read_text(encoding="utf-8")
