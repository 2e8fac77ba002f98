"""Mutation testing of digest's exactly-once core: mutmut 3 on one module against its tests.

    .venv/bin/python tools/mutation.py [module ...]     (`make mutation` runs all four)

Each module runs in its own copy of the project (build/mutation/<name>/: mutmut mutates in a
`mutants/` folder there), against only the test files that exercise it, and the table in
docs/testing.md between the `mutation-table` markers is rewritten with the scores. The
survivors are listed in build/mutation/<name>/survivors.txt (`mutmut show <name>` in that
folder shows one). Not yet here: the second pass issue 16 asks for, which runs the mutated
code inside the spawned `digest` commands.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOC = ROOT / "docs" / "testing.md"
BEGIN, END = "<!-- mutation-table -->", "<!-- /mutation-table -->"

# Each module and the test files that exercise it.
MODULES: dict[str, list[str]] = {
    "digest/subscribers.py": [
        "tests/test_subscribers.py",
        "tests/test_subscriber_file_edges.py",
        "tests/test_store_subscribers.py",
    ],
    "digest/edition/build.py": ["tests/test_edition.py", "tests/test_edition_timezone.py"],
    "digest/send/unsubscribe.py": ["tests/test_unsubscribe.py", "tests/test_address.py"],
    "digest/state/ledger.py": [
        "tests/test_ledger_guards.py",
        "tests/test_state_backends.py",
        "tests/test_state.py",
        "tests/test_send.py",
        "tests/test_multi_sender.py",
    ],
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


def prepare(module: str) -> Path:
    folder = ROOT / "build" / "mutation" / Path(module).stem
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


def run(module: str) -> tuple[Counter[str], list[str], float]:
    folder = prepare(module)
    started = time.monotonic()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run([str(BIN / "mutmut"), "run"], cwd=folder, check=False, env=env)
    elapsed = time.monotonic() - started
    results = subprocess.run(
        [str(BIN / "mutmut"), "results", "--all", "true"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    statuses: Counter[str] = Counter()
    survivors = []
    for line in results.splitlines():
        match = re.match(r"\s*(\S+): (.+)$", line)
        if match:
            statuses[match[2].strip()] += 1
            if match[2].strip() == "survived":
                survivors.append(match[1])
    (folder / "survivors.txt").write_text("".join(f"{name}\n" for name in survivors), encoding="utf-8")
    return statuses, survivors, elapsed


def table_row(module: str, statuses: Counter[str], elapsed: float) -> str:
    total = sum(statuses.values())
    killed = statuses["killed"] + statuses["timeout"] + statuses["segfault"]
    checked = total - statuses["not checked"]
    score = f"{100 * killed / checked:.1f}%" if checked else "n/a"
    if checked < total:  # an interrupted run: the score is of the mutants it got to
        score += f" of {checked} checked"
    others = ", ".join(
        f"{status} {count}"
        for status, count in sorted(statuses.items())
        if status not in {"killed", "survived"}
    )
    cells = [
        f"`{module}`",
        total,
        killed,
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
        "| module | mutants | killed | survived | score | other | time |",
        "|---|---|---|---|---|---|---|",
        *(kept[key] for key in sorted(kept)),
    ]
    DOC.write_text(f"{head}{BEGIN}\n" + "\n".join(lines) + f"\n{END}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"default: all four ({', '.join(MODULES)})")
    modules = parser.parse_args().modules or list(MODULES)
    unknown = [module for module in modules if module not in MODULES]
    if unknown:
        parser.error(f"not one of the four modules: {', '.join(unknown)}")
    rows = {}
    for module in modules:
        statuses, survivors, elapsed = run(module)
        rows[module] = table_row(module, statuses, elapsed)
        print(rows[module])
        print(f"survivors ({len(survivors)}):", *survivors, sep="\n  ")
    write_table(rows)


if __name__ == "__main__":
    main()
