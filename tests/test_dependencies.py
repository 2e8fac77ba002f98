"""Every third-party package `digest/` imports is declared in pyproject.toml's dependencies.

A package that only arrives as another's dependency (werkzeug came with sendgrid) goes away
without warning the day that package stops needing it.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO


def declared() -> set[str]:
    """The distributions pyproject.toml's [project] dependencies name (canonical names)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {canonicalize_name(Requirement(line).name) for line in project["dependencies"]}


def _type_checking_only(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:``: imports there (typeshed's stubs) never run."""
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imported(path: Path) -> Iterator[tuple[str, int]]:
    """The top-level module of each absolute import in ``path``, with its line."""
    pending: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"), str(path))]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            yield from ((alias.name.partition(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0], node.lineno
        pending.extend(child for child in ast.iter_child_nodes(node) if not _type_checking_only(child))


def third_party_imports() -> Iterator[tuple[str, str]]:
    """(module, "file:line") for each import of `digest/` that is neither stdlib nor digest."""
    for path in sorted((REPO / "digest").rglob("*.py")):
        for module, line in sorted(imported(path), key=lambda found: found[1]):
            if module != "digest" and module not in sys.stdlib_module_names:
                yield module, f"{path.relative_to(REPO)}:{line}"


def test_every_third_party_import_of_digest_is_declared() -> None:
    wanted = declared()
    providers = packages_distributions()
    undeclared = [
        f"{where}: {module} (from {', '.join(providers.get(module, ['no installed distribution']))})"
        for module, where in third_party_imports()
        if not wanted & {canonicalize_name(dist) for dist in providers.get(module, [])}
    ]
    assert not undeclared, "imported but not in pyproject.toml dependencies:\n" + "\n".join(undeclared)


def test_the_check_sees_the_imports_that_came_only_through_other_packages() -> None:
    modules = {module for module, _where in third_party_imports()}
    assert {"werkzeug", "markupsafe", "python_http_client", "sqlalchemy"} <= modules
    assert "_typeshed" not in modules  # imported for type checkers only
