"""config.toml: valid files load; every mistake names the key, the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.config import load_config
from digest.errors import ConfigError
from tests.conftest import MakeProject


def test_loads_the_shipped_config_reference() -> None:
    # The repository's own config.toml must stay valid (examples/feeds comes from `make demo`).
    repo = Path(__file__).resolve().parent.parent
    try:
        config = load_config(repo / "config.toml")
    except ConfigError as exc:
        assert "make demo" in str(exc), exc
        return
    assert config.settings.desks.order[0] == "Ukraine"


def test_paths_resolve_relative_to_the_config_file(config) -> None:
    assert config.resolve("feeds/world.xml") == config.root / "feeds" / "world.xml"
    assert config.list_timezone(config.mailing_list("daily")) == "Europe/Kyiv"
    assert config.desk_url("North America") == "https://news.example.org/north-america"


CASES = [
    # (what is wrong, replacements, expected substrings, text on the line the error must name)
    (
        "unknown key",
        {"max_items = 8": "max_items = 8\nmax_itemz = 3"},
        ["desks.max_itemz", "unknown key"],
        "max_itemz",
    ),
    ("wrong type", {"max_items = 8": 'max_items = "eight"'}, ["desks.max_items", "integer"], "max_items"),
    (
        "feed desk not in order",
        {'desk = "Business"': 'desk = "Sport"'},
        ["feeds[1].desk", "'Sport'", "not in [desks] order"],
        '"Sport"',
    ),
    (
        "category mapped to an unknown desk",
        {'"Film" = "Culture"': '"Film" = "Cinema"'},
        ["desks.categories.Film", "'Cinema'"],
        '"Cinema"',
    ),
    (
        "missing feed file",
        {"feeds/culture.json": "feeds/nope.json"},
        ["feeds[2].source", "not found"],
        "nope.json",
    ),
    (
        "missing subscriber file",
        {"subscribers/daily.csv": "subscribers/none.csv"},
        ["lists[0].subscribers", "not found"],
        "none.csv",
    ),
    (
        "bad cron",
        {'schedule = "0 7 * * *"': 'schedule = "0 7 * *"'},
        ["lists[0].schedule", "five"],
        "schedule",
    ),
    (
        "bad timezone",
        {'timezone = "Europe/Kyiv"\nsender': 'timezone = "Europe/Kiev2"\nsender'},
        ["timezone", "IANA"],
        "Kiev2",
    ),
    (
        "missing key",
        {'site_url = "https://news.example.org"\n': ""},
        ["newsroom.site_url", "missing"],
        "[newsroom]",
    ),
    ("undefined transport", {'transport = "outbox"': 'transport = "smtp"'}, ["[transports.smtp]"], '"smtp"'),
    (
        "list desk not in order",
        {'transport = "outbox"': 'transport = "outbox"\ndesks = ["Ukraine", "Weather"]'},
        ["lists[0].desks", "'Weather'"],
        "Weather",
    ),
    ("bad sender", {"<digest@news.example.org>": "digest-at-news"}, ["newsroom.sender"], "digest-at-news"),
    ("not TOML", {"[desks]\n": "[desks\n"}, ["not valid TOML"], "[desks"),
]


@pytest.mark.parametrize(("replace", "expected", "marker"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_errors_name_key_file_and_line(
    make_project: MakeProject, replace: dict[str, str], expected: list[str], marker: str
) -> None:
    path = make_project(replace=replace)
    lines = path.read_text().splitlines()
    line = next(number for number, text in enumerate(lines, start=1) if marker in text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    for part in expected:
        assert part in message
    assert caught.value.path is not None and Path(caught.value.path).name == "config.toml"
    assert caught.value.line == line, message
    assert f"config.toml:{line}:" in message


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
    assert caught.value.line == next(n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith("url ="))
