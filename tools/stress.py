"""Run the timing-sensitive suites again and again while the whole test suite loads the machine.

    .venv/bin/python tools/stress.py [--runs 20]          (`make stress`)

The schedule, kill and multi-sender tests race real processes against real servers; a bound
that only holds on an idle machine is a flaky test. This runs them ``--runs`` times in a row
while the full suite (`pytest`, as `make test` runs it) runs beside them, over and over until
they are done, and stops at the first failure with its output. The result goes into the
stress table of docs/testing.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOC = ROOT / "docs" / "testing.md"
BEGIN, END = "<!-- stress-table -->", "<!-- /stress-table -->"
SUITES = [
    "tests/test_schedule.py",
    "tests/test_schedule_process.py",
    "tests/test_kill.py",
    "tests/test_multi_sender.py",
]


def pytest(*args: str) -> list[str]:
    return [str(BIN / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    # The load: the whole suite, started again each time it ends, in a process group of its own.
    load = subprocess.Popen(
        ["bash", "-c", f"while :; do {' '.join(pytest())} >/dev/null 2>&1; done"],
        cwd=ROOT,
        start_new_session=True,
    )
    times: list[float] = []
    try:
        for run in range(1, runs + 1):
            started = time.monotonic()
            done = subprocess.run(pytest(*SUITES), cwd=ROOT, capture_output=True, text=True, check=False)
            times.append(time.monotonic() - started)
            print(
                f"run {run}/{runs}: {'passed' if done.returncode == 0 else 'FAILED'} in {times[-1]:.0f} s",
                flush=True,
            )
            if done.returncode != 0:
                print(done.stdout[-6000:], done.stderr[-3000:], sep="\n")
                record(f"failed on run {run} of {runs}", times)
                sys.exit(1)
            if run < runs:  # so an interrupted run still says how far it got
                record(f"{run} of {runs} passed (stopped before the rest)", times)
    finally:
        os.killpg(load.pid, 15)
        load.wait()
    record(f"{runs} of {runs} passed", times)


def record(outcome: str, times: list[float]) -> None:
    row = (
        f"| {dt.date.today()} | {', '.join(Path(suite).name for suite in SUITES)} | {outcome} | "
        f"{min(times):.0f}–{max(times):.0f} s per run | {os.cpu_count()} cores |"
    )
    print(row)
    text = DOC.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _old, _, tail = rest.partition(END)
    table = "| date | suites | outcome | time | machine |\n|---|---|---|---|---|\n" + row
    DOC.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
