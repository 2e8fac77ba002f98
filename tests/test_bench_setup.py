"""`make bench` starts from projects shaped like the repository's: each must still load when
config.toml changes (its logos became files next to it, and the build bench stopped there)."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent.parent / "bench"


def bench_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_build_bench_project_loads_and_renders(tmp_path: Path) -> None:
    build = bench_module("bench_build")
    now = dt.datetime(2026, 11, 25, 6, 0, tzinfo=dt.UTC)
    config = build.setup(tmp_path, now)
    assert Path(str(config.settings.newsroom.logo_url)).is_file()  # the repository's own
    times, html, text, stories = build.bench(config, now, 1)
    assert stories == 40 and set(times) >= {"parse", "premailer", "render_edition (total)"}
    assert "</html>" in html and text.strip()


def test_the_import_bench_imports_again_after_names_changed(tmp_path: Path) -> None:
    # The "again" stage must time an import that compares rows with stored readers: one whose
    # file changed a few names, not a first import or one skipped as unchanged.
    subscribers = bench_module("bench_subscribers")
    path = tmp_path / "list.csv"
    kinds = subscribers.write_list(path, 2_500)
    with subscribers.new_store() as store:
        first = subscribers.import_into(store, path)
        again = subscribers.import_into(store, subscribers.with_names_changed(path, every=1000))
    assert first["new"] == kinds["valid"] and "changed" not in first
    assert again["new"] == 0 and again["changed"] == 2  # rows 1,000 and 2,000
