"""The `digest` command as users run it: help everywhere, outputs, and one-line errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import time_machine
from click.testing import CliRunner

from digest.cli import cli
from digest.render.templates import default_template_dir
from tests.conftest import BASE_CONFIG, NOW, STORIES, MakeProject


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", commands(cli), ids=lambda p: " ".join(p) or "digest")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0
    assert "Usage: " in result.output
    command = cli
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    assert command.help, f"`digest {' '.join(path)}` has no help text"


def run(project: Path, *args: str) -> click.testing.Result:
    with time_machine.travel(NOW, tick=False):
        return CliRunner().invoke(cli, ["--config", str(project), *args])


def test_build_writes_four_files_and_reports(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(project, "build", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "daily: 30 stories in 5 desks" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["daily.eml", "daily.html", "daily.json", "daily.txt"]
    edition = json.loads((out / "daily.json").read_text())
    assert edition["list"] == "daily"
    assert [desk["name"] for desk in edition["desks"]] == [
        "Ukraine",
        "North America",
        "Business",
        "Europe",
        "Culture",
    ]
    first = edition["desks"][0]["items"][0]
    assert set(first) >= {"id", "title", "url", "author", "published", "summary", "image", "read_time"}
    assert edition["window"] == {"start": "2026-11-24T04:30:00Z", "end": "2026-11-25T04:30:00Z"}


def test_build_by_date_reads_and_writes_no_state(project: Path, tmp_path: Path) -> None:
    result = run(project, "build", "--date", "2026-11-25", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    edition = json.loads((tmp_path / "out" / "daily.json").read_text())
    assert edition["window"] == {"start": "2026-11-24T05:00:00Z", "end": "2026-11-25T05:00:00Z"}


def test_empty_edition_is_reported(make_project: MakeProject, tmp_path: Path) -> None:
    project = make_project()
    result = run(project, "build", "--date", "2026-10-01", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "daily: empty edition" in result.output
    assert json.loads((tmp_path / "out" / "daily.json").read_text())["empty"] is True


def test_feed_warnings_reach_the_editor(make_project: MakeProject, tmp_path: Path) -> None:
    project = make_project()
    (project.parent / "feeds" / "culture.json").write_text(
        '{"version": "https://jsonfeed.org/version/1.1", "items": ['
    )
    result = run(project, "build", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0
    assert "warning: feed feeds/culture.json: is not valid JSON" in result.stderr
    assert "daily: 24 stories in 4 desks" in result.output
    edition = json.loads((tmp_path / "out" / "daily.json").read_text())
    assert any("culture.json" in warning for warning in edition["warnings"])
    # Warnings are for editors: the email itself never shows them.
    for part in ("daily.html", "daily.txt"):
        assert "not valid JSON" not in (tmp_path / "out" / part).read_text()


def test_feeds_check_prints_a_table(make_project: MakeProject) -> None:
    project = make_project()
    (project.parent / "feeds" / "business.atom").write_text("<html><body>Not a feed</body></html>")
    result = run(project, "feeds", "check")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].split() == ["FEED", "STATUS", "ITEMS", "NEWEST", "WARNINGS"]
    world = next(line for line in lines if line.startswith("feeds/world.xml"))
    assert world.split()[1:4] == ["ok", "17", "2026-11-25"]
    business = next(line for line in lines if line.startswith("feeds/business.atom"))
    assert business.split()[1:3] == ["failed", "0"]
    assert "- feeds/business.atom: is not" in result.output


def test_config_error_is_one_line_without_traceback(make_project: MakeProject) -> None:
    project = make_project(replace={"max_items = 8": "max_items = 0"})
    result = run(project, "build")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {project.resolve()}:10: desks.max_items:")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_list(project: Path) -> None:
    result = run(project, "build", "--list", "weekly")
    assert result.exit_code == 1
    assert "no list named 'weekly'" in result.stderr and "daily" in result.stderr


def test_debug_shows_the_traceback(make_project: MakeProject) -> None:
    project = make_project(replace={"max_items = 8": "max_items = 0"})
    completed = subprocess.run(
        [sys.executable, "-m", "digest", "--debug", "--config", str(project), "build"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert "Traceback" in completed.stderr and "ConfigError" in completed.stderr


def test_an_mjml_typo_stops_the_build_at_its_template_line(make_project: MakeProject, tmp_path: Path) -> None:
    project = make_project()
    template = project.parent / "templates" / "digest.mjml.j2"
    lines = (default_template_dir() / "digest.mjml.j2").read_text().splitlines(keepends=True)
    number = next(n for n, line in enumerate(lines, start=1) if line.startswith("<mj-text>"))
    lines[number - 1] = lines[number - 1].replace("<mj-text>", '<mj-text colr="#333">', 1)
    template.write_text("".join(lines))
    result = run(project, "build", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {template}:{number}: <mj-text> has no attribute 'colr' (did you mean 'color'?)\n"
    )
    assert not (tmp_path / "out").exists()


def config_of_its_own(folder: Path, extra: str = "") -> Path:
    """A config.toml beside only its feed and its subscribers, like /etc/digest/config.toml."""
    folder.mkdir()
    shutil.copy(STORIES / "world.xml", folder / "world.xml")
    (folder / "daily.csv").write_text("email,name\nreader@example.org,Reader\n")
    config = BASE_CONFIG.replace('source = "feeds/world.xml"', 'source = "world.xml"')
    config = re.sub(r'\n\[\[feeds\]\]\nsource = "feeds/[^"]+"\ndesk = "\w+"\n', "", config)
    config = config.replace('subscribers = "subscribers/daily.csv"', 'subscribers = "daily.csv"')
    path = folder / "config.toml"
    path.write_text(config + extra)
    return path


def test_a_config_with_no_templates_beside_it_uses_the_packaged_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = config_of_its_own(tmp_path / "etc-digest")
    monkeypatch.chdir(tmp_path)  # nowhere near the repository's templates/
    assert sorted(p.name for p in project.parent.iterdir()) == ["config.toml", "daily.csv", "world.xml"]
    built = run(project, "build", "--out", str(tmp_path / "out"))
    assert built.exit_code == 0, built.output + built.stderr
    assert "daily: " in built.output and "stories in" in built.output
    with time_machine.travel(NOW, tick=False):
        sent = CliRunner().invoke(
            cli, ["--config", str(project), "send", "--list", "daily"], env={"DIGEST_SECRET": "s" * 32}
        )
    assert sent.exit_code == 0, sent.output + sent.stderr
    assert "sent 1, skipped 0, suppressed 0, failed 0" in sent.output
    [message] = (project.parent / "outbox").rglob("*.eml")
    assert "The Morning Ledger" in message.read_text()


def test_a_templates_folder_the_config_names_must_exist(tmp_path: Path) -> None:
    project = config_of_its_own(tmp_path / "etc-digest", extra='\n[render]\ntemplates = "mine"\n')
    result = run(project, "build", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    line = project.read_text().splitlines().index('templates = "mine"') + 1
    assert result.stderr == f"error: {project}:{line}: render.templates: templates folder 'mine' not found\n"


ODD_FEED = """\
<rss version="2.0"><channel><title>Wire</title><link>https://wire.example.org/</link>
<item><title>{title}</title><link>https://wire.example.org/a</link>
<pubDate>Wed, 25 Nov 2026 04:29:00 GMT</pubDate></item>
<item><title>Sorted by a clock that stopped</title><link>https://wire.example.org/b</link>
<pubDate>Thu, 01 Jan 1970 00:00:00 GMT</pubDate></item>
</channel></rss>
"""


def test_overlong_titles_and_ancient_dates_are_reported(make_project: MakeProject, tmp_path: Path) -> None:
    project = make_project(extra='\n[[feeds]]\nsource = "feeds/wire.xml"\ndesk = "Ukraine"\n')
    title = " ".join(f"word{n}" for n in range(1700))  # 14,189 characters
    (project.parent / "feeds" / "wire.xml").write_text(ODD_FEED.format(title=title))
    out = tmp_path / "out"
    result = run(project, "build", "--out", str(out))
    assert result.exit_code == 0, result.output
    long_warning = (
        "feed feeds/wire.xml: item 1 ('word0 word1 word2 word3 word4 word5 word6 word7…') "
        "has a title of 14,189 characters; shortened to 200"
    )
    old_warning = (
        "feed feeds/wire.xml: item 2 ('Sorted by a clock that stopped') "
        "is dated 1970-01-01, more than a year ago; skipped"
    )
    assert f"warning: {long_warning}\n" in result.stderr
    assert f"warning: {old_warning}\n" in result.stderr
    edition = json.loads((out / "daily.json").read_text())
    assert {long_warning, old_warning} <= set(edition["warnings"])
    shortened = " ".join(f"word{n}" for n in range(30)) + "…"  # 199 characters, then the ellipsis
    assert edition["desks"][0]["items"][0]["title"] == shortened
    assert f">{shortened}</a></h2>" in (out / "daily.html").read_text()  # the lead story
    text = (out / "daily.txt").read_text()
    assert "word29…" in text and "word30" not in text
    subject = edition["subject"]
    assert len(subject) <= 200 and subject.endswith("…")
    assert f"subject: {subject}\n" in result.output
    headline = subject.split(": ", 1)[1].removesuffix("…")
    assert title.startswith(headline) and title[len(headline)] == " "  # cut between two words
    assert "Sorted by a clock" not in (out / "daily.html").read_text()


@pytest.mark.parametrize(
    ("day", "why"),
    [
        ("2026-13-01", "month must be 1–12"),
        ("2026-00-10", "month must be 1–12"),
        ("2026-02-29", "day is out of range for month"),  # 2026 is no leap year
        ("2026-11-31", "day is out of range for month"),
        ("2026-1-5", "use YYYY-MM-DD"),
        ("25.11.2026", "use YYYY-MM-DD"),
    ],
)
def test_a_wrong_date_says_what_is_wrong_with_it(project: Path, tmp_path: Path, day: str, why: str) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "digest",
            "--config",
            str(project),
            "build",
            "--date",
            day,
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert f"Error: Invalid value for '--date': {day} is not a date: {why}\n" in completed.stderr
    assert "does not match the format" not in completed.stderr
