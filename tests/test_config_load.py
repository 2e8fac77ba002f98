"""config.toml: valid files load, paths resolve against the config file, values are checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from digest.config import load_config, slugify
from digest.errors import ConfigError
from tests.conftest import MakeProject


def test_loads_the_shipped_config_reference() -> None:
    # The repository's own config.toml must stay valid (examples/feeds comes from `make demo`).
    repo = Path(__file__).resolve().parent.parent
    try:
        config = load_config(repo / "config.toml")
    except ConfigError as exc:
        # Only the example feeds may be missing: any other problem is a mistake in the file.
        assert all("make demo" in str(problem) for problem in exc.problems), exc
        return
    assert config.settings.desks.order[0] == "Ukraine"


def test_paths_resolve_relative_to_the_config_file(config) -> None:
    assert config.resolve("feeds/world.xml") == config.root / "feeds" / "world.xml"
    assert config.list_timezone(config.mailing_list("daily")) == "Europe/Kyiv"
    assert config.desk_url("North America") == "https://news.example.org/north-america"
    # A name without Latin letters keeps its own (percent-encoded in the URL), so two such
    # desks do not share a link.
    assert (
        config.desk_url("Культура")
        == "https://news.example.org/%D0%BA%D1%83%D0%BB%D1%8C%D1%82%D1%83%D1%80%D0%B0"
    )


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("North America", "north-america"),
        ("Arts & Culture", "arts-culture"),
        ("100% Culture", "100-culture"),
        ("Économie & Finance", "economie-finance"),  # accents dropped, not the letters they sit on
        ("Zürich", "zurich"),
        ("Україна / Ukraine", "ukraine"),  # Latin where there is some
        ("Культура 2026", "культура-2026"),
        ("Ελλάδα", "ελλάδα"),
        ("الاقتصاد", "الاقتصاد"),
        ("كِتَاب", "كِتَاب"),  # its vowel marks are part of the word
        ("हिन्दी समाचार", "हिन्दी-समाचार"),
        ("日本 経済", "日本-経済"),
        ("2026", "2026"),
        ("a_b", "a-b"),
        ("!!!", "desk"),
    ],
)
def test_a_desk_slug_is_latin_where_the_name_is_else_in_its_own_script(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_missing_config_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DIGEST_CONFIG"):
        load_config(tmp_path / "absent.toml")


def test_config_path_from_environment(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_CONFIG", str(project))
    assert load_config().path == project.resolve()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://digest:hunter2@db.example.org/digest", "PGPASSWORD"),
        ("mysql://db.example.org/digest", "SQLite"),
        ("not a url", "not a database URL"),
    ],
)
def test_state_url_is_checked(make_project: MakeProject, url: str, message: str) -> None:
    path = make_project(replace={'url = "sqlite:///state/digest.sqlite3"': f'url = "{url}"'})
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert "hunter2" not in str(caught.value)
    assert caught.value.line == next(
        n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith("url =")
    )


def test_loose_spellings_that_stay_fine(make_project: MakeProject) -> None:
    # A whole number where seconds may be fractional, durations as seconds or text, arrays
    # for the keys held as tuples.
    path = make_project(
        replace={
            'transport = "outbox"': 'transport = "outbox"\ndesks = ["Ukraine"]\nrequired_feeds = ["feeds/world.xml"]'
        },
        extra='[fetch]\ntimeout = 20\nretry_for = "45m"\ncatch_up = 7200\n\n[schedule]\nmisfire_grace = "90s"\n',
    )
    settings = load_config(path).settings
    assert (settings.fetch.timeout, settings.fetch.retry_for, settings.fetch.catch_up) == (20.0, 2700, 7200)
    assert settings.schedule.misfire_grace == 90
    assert settings.lists[0].desks == ("Ukraine",) and settings.lists[0].required_feeds == (
        "feeds/world.xml",
    )
    assert settings.desks.order[0] == "Ukraine"


def test_reading_the_config_loads_no_transport_code(make_project: MakeProject) -> None:
    # Config names the backends' modules without importing them: no import cycle between
    # digest.config and digest.send.transports, and no smtplib or SendGrid client to read a file.
    extra = (
        '[transports.mail]\nbackend = "smtp"\n\n[transports.sg]\nbackend = "sendgrid"\ncategories = ["a"]\n'
    )
    path = make_project(extra=extra)
    script = (
        "import sys, digest.config\n"
        "imported = {name for name in sys.modules if name.startswith('digest.send')}\n"
        f"config = digest.config.load_config({str(path)!r})\n"
        "assert {t.backend for t in config.settings.transports.values()} == {'outbox', 'smtp', 'sendgrid'}\n"
        "print(sorted(imported), sorted(name for name in sys.modules if name.startswith('digest.send')))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert completed.stdout.split("\n")[0] == "[] []", completed.stdout


def test_a_font_stack_loads_as_a_css_list_with_the_safe_fallbacks(make_project: MakeProject) -> None:
    path = make_project(replace={"[desks]": 'font_stack = "Georgia, Times New Roman"\n\n[desks]'})
    assert (
        load_config(path).settings.newsroom.font_stack
        == "Georgia, Times New Roman, Helvetica, Arial, sans-serif"
    )
