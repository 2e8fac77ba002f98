"""Desk names as newsrooms write them (`+`, `&`, `/`, commas, Cyrillic), through the real `digest send`.

A subscriber's desks once became a variant key joined with "+" and split on "+" again, so a
desk named "Arts+Culture" was counted skipped when chosen alone and dropped when chosen with
another. Each transport gets the same project and must deliver each reader their own desks.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import time_machine
from click.testing import CliRunner, Result

from digest.cli import cli
from tests.conftest import NOW, MakeProject
from tests.sendgrid_sink import SendGridSink
from tests.smtpd import SmtpServer
from tests.test_transport_contract import Delivered, from_mime, from_sendgrid

SECRET = "desk-names-test-secret-0123456789"
EDITION = "daily-2026-11-25"

Inbox = Callable[[], dict[str, str]]  # address → the text part they were sent


def desk_project(make_project: MakeProject, desk: str, transport: str = "") -> Path:
    """The base project with its Culture desk renamed ``desk``, and three readers choosing it."""
    quoted = json.dumps(desk, ensure_ascii=False)
    path = make_project(
        replace={
            '"Europe", "Culture"]': f'"Europe", {quoted}]',
            '"Film" = "Culture"': f'"Film" = {quoted}\n"Culture" = {quoted}',
            'desk = "Culture"': f"desk = {quoted}",
        },
        extra=transport,
    )
    (path.parent / "subscribers" / "daily.csv").write_text(
        "email,name,desks,status\n"
        f"alone@example.org,Alone,{_cell(desk)},\n"
        f"both@example.org,Both,{_cell(desk + ';Ukraine')},\n"
        "every@example.org,Every,,\n",
        encoding="utf-8",
    )
    return path


def _cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def run(project: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    with time_machine.travel(NOW, tick=False):
        return CliRunner().invoke(
            cli, ["--config", str(project), *args], env={"DIGEST_SECRET": SECRET, **(env or {})}
        )


def texts(delivered: list[Delivered]) -> dict[str, str]:
    return {message.to: message.text.replace("\r\n", "\n") for message in delivered}


def heading(desk: str) -> str:
    return f"\n{desk}\n{'=' * len(desk)}\n"


@pytest.fixture(params=["outbox", "smtp", "sendgrid"])
def via(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Inbox, dict[str, str]]]:
    """(the [transports.mail] table of a backend, what it delivered, the environment it needs)."""
    table = '\n[transports.mail]\nbackend = "{}"\n{}\n'
    if request.param == "outbox":
        folder = tmp_path / "project" / "mail-outbox"
        options = 'path = "mail-outbox"'
        yield (
            table.format("outbox", options),
            lambda: texts([from_mime(path.read_bytes()) for path in sorted(folder.rglob("*.eml"))]),
            {},
        )
    elif request.param == "smtp":
        with SmtpServer() as server:
            options = f'host = "127.0.0.1"\nport = {server.port}\nbackoff = 0.01'
            yield (
                table.format("smtp", options),
                lambda: texts([from_mime(message.data) for message in server.messages]),
                {},
            )
    else:
        with SendGridSink() as sink:
            options = f'api_url = "{sink.url}"\nbackoff = 0.01'
            yield (
                table.format("sendgrid", options),
                lambda: texts([delivered for r in sink.requests for delivered in from_sendgrid(r.json)]),
                {"SENDGRID_API_KEY": "SG.desk-names-key"},
            )


def test_a_desk_named_with_a_plus_is_sent_alone_and_with_others_on_every_transport(
    make_project: MakeProject, via: tuple[str, Inbox, dict[str, str]]
) -> None:
    table, inbox, env = via
    project = desk_project(make_project, "Arts+Culture", table)
    config = project.read_text(encoding="utf-8").replace('transport = "outbox"', 'transport = "mail"')
    project.write_text(config, encoding="utf-8")
    result = run(project, "send", "--list", "daily", env=env)
    assert result.exit_code == 0, result.output + result.stderr
    assert f"{EDITION}: sent 3, skipped 0, suppressed 0, failed 0 (via " in result.output
    got = inbox()
    assert sorted(got) == ["alone@example.org", "both@example.org", "every@example.org"]
    culture, ukraine = heading("Arts+Culture"), heading("Ukraine")
    assert culture in got["alone@example.org"] and ukraine not in got["alone@example.org"]
    assert got["both@example.org"].index(ukraine) < got["both@example.org"].index(culture)
    assert heading("Business") not in got["both@example.org"]
    assert all(desk in got["every@example.org"] for desk in (culture, ukraine, heading("Business")))


@pytest.mark.parametrize(
    "desk", ["Arts & Culture", "Film/TV", "Arts, Books", "Культура", "all", '["Culture"]', "100% Culture"]
)
def test_any_printable_desk_name_is_chosen_alone_and_with_others(
    make_project: MakeProject, desk: str
) -> None:
    project = desk_project(make_project, desk)
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 0, result.output + result.stderr
    assert f"{EDITION}: sent 3, skipped 0, suppressed 0, failed 0" in result.output
    folder = project.parent / "outbox" / EDITION
    got = texts([from_mime(path.read_bytes()) for path in folder.glob("*.eml")])
    assert heading(desk) in got["alone@example.org"] and heading("Ukraine") not in got["alone@example.org"]
    assert heading(desk) in got["both@example.org"] and heading("Ukraine") in got["both@example.org"]
    assert heading("Europe") not in got["both@example.org"]


def test_dry_run_and_resend_name_the_variant_by_its_desks(make_project: MakeProject) -> None:
    project = desk_project(make_project, "Arts+Culture")
    dry = run(project, "send", "--list", "daily", "--dry-run")
    assert dry.exit_code == 0, dry.output + dry.stderr
    assert "  variant Arts+Culture: 1\n" in dry.output
    assert "  variant Ukraine;Arts+Culture: 1\n" in dry.output and "  variant all: 1\n" in dry.output
    assert run(project, "send", "--list", "daily").exit_code == 0
    again = run(project, "send", "--list", "daily", "--resend", "both@example.org")
    assert again.exit_code == 0, again.output + again.stderr
    assert "  variant Ukraine;Arts+Culture, Message-ID <daily-2026-11-25.resend1." in again.output


def test_an_edition_frozen_with_the_old_plus_keys_resumes(make_project: MakeProject) -> None:
    """Ledger rows and frozen variants keyed "Ukraine+Culture" (before JSON keys) still send."""
    project = desk_project(make_project, "Culture")
    state = project.parent / "state" / "digest.sqlite3"
    assert run(project, "send", "--list", "daily").exit_code == 0
    with sqlite3.connect(state) as db:
        # As the old code left it: "both" frozen and pending; "alone" pending, not yet rendered.
        db.execute(
            "UPDATE edition_variants SET variant = 'Ukraine+Culture' WHERE variant = ?",
            (json.dumps(["Culture", "Ukraine"]),),
        )
        db.execute("DELETE FROM edition_variants WHERE variant = ?", (json.dumps(["Culture"]),))
        db.execute(
            "UPDATE send_ledger SET status = 'pending', sent_at = NULL, variant = CASE email "
            "WHEN 'both@example.org' THEN 'Ukraine+Culture' ELSE 'Culture+Europe' END "
            "WHERE email IN ('both@example.org', 'alone@example.org')"
        )
    folder = project.parent / "outbox" / EDITION
    for path in folder.glob("*.eml"):
        path.unlink()
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 0, result.output + result.stderr
    assert f"{EDITION}: sent 2 now (1 earlier)" in result.output
    got = texts([from_mime(path.read_bytes()) for path in folder.glob("*.eml")])
    assert sorted(got) == ["alone@example.org", "both@example.org"]
    assert heading("Ukraine") in got["both@example.org"] and heading("Culture") in got["both@example.org"]
    assert heading("Europe") in got["alone@example.org"] and heading("Culture") in got["alone@example.org"]
    assert heading("Ukraine") not in got["alone@example.org"]
    with sqlite3.connect(state) as db:
        keys = {row[0] for row in db.execute("SELECT variant FROM edition_variants")}
    assert "Ukraine+Culture" in keys and "Culture+Europe" in keys
