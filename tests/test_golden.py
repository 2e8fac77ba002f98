"""Golden editions: the example stories built at a fixed moment must match tests/golden/.

Volatile parts (MIME boundaries) are masked. After an intended change, regenerate with
``DIGEST_UPDATE_GOLDEN=1 make test`` and review the diff before committing.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pytest

from digest.build import build
from digest.config import Config
from tests.conftest import NOW

GOLDEN = Path(__file__).parent / "golden"
MASKS = [(re.compile(r"={15}\d+=="), "===============BOUNDARY==")]


def mask(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


@pytest.mark.parametrize("suffix", ["html", "txt", "json", "eml"])
def test_edition_matches_golden(config: Config, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / "out"
    build(config, out=out, now=NOW)
    actual = mask((out / f"daily.{suffix}").read_bytes().decode("utf-8").replace("\r\n", "\n"))
    golden = GOLDEN / f"daily.{suffix}"
    if os.environ.get("DIGEST_UPDATE_GOLDEN") == "1":
        golden.write_text(actual, encoding="utf-8", newline="\n")
    if not golden.exists():
        pytest.fail(f"{golden} is missing: run DIGEST_UPDATE_GOLDEN=1 make test to create it, then review it")
    expected = golden.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=str(golden),
                tofile="built",
                n=2,
            )
        )
        pytest.fail(
            f"daily.{suffix} differs from the golden file (DIGEST_UPDATE_GOLDEN=1 to accept):\n{diff[:6000]}"
        )
