"""Who left, as the CLI tells it: subscribers check and unsubscribe, suppressions export and import."""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from digest.state import Store
from tests.conftest import NOW, MakeProject
from tests.test_send import run

if TYPE_CHECKING:
    from tests.pgserver import PostgresServer

pytest_plugins = ["tests.pgserver"]

SQLITE_URL = 'url = "sqlite:///state/digest.sqlite3"'
EARLIER = NOW - dt.timedelta(days=3)
_numbers = itertools.count(1)


def state_file(project: Path) -> Path:
    return project.parent / "state" / "digest.sqlite3"


def test_check_shows_who_the_state_store_keeps_from_each_list(make_project: MakeProject) -> None:
    project = make_project()
    fresh = run(project, "subscribers", "check")
    assert fresh.exit_code == 0, fresh.output
    assert "daily in the state store: nobody unsubscribed, bounced or complained" in fresh.output
    assert not (project.parent / "state").exists()  # a check creates no database

    assert run(project, "subscribers", "unsubscribe", "reader@example.org", "--list", "daily").exit_code == 0
    with Store(f"sqlite:///{state_file(project)}").migrate() as store:
        store.suppressions.add_many(
            [("gone@example.org", "bounced"), ("angry@example.org", "complained")],
            source="sendgrid",
            now=EARLIER,
        )
        store.suppressions.add(
            "other@example.org", reason="unsubscribed", source="editor", list_name="weekly"
        )
    result = run(project, "subscribers", "check")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:] == [
        "daily readers in the state store: 0 (pending 0, active 0, unsubscribed 0, bounced 0, complained 0)",
        "daily in the state store: 3 will not be sent this list (unsubscribed 1, bounced 1, complained 1)",
        "  reader@example.org: unsubscribed (daily; editor, 2026-11-25)",
        "  angry@example.org: complained (every list; sendgrid, 2026-11-22)",
        "  gone@example.org: bounced (every list; sendgrid, 2026-11-22)",
    ]


def test_check_caps_the_addresses_it_lists(make_project: MakeProject) -> None:
    project = make_project()
    with Store(f"sqlite:///{state_file(project)}").migrate() as store:
        store.suppressions.add_many(
            ((f"b{n:04d}@example.org", "bounced") for n in range(1003)), source="sendgrid", now=EARLIER
        )
    result = run(project, "subscribers", "check")
    lines = result.output.splitlines()
    assert "1,003 will not be sent this list (unsubscribed 0, bounced 1,003, complained 0)" in lines[2]
    assert len([line for line in lines if ": bounced (every list;" in line]) == 1000
    assert lines[-1] == "  … and 3 more not shown"


def test_unsubscribing_an_address_not_on_the_list_says_so(project: Path) -> None:
    stranger = run(project, "subscribers", "unsubscribe", "X@Example.org", "--list", "daily")
    assert stranger.exit_code == 0, stranger.stderr
    assert stranger.stdout == "x@example.org unsubscribed from daily\n"
    assert stranger.stderr == (
        "warning: x@example.org is not in subscribers/daily.csv nor a reader of daily; "
        "unsubscribed anyway, so it will never be sent this list\n"
    )
    listed = run(project, "subscribers", "unsubscribe", "Reader@example.org", "--list", "daily")
    assert listed.exit_code == 0 and listed.stderr == ""
    with Store(f"sqlite:///{state_file(project)}").migrate() as store:
        assert store.suppressions.is_suppressed("x@example.org", "daily") is not None


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Two state database URLs for the config: the old one and its replacement."""
    if request.param == "sqlite":
        return SQLITE_URL, f'url = "sqlite:///{tmp_path / "new" / "digest.sqlite3"}"'
    server: PostgresServer = request.getfixturevalue("postgres")
    old, new = (server.create_database(f"digest_move_{next(_numbers)}") for _ in range(2))
    return f'url = "{old}"', f'url = "{new}"'


def test_suppressions_survive_a_move_to_a_new_database(
    make_project: MakeProject, databases: tuple[str, str], tmp_path: Path
) -> None:
    old, new = databases
    project = make_project(replace={SQLITE_URL: old})
    assert run(project, "send", "--list", "daily").exit_code == 0
    assert run(project, "subscribers", "unsubscribe", "reader@example.org", "--list", "daily").exit_code == 0
    sync = [
        ("gone@example.org", "bounced"),
        ("angry@example.org", "complained"),
        ("all@example.org", "unsubscribed"),
    ]
    with Store(_url(project)).migrate() as store:
        store.suppressions.add_many(sync, source="sendgrid", now=EARLIER)

    saved = tmp_path / "suppressions.csv"
    exported = run(project, "suppressions", "export", "--out", str(saved))
    assert exported.exit_code == 0, exported.stderr
    assert (
        exported.stderr == f"exported 4 suppressions (unsubscribed 2, bounced 1, complained 1) to {saved}\n"
    )
    header, *rows = saved.read_text().splitlines()
    assert header == "address,list,reason,source,date"
    assert sorted(rows) == [
        "all@example.org,,unsubscribed,sendgrid,2026-11-22T04:30:00+00:00",
        "angry@example.org,,complained,sendgrid,2026-11-22T04:30:00+00:00",
        "gone@example.org,,bounced,sendgrid,2026-11-22T04:30:00+00:00",
        "reader@example.org,daily,unsubscribed,editor,2026-11-25T04:30:00+00:00",
    ]

    project.write_text(project.read_text().replace(old, new))
    imported = run(project, "suppressions", "import", str(saved))
    assert imported.exit_code == 0, imported.stderr
    assert imported.stdout == (
        f"imported {saved}: 4 new (unsubscribed 2, bounced 1, complained 1), 0 already there, 0 bad rows\n"
    )
    again = run(project, "suppressions", "import", str(saved))
    assert again.stdout == (
        f"imported {saved}: 0 new (unsubscribed 0, bounced 0, complained 0), 4 already there, 0 bad rows\n"
    )
    assert run(project, "suppressions", "export").stdout == saved.read_text()
    # The new database mails nobody who left: the one reader unsubscribed.
    sent = run(project, "send", "--list", "daily")
    assert "sent 0, skipped 0, suppressed 1, failed 0" in sent.output


def _url(project: Path) -> str:
    line = next(line for line in project.read_text().splitlines() if line.startswith("url = "))
    url = line.split('"')[1]
    return f"sqlite:///{state_file(project)}" if url.startswith("sqlite:///state") else url


def test_import_names_each_bad_row_and_imports_the_rest(project: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "address,list,reason,source,date\n"
        "not-an-address,daily,unsubscribed,editor,\n"
        "ok@example.org,,bounced,,2026-11-20T10:00:00\n"
        "who@example.org,daily,left,editor,\n"
        "when@example.org,daily,unsubscribed,editor,yesterday\n"
        "\n"
        "shifted@example.org,Smith, Anna,unsubscribed,editor,\n"
    )
    result = run(project, "suppressions", "import", str(source))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"warning: {source}:2: 'not-an-address' is not an email address "
        "(An email address must have an @-sign)",
        f"warning: {source}:4: reason 'left' is not one of unsubscribed, bounced, complained",
        f"warning: {source}:5: date 'yesterday' is not an ISO 8601 date and time",
        f"warning: {source}:7: the row has 6 cells, not 5; quote a cell with a comma",
    ]
    assert result.stdout == (
        f"imported {source}: 1 new (unsubscribed 0, bounced 1, complained 0), 0 already there, 4 bad rows\n"
    )
    with Store(f"sqlite:///{state_file(project)}").migrate() as store:
        kept = store.suppressions.is_suppressed("ok@example.org", "daily")
    assert kept is not None and kept.source == "import"
    assert kept.created_at == dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)


def test_a_file_that_is_not_an_export_is_refused(project: Path, tmp_path: Path) -> None:
    source = tmp_path / "subscribers.csv"
    source.write_text("email,name\nreader@example.org,Reader\n")
    result = run(project, "suppressions", "import", str(source))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {source}:1: the header is not a suppressions export's (")


def break_the_page_holding(path: Path, marker: bytes) -> None:
    """Overwrite the table page holding ``marker`` (a row's bytes): the rows on it are lost."""
    with sqlite3.connect(path) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()  # folds the WAL into the file
    data = bytearray(path.read_bytes())
    page = data.index(marker) // page_size
    data[page * page_size : (page + 1) * page_size] = b"\xde\xad\xbe\xef" * (page_size // 4)
    path.write_bytes(bytes(data))


def test_a_damaged_database_says_what_a_new_one_would_lose_and_export_saves_what_it_can(
    make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project()
    assert run(project, "send", "--list", "daily").exit_code == 0
    path = state_file(project)
    with Store(f"sqlite:///{path}").migrate() as store:
        store.suppressions.add_many(
            ((f"b{n:04d}@example.org", "bounced") for n in range(3000)), source="sendgrid", now=EARLIER
        )
    # The table row (email, list, reason, source…), not the index entry (email, list).
    break_the_page_holding(path, b"b1500@example.org*bouncedsendgrid")

    check = run(project, "subscribers", "check")  # counts the suppressions: reads the page
    assert check.exit_code == 1
    assert check.stderr.startswith(f"error: {path}: the state database is damaged: ")
    assert "a new database would lose the ledger of who was sent what" in check.stderr
    assert "everyone who left would be mailed again" in check.stderr
    assert "`digest suppressions export --out suppressions.csv`" in check.stderr
    assert "`digest suppressions import suppressions.csv` into the new one" in check.stderr

    saved = tmp_path / "suppressions.csv"
    exported = run(project, "suppressions", "export", "--out", str(saved))
    assert exported.exit_code == 0, exported.stderr
    rows = saved.read_text().splitlines()[1:]
    assert "the state database is damaged: some suppressions could not be read" in exported.stderr
    assert 2800 < len(rows) < 3000  # a page's worth lost
    assert f"exported the {len(rows):,} that could" in exported.stderr
    assert rows[0].startswith("b0000@example.org,,bounced,sendgrid,") and rows[-1].startswith("b2999@")
    assert not any(row.startswith("b1500@") for row in rows)

    # Start a new database with what was saved.
    shutil.move(path, tmp_path / "damaged.sqlite3")
    imported = run(project, "suppressions", "import", str(saved))
    assert imported.exit_code == 0, imported.stderr
    assert f"{len(rows):,} new" in imported.stdout


def test_export_refuses_a_file_with_nothing_readable(project: Path) -> None:
    path = state_file(project)
    path.parent.mkdir()
    path.write_bytes(b"this is not a database\n" * 400)
    result = run(project, "suppressions", "export")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {path}: cannot read the suppressions from the state database:")
