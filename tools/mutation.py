"""Mutation testing of digest's core modules: mutmut 3 on one module against its tests.

    .venv/bin/python tools/mutation.py [module ...]     (`make mutation` runs them all)

Each module runs in its own copy of the project (build/mutation/<name>/: mutmut mutates in a
`mutants/` folder there), against only the test files that exercise it, and the table in
docs/testing.md between the `mutation-table` markers is rewritten with the scores. The
survivors are listed in build/mutation/<name>/survivors.txt (`mutmut show <name>` in that
folder shows one).

mutmut picks the tests to run for a mutant by which tests reached its function in-process, so
code that only runs inside a spawned `digest` process (a kill, a scheduled send, two senders)
is never credited to those tests. The second pass ("spawned") takes each mutant the first left
alive and runs the module's process tests (SPAWNED) with it active: MUTANT_UNDER_TEST is in
the environment and PYTHONPATH puts the mutated copy first, so every `python -m digest` those
tests start runs the mutant. A mutant whose process tests fail or time out is killed there.
A module that runs in no spawned process of note has no SPAWNED entry and no second pass.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOC = ROOT / "docs" / "testing.md"
BEGIN, END = "<!-- mutation-table -->", "<!-- /mutation-table -->"

# Each module and the test files that exercise it.
# The ledger, its claims and its fill: one concept, one set of tests.
LEDGER_TESTS = [
    "tests/test_ledger.py",
    "tests/test_fill.py",
    "tests/test_ledger_guards.py",
    "tests/test_recording.py",
    "tests/test_state_backends.py",
    "tests/test_state.py",
    "tests/test_send.py",
    "tests/test_send_recipients.py",
    "tests/test_multi_sender.py",
]
# A subscriber file into the store: its reading, its stage and the rule against the readers.
IMPORT_TESTS = [
    "tests/test_import_stage.py",
    "tests/test_import_rule.py",
    "tests/test_store_subscribers.py",
]
MODULES: dict[str, list[str]] = {
    "digest/subscribers.py": [
        "tests/test_subscribers.py",
        "tests/test_subscriber_file_edges.py",
        *IMPORT_TESTS,
    ],
    "digest/state/import_stage.py": IMPORT_TESTS,
    "digest/state/imports.py": IMPORT_TESTS,
    "digest/edition/build.py": ["tests/test_edition.py", "tests/test_edition_timezone.py"],
    "digest/send/unsubscribe.py": ["tests/test_unsubscribe.py", "tests/test_address.py"],
    "digest/state/ledger.py": LEDGER_TESTS,
    "digest/state/claims.py": LEDGER_TESTS,
    "digest/state/recipients.py": LEDGER_TESTS,
    "digest/edition/lead.py": ["tests/test_lead.py", "tests/test_render.py"],
    "digest/brand.py": [
        "tests/test_brand.py",
        "tests/test_pages_brand.py",
        "tests/test_render.py",
        "tests/test_config_load.py",
        "tests/test_config.py",
    ],
}
# Each module and the test files whose spawned `digest` processes run it (the second pass).
SPAWNED: dict[str, list[str]] = {
    "digest/subscribers.py": ["tests/test_schedule_process.py", "tests/test_multi_sender.py"],
    "digest/edition/build.py": ["tests/test_schedule_process.py", "tests/test_cli.py"],
    "digest/send/unsubscribe.py": ["tests/test_demo_links.py", "tests/test_security_secrets.py"],
    "digest/state/ledger.py": [
        "tests/test_kill.py",
        "tests/test_multi_sender.py",
        "tests/test_schedule_process.py",
    ],
    "digest/state/claims.py": ["tests/test_kill.py", "tests/test_multi_sender.py"],
}
# Never copied into a run's folder.
SKIP = {
    ".git",
    ".venv",
    "node_modules",
    "build",
    "mutants",
    "outbox",
    "state",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
}


def prepare(module: str, work: Path) -> Path:
    folder = work / Path(module).stem
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    copied = []
    for entry in ROOT.iterdir():
        if entry.name in SKIP:
            continue
        copied.append(entry.name)
        if entry.is_dir():
            shutil.copytree(entry, folder / entry.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(entry, folder / entry.name)
    if (ROOT / "node_modules").exists():
        (folder / "node_modules").symlink_to(ROOT / "node_modules")
        copied.append("node_modules")
    tests = ", ".join(f'"{test}"' for test in MODULES[module])
    also = ", ".join(f'"{name}"' for name in copied if name not in {"digest", "tests", "pyproject.toml"})
    with (folder / "pyproject.toml").open("a", encoding="utf-8") as config:
        config.write(
            "\n[tool.mutmut]\n"
            'source_paths = ["digest"]\n'
            f'only_mutate = ["{module}"]\n'
            f"pytest_add_cli_args_test_selection = [{tests}]\n"
            'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
            f"also_copy = [{also}]\n"
        )
    return folder


def run(module: str, *, spawned: bool, work: Path) -> tuple[Counter[str], list[str], float]:
    folder = prepare(module, work)
    started = time.monotonic()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run([str(BIN / "mutmut"), "run"], cwd=folder, check=False, env=env)
    results = subprocess.run(
        [str(BIN / "mutmut"), "results", "--all", "true"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    statuses: dict[str, str] = {}
    for line in results.splitlines():
        match = re.match(r"\s*(\S+): (.+)$", line)
        if match:
            statuses[match[1]] = match[2].strip()
    if spawned:
        spawned_pass(module, folder, statuses)
    survivors = [name for name, status in statuses.items() if status == "survived"]
    (folder / "survivors.txt").write_text("".join(f"{name}\n" for name in survivors), encoding="utf-8")
    return Counter(statuses.values()), survivors, time.monotonic() - started


def spawned_pass(module: str, folder: Path, statuses: dict[str, str]) -> None:
    """Run the module's process tests against each mutant the first pass left alive."""
    alive = [name for name, status in statuses.items() if status in {"survived", "no tests"}]
    tests = SPAWNED.get(module, [])
    if not alive or not tests:
        return
    took = _spawned_tests(folder, tests, "")
    if took is None:
        sys.exit(f"the process tests fail without a mutant: {' '.join(tests)}")
    # What `python -m digest` imports from any folder, with the environment the tests pass on.
    where = subprocess.run(
        [str(BIN / "python"), "-c", "import digest; print(digest.__file__)"],
        cwd=Path(tempfile.gettempdir()),
        env=_spawned_env(folder, ""),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(where).is_relative_to(folder / "mutants"):
        sys.exit(f"a spawned `digest` would run {where}, not the mutated copy")
    for count, name in enumerate(alive, start=1):
        print(f"spawned pass {count}/{len(alive)}: {name}", flush=True)
        # Killed only when the tests fail twice: a race under load fails once, a mutant every time.
        if all(_spawned_tests(folder, tests, name, timeout=3 * took + 60) is None for _ in range(2)):
            statuses[name] = "killed (spawned)"


def _spawned_env(folder: Path, mutant: str) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(folder / "mutants"),
        "MUTANT_UNDER_TEST": mutant,
    }


def _spawned_tests(folder: Path, tests: list[str], mutant: str, timeout: float = 1800) -> float | None:
    """Seconds the tests took, or None when one failed or they ran out of time."""
    command = [str(BIN / "python"), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=folder / "mutants",
            env=_spawned_env(folder, mutant),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    return time.monotonic() - started if done.returncode == 0 else None


def table_row(module: str, statuses: Counter[str], elapsed: float) -> str:
    total = sum(statuses.values())
    spawned = statuses["killed (spawned)"]
    killed = statuses["killed"] + statuses["timeout"] + statuses["segfault"] + spawned
    checked = total - statuses["not checked"]
    score = f"{100 * killed / checked:.1f}%" if checked else "n/a"
    if checked < total:  # an interrupted run: the score is of the mutants it got to
        score += f" of {checked} checked"
    others = ", ".join(
        f"{status} {count}"
        for status, count in sorted(statuses.items())
        if status not in {"killed", "survived", "killed (spawned)"}
    )
    cells = [
        f"`{module}`",
        total,
        killed,
        spawned if module in SPAWNED else "-",
        statuses["survived"],
        score,
        others or "-",
        f"{elapsed / 60:.0f} min",
    ]
    return "| " + " | ".join(map(str, cells)) + " |"


def write_table(rows: dict[str, str]) -> None:
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else f"# Testing\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    old, _, tail = rest.partition(END)
    kept = {line.split("|")[1].strip(): line for line in old.splitlines() if line.startswith("| `")}
    kept.update({f"`{module}`": row for module, row in rows.items()})
    lines = [
        "| module | mutants | killed | of which in spawned processes | survived | score | other | time |",
        "|---|---|---|---|---|---|---|---|",
        *(kept[key] for key in sorted(kept)),
    ]
    DOC.write_text(f"{head}{BEGIN}\n" + "\n".join(lines) + f"\n{END}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"default: all of them ({', '.join(MODULES)})")
    parser.add_argument(
        "--no-spawned", action="store_true", help="skip the second pass (quicker; the table is not written)"
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "build" / "mutation",
        help="where each module's copy goes (default build/mutation; another lets two runs share a machine)",
    )
    args = parser.parse_args()
    modules = args.modules or list(MODULES)
    unknown = [module for module in modules if module not in MODULES]
    if unknown:
        parser.error(f"not one of the modules in MODULES: {', '.join(unknown)}")
    rows = {}
    for module in modules:
        statuses, survivors, elapsed = run(module, spawned=not args.no_spawned, work=args.work.resolve())
        rows[module] = table_row(module, statuses, elapsed)
        print(rows[module])
        print(f"survivors ({len(survivors)}):", *survivors, sep="\n  ")
    if not args.no_spawned:
        write_table(rows)


if __name__ == "__main__":
    main()
