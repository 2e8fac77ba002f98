"""Outputs are replaced all together or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.errors import OutputError
from digest.output import write_atomically


def test_all_files_are_replaced(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("old a")
    write_atomically({tmp_path / "a.txt": b"new a", tmp_path / "sub" / "b.txt": b"new b"})
    assert (tmp_path / "a.txt").read_text() == "new a"
    assert (tmp_path / "sub" / "b.txt").read_text() == "new b"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt", "b.txt", "sub"]


def test_a_failure_leaves_the_old_files_and_no_temporaries(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "blocked").write_text("a file where a folder is needed")
    with pytest.raises(OutputError, match="cannot write output"):
        write_atomically({tmp_path / "a.txt": b"new a", tmp_path / "blocked" / "b.txt": b"new b"})
    assert (tmp_path / "a.txt").read_text() == "old a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "blocked"]
