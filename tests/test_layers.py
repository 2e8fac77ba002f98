"""digest.state is the bottom layer: it imports records and types, never the stages above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import digest

STATE = Path(digest.__file__).parent / "state"
ABOVE = (
    "digest.render",
    "digest.ingest",
    "digest.send",
    "digest.cli",
    "digest.config",
    "digest.edition",
    "digest.preview",
    "digest.schedule",
)


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, including those inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted(STATE.glob("*.py")), ids=lambda path: path.name)
def test_state_imports_nothing_from_the_stages_above(path: Path) -> None:
    wrong = [
        f"{path.name}:{line}: {module}"
        for line, module in imported(path)
        if any(module == layer or module.startswith(f"{layer}.") for layer in ABOVE)
    ]
    assert not wrong, "digest.state must not import the stages above it:\n" + "\n".join(wrong)


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from digest.config import Config\n")
    assert imported(module) == [(2, "digest.config.Config")]
