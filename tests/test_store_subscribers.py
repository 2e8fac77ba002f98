"""Subscribers in the state store: the file import's rule against what readers did themselves,
on SQLite and on a real PostgreSQL server; export, add, show, forget and send through the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from digest.state import Store
from digest.state.forgotten import forget_key, keyed_hash
from digest.state.import_report import ImportReport
from digest.state.imports import import_subscribers
from digest.state.readers import Event, ReaderStatus, Source
from digest.state.suppressions import Reason
from tests.conftest import NOW, MakeProject
from tests.test_send import SECRET, run

pytest_plugins = ["tests.pgserver"]

DESKS = ("Ukraine", "North America", "Business", "Europe", "Culture")
HEADER = "email,name,desks,status\n"
LATER = NOW + dt.timedelta(days=1)
KEY = forget_key(SECRET.encode())


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = (
        f"sqlite:///{tmp_path / 'state.sqlite3'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    with Store(url, forget_key=lambda: KEY).migrate() as opened:
        yield opened


def imported(store: Store, path: Path, rows: str, *, now: dt.datetime = NOW) -> ImportReport:
    path.write_text(HEADER + rows, encoding="utf-8")
    return import_subscribers(store, "daily", path, DESKS, now=now)


def events(store: Store, email: str) -> list[tuple[str, str]]:
    return [(e.event, e.detail) for e in store.readers.history(email)]


def counts(report: ImportReport) -> tuple[int, int, int, int, int, int]:
    return (report.new, report.changed, report.unchanged, report.removed, report.kept, report.bad)


# -- the rule ---------------------------------------------------------------------------------


def test_a_first_import_adds_every_row_as_the_file_says(store: Store, tmp_path: Path) -> None:
    report = imported(
        store, tmp_path / "d.csv", "Anna@Example.org,Anna,Culture;ukraine,\nbob@example.org,,,unsubscribed\n"
    )
    assert counts(report) == (2, 0, 0, 0, 0, 0)
    anna = store.readers.get("daily", "anna@example.org")
    assert anna is not None and anna.status is ReaderStatus.ACTIVE and anna.source is Source.FILE
    assert anna.desks == ("Ukraine", "Culture") and anna.name == "Anna"
    bob = store.readers.get("daily", "bob@example.org")
    assert bob is not None and bob.status is ReaderStatus.UNSUBSCRIBED


def test_new_rows_of_every_chunk_arrive_whatever_the_files_order(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # New readers wait in a temporary table until the file is read; three chunks of two here.
    monkeypatch.setattr("digest.state.imports.CHUNK", 2)
    path = tmp_path / "d.csv"
    report = imported(store, path, "".join(f"r{n}@example.org,R{n},,\n" for n in (5, 1, 4, 2, 3)))
    assert counts(report) == (5, 0, 0, 0, 0, 0)
    report = imported(
        store, path, "".join(f"r{n}@example.org,R{n},,\n" for n in (6, 3, 2, 8, 1, 7)), now=LATER
    )
    assert counts(report) == (3, 0, 3, 2, 0, 0)
    readers = {r.email: r.name for r in store.readers.of_list("daily")}
    assert readers == {f"r{n}@example.org": f"R{n}" for n in (1, 2, 3, 6, 7, 8)}
    seventh = store.readers.get("daily", "r7@example.org")
    assert seventh is not None and seventh.created_at == LATER and seventh.source is Source.FILE


@pytest.mark.parametrize("change", ["desks", "name", "unsubscribe"])
def test_an_unchanged_row_never_undoes_the_readers_own_change(
    store: Store, tmp_path: Path, change: str
) -> None:
    path = tmp_path / "d.csv"
    rows = "anna@example.org,Anna,Culture,\nbob@example.org,Bob,,\n"
    imported(store, path, rows)
    if change == "unsubscribe":
        store.readers.leave("daily", "anna@example.org", reason=Reason.UNSUBSCRIBED, source="web", now=NOW)
    else:
        name, desks = ("Anna", ("Business",)) if change == "desks" else ("Anna K.", ("Culture",))
        store.readers.set_preferences("daily", "anna@example.org", name=name, desks=desks, now=NOW)
    before = store.readers.get("daily", "anna@example.org")
    # The file changes elsewhere (a new row), so it is read again; Anna's row is as it was.
    report = imported(store, path, rows + "carl@example.org,Carl,,\n", now=LATER)
    assert counts(report) == (1, 0, 1, 0, 1, 0)
    assert store.readers.get("daily", "anna@example.org") == before
    assert Event.FILE_CHANGED.value not in [event for event, _ in events(store, "anna@example.org")]


def test_a_row_the_editors_changed_is_applied_and_logged(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "d.csv"
    imported(store, path, "anna@example.org,Anna,Culture,\nbob@example.org,Bob,,\n")
    store.readers.set_preferences("daily", "anna@example.org", name="Anna", desks=("Business",), now=NOW)
    with caplog.at_level(logging.INFO, logger="digest.state.imports"):
        report = imported(
            store, path, "anna@example.org,Anna Kovalenko,Europe,\nbob@example.org,Bob,,\n", now=LATER
        )
    assert counts(report) == (0, 1, 1, 0, 0, 0)
    anna = store.readers.get("daily", "anna@example.org")
    assert anna is not None and anna.desks == ("Europe",) and anna.name == "Anna Kovalenko"
    assert (Event.FILE_CHANGED.value, "name: 'Anna' → 'Anna Kovalenko'; desks: Business → Europe") in events(
        store, "anna@example.org"
    )
    logged = [r.getMessage() for r in caplog.records if "changed by the file" in r.getMessage()]
    assert logged == [f"{path}:2: changed by the file (name, desks)"]
    assert "Kovalenko" not in caplog.text and "anna@" not in caplog.text  # what changed, not the values


@pytest.mark.parametrize("reason", list(Reason))
def test_the_file_never_brings_back_an_address_that_left(
    store: Store, tmp_path: Path, reason: Reason
) -> None:
    path = tmp_path / "d.csv"
    imported(
        store,
        path,
        "anna@example.org,Anna,,unsubscribed\n"
        if reason is Reason.UNSUBSCRIBED
        else "anna@example.org,Anna,,\n",
    )
    list_name = "daily" if reason is Reason.UNSUBSCRIBED else None
    store.readers.leave(list_name, "anna@example.org", reason=reason, source="test", now=NOW)
    report = imported(store, path, "anna@example.org,Anna,,active\n", now=LATER)
    assert report.kept == 1 and report.changed == 0
    anna = store.readers.get("daily", "anna@example.org")
    assert anna is not None and anna.status.value == reason.value


def test_a_row_saying_unsubscribed_unsubscribes(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    imported(store, path, "anna@example.org,Anna,,\n")
    report = imported(store, path, "anna@example.org,Anna,,unsubscribed\n", now=LATER)
    assert report.changed == 1
    anna = store.readers.get("daily", "anna@example.org")
    assert anna is not None and anna.status is ReaderStatus.UNSUBSCRIBED
    assert (Event.FILE_CHANGED.value, "status: active → unsubscribed") in events(store, "anna@example.org")


def test_new_rows_for_suppressed_addresses_get_their_status(store: Store, tmp_path: Path) -> None:
    store.suppressions.add("gone@example.org", reason=Reason.BOUNCED, source="sendgrid", now=NOW)
    store.suppressions.add(
        "left@example.org", reason=Reason.UNSUBSCRIBED, source="web", list_name="daily", now=NOW
    )
    store.suppressions.add(
        "other@example.org", reason=Reason.UNSUBSCRIBED, source="web", list_name="weekly", now=NOW
    )
    imported(store, tmp_path / "d.csv", "gone@example.org,,,\nleft@example.org,,,\nother@example.org,,,\n")
    status = {r.email: r.status for r in store.readers.of_list("daily")}
    assert status == {
        "gone@example.org": ReaderStatus.BOUNCED,
        "left@example.org": ReaderStatus.UNSUBSCRIBED,
        "other@example.org": ReaderStatus.ACTIVE,
    }


def test_a_row_gone_from_the_file_stops_its_mail_but_never_a_sign_up(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    imported(store, path, "anna@example.org,,,\nbob@example.org,,,\ncarl@example.org,,,\n")
    store.readers.leave("daily", "carl@example.org", reason=Reason.UNSUBSCRIBED, source="web", now=NOW)
    store.readers.sign_up("daily", "dora@example.org", name="", desks=None, url="u", ip=None, now=NOW)
    store.readers.confirm("daily", "dora@example.org", url="u", ip=None, now=NOW)
    store.readers.add("daily", "ed@example.org", name="", desks=None, now=NOW)
    report = imported(store, path, "bob@example.org,,,\n", now=LATER)
    assert report.removed == 1
    assert store.readers.get("daily", "anna@example.org") is None
    assert (Event.REMOVED.value, str(path)) in events(store, "anna@example.org")
    left = store.readers.get("daily", "carl@example.org")  # kept, so its unsubscribe holds
    assert left is not None and left.status is ReaderStatus.UNSUBSCRIBED
    assert {r.email for r in store.readers.of_list("daily")} == {
        "bob@example.org",
        "carl@example.org",
        "dora@example.org",
        "ed@example.org",
    }
    imported(store, path, "bob@example.org,,,\ncarl@example.org,,,\n", now=LATER)  # carl back in the file
    again = store.readers.get("daily", "carl@example.org")
    assert again is not None and again.status is ReaderStatus.UNSUBSCRIBED


def test_bad_rows_and_duplicates_are_reported_by_line_and_hold_removals(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    imported(store, path, "anna@example.org,,,\nbob@example.org,,,\n")
    report = imported(
        store,
        path,
        "not-an-address,,,\nbob@example.org,,,\nBOB@example.org,,,\nx@example.org,,Sport,\n",
        now=LATER,
    )
    assert (report.invalid, report.duplicates) == (2, 1)
    assert [str(p).split(": ")[0] for p in report.problems] == [f"{path}:2", f"{path}:4", f"{path}:5"]
    assert "duplicate of line 3" in str(report.problems[1])
    assert report.removed == 0 and report.removal_held == 1
    assert store.readers.get("daily", "anna@example.org") is not None  # not removed while the file is broken


def test_an_unchanged_file_is_not_read_again(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "d.csv"
    imported(store, path, "anna@example.org,,,\n")

    def unread(*_args: object, **_kwargs: object) -> Iterator[object]:
        raise AssertionError("the file was read again")

    monkeypatch.setattr("digest.state.imports.read_ahead", unread)
    report = import_subscribers(store, "daily", path, DESKS, now=LATER)
    assert report.skipped and report.describe().endswith("unchanged since the last import; nothing to do")
    with pytest.raises(AssertionError, match="read again"):  # a changed file is
        imported(store, path, "anna@example.org,Anna,,\n", now=LATER)


def test_a_forgotten_address_is_skipped_until_it_confirms_again(store: Store, tmp_path: Path) -> None:
    from digest.state.forgotten import forget

    path = tmp_path / "d.csv"
    imported(store, path, "anna@example.org,Anna,,\n")
    forget(store.engine, "anna@example.org", KEY, now=NOW)
    report = imported(store, path, "anna@example.org,Anna,,\nbob@example.org,,,\n", now=LATER)
    assert report.forgotten == 1 and report.new == 1
    assert (
        str(report.problems[0])
        == f"{path}:2: skipped: this address was forgotten (`digest subscribers forget`)"
    )
    assert store.readers.get("daily", "anna@example.org") is None
    store.readers.sign_up("daily", "anna@example.org", name="", desks=None, url="u", ip=None, now=LATER)
    store.readers.confirm("daily", "anna@example.org", url="u", ip=None, now=LATER)
    assert store.suppressions.is_suppressed(keyed_hash(KEY, "anna@example.org"), "daily") is None


# -- the commands -------------------------------------------------------------------------------


SUBSCRIBERS = (
    HEADER
    + "anna@example.org,Anna Kovalenko,Ukraine;Culture,\n"
    + "bob@example.org,Bob,,\n"
    + "carl@example.org,,Business,unsubscribed\n"
)


def project_with(make_project: MakeProject, rows: str = SUBSCRIBERS) -> Path:
    project = make_project()
    (project.parent / "subscribers" / "daily.csv").write_text(rows, encoding="utf-8")
    return project


def state_of(project: Path) -> Store:
    return Store(f"sqlite:///{project.parent / 'state' / 'digest.sqlite3'}", forget_key=lambda: KEY).migrate()


def test_import_prints_counts_and_bad_rows(make_project: MakeProject) -> None:
    project = project_with(make_project, SUBSCRIBERS + "nope,,,\n")
    result = run(project, "subscribers", "import")
    assert result.exit_code == 1
    assert "subscribers/daily.csv:5: 'nope' is not a valid email address" in result.stderr
    assert (
        "3 new, 0 changed by the file, 0 unchanged, 0 removed, 0 kept by the reader's choice, 1 bad rows"
        in result.output
    )


def test_export_then_import_changes_nothing(make_project: MakeProject, tmp_path: Path) -> None:
    project = project_with(make_project)
    assert run(project, "subscribers", "import").exit_code == 0
    with state_of(project) as store:
        store.readers.set_preferences("daily", "bob@example.org", name="Bobby", desks=("Europe",), now=NOW)
        store.readers.add("daily", "ed@example.org", name="Ed", desks=None, now=NOW)
        before = list(store.readers.of_list("daily"))
    out = tmp_path / "export.csv"
    exported = run(project, "subscribers", "export", "--list", "daily", "--out", str(out))
    assert exported.exit_code == 0, exported.stderr
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["email", "name", "desks", "status", "source", "created", "updated", "confirmed"]
    assert rows[2][:5] == ["bob@example.org", "Bobby", "Europe", "active", "file"]
    shutil_copy(out, project.parent / "subscribers" / "daily.csv")
    again = run(project, "subscribers", "import")
    assert again.exit_code == 0 and again.stderr == ""  # the extra columns are read past quietly
    assert "0 new, 0 changed by the file, 4 unchanged, 0 removed, 0 kept" in again.output
    with state_of(project) as store:
        assert list(store.readers.of_list("daily")) == before


def shutil_copy(source: Path, target: Path) -> None:
    target.write_bytes(source.read_bytes())


def test_add_refuses_an_address_that_left_and_unknown_desks(make_project: MakeProject) -> None:
    project = project_with(make_project)
    added = run(
        project,
        "subscribers",
        "add",
        "Dora@Example.org",
        "--list",
        "daily",
        "--name",
        "Dora",
        "--desks",
        "culture;Europe",
    )
    assert added.exit_code == 0, added.stderr
    assert added.output == "dora@example.org added to daily (Europe;Culture)\n"
    with state_of(project) as store:
        dora = store.readers.get("daily", "dora@example.org")
    assert dora is not None and dora.source is Source.EDITOR and dora.status is ReaderStatus.ACTIVE
    assert run(project, "subscribers", "unsubscribe", "dora@example.org", "--list", "daily").exit_code == 0
    refused = run(project, "subscribers", "add", "dora@example.org", "--list", "daily")
    assert refused.exit_code == 1
    assert "dora@example.org left daily (unsubscribed on " in refused.stderr
    assert "only its owner can re-subscribe, by signing up again" in refused.stderr
    desk = run(project, "subscribers", "add", "eve@example.org", "--list", "daily", "--desks", "Sport")
    assert desk.exit_code == 1 and "desk 'Sport' is not one of this list's desks" in desk.stderr


def test_show_prints_status_desks_history_and_editions(make_project: MakeProject) -> None:
    project = project_with(make_project)
    assert run(project, "send", "--list", "daily").exit_code == 0
    with state_of(project) as store:
        store.readers.set_preferences("daily", "anna@example.org", name="Anna", desks=("Culture",), now=NOW)
    shown = run(project, "subscribers", "show", "ANNA@example.org")
    assert shown.exit_code == 0, shown.stderr
    lines = shown.output.splitlines()
    assert lines[0] == "anna@example.org"
    assert lines[1] == "  daily: active (source file), desks Culture"
    assert "preferences changed (desks: Culture)" in shown.output
    assert "  editions sent: 1" in lines
    assert any(line.startswith("    daily-2026-11-25: sent 2026-11-25") for line in lines)
    nobody = run(project, "subscribers", "show", "nobody@example.org")
    assert nobody.output == "nobody@example.org: not on any list, and nothing was ever sent to it\n"


def every_value(store: Store) -> str:
    """Every value of every column of every table, as text."""
    found = []
    with store.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                found.extend(str(value) for value in row)
    return "\n".join(found)


def test_forget_leaves_no_trace_but_the_keyed_hash(make_project: MakeProject) -> None:
    project = project_with(make_project)
    assert run(project, "send", "--list", "daily").exit_code == 0
    with state_of(project) as store:
        assert "anna@example.org" in every_value(store) and "Kovalenko" in every_value(store)
        sent = store.ledger.counts("daily-2026-11-25")
    result = run(project, "--log-format", "json", "--debug", "subscribers", "forget", "anna@example.org")
    assert result.exit_code == 0, result.stderr
    hashed = keyed_hash(KEY, "anna@example.org")
    assert result.stdout.startswith(f"forgotten, kept as {hashed}: erased from daily")
    assert "subscribers/daily.csv:2: still has the forgotten address: delete the row" in result.stderr
    assert '"message": "forgot an address, kept as forgotten:' in result.stderr  # the log line
    for text_ in (result.output, result.stderr):
        assert "anna@" not in text_.lower() and "kovalenko" not in text_.lower()
    state = project.parent / "state" / "digest.sqlite3"
    with state_of(project) as store:
        values = every_value(store).lower()
        assert "anna@" not in values and "kovalenko" not in values
        assert hashed in values
        assert store.ledger.counts("daily-2026-11-25") == sent  # counts stay right
        assert store.readers.of_address("anna@example.org") == []
        assert store.readers.history("anna@example.org") == []
    for file in state.parent.iterdir():  # the database's bytes, its WAL and anything beside it
        data = file.read_bytes().lower()
        assert b"anna@" not in data and b"kovalenko" not in data, file.name
    # The file still has her: the next send skips her row, and says so by its line.
    (project.parent / "subscribers" / "daily.csv").write_text(SUBSCRIBERS + "dora@example.org,,,\n")
    again = run(project, "subscribers", "import")
    assert "subscribers/daily.csv:2: skipped: this address was forgotten" in again.stderr
    with state_of(project) as store:
        assert store.readers.get("daily", "anna@example.org") is None


def test_forget_on_postgresql_leaves_no_trace(make_project: MakeProject, postgres_url: str) -> None:
    project = make_project(replace={'url = "sqlite:///state/digest.sqlite3"': f'url = "{postgres_url}"'})
    (project.parent / "subscribers" / "daily.csv").write_text(SUBSCRIBERS, encoding="utf-8")
    assert run(project, "send", "--list", "daily").exit_code == 0
    assert run(project, "subscribers", "forget", "anna@example.org").exit_code == 0
    with Store(postgres_url).migrate() as store:
        values = every_value(store).lower()
        assert "anna@" not in values and "kovalenko" not in values
        assert keyed_hash(KEY, "anna@example.org") in values
        assert store.ledger.counts("daily-2026-11-25")["sent"] == 2


def test_send_takes_recipients_and_their_desks_from_the_store(make_project: MakeProject) -> None:
    project = project_with(make_project)
    assert run(project, "subscribers", "import").exit_code == 0
    with state_of(project) as store:
        # A desk the list no longer has is ignored; none left means every desk.
        store.readers.set_preferences(
            "daily", "anna@example.org", name="Anna", desks=("Business", "Sport"), now=NOW
        )
        store.readers.set_preferences("daily", "bob@example.org", name="Bob", desks=("Sport",), now=NOW)
        store.readers.add("daily", "ed@example.org", name="Ed", desks=("Europe",), now=NOW)
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 0, result.stderr
    with state_of(project) as store:
        variants = {
            e: store.ledger.row("daily-2026-11-25", e)
            for e in ("anna@example.org", "bob@example.org", "ed@example.org", "carl@example.org")
        }
    assert {e: (r.variant, r.status) for e, r in variants.items() if r} == {
        "anna@example.org": ('["Business"]', "sent"),
        "bob@example.org": ("all", "sent"),
        "ed@example.org": ('["Europe"]', "sent"),
        "carl@example.org": ('["Business"]', "suppressed"),
    }
    assert variants["carl@example.org"] and variants["carl@example.org"].error == "reader unsubscribed"


def test_a_list_without_a_file_sends_to_its_readers(make_project: MakeProject) -> None:
    project = make_project(replace={'subscribers = "subscribers/daily.csv"\n': ""})
    assert run(project, "subscribers", "add", "ed@example.org", "--list", "daily").exit_code == 0
    check = run(project, "subscribers", "check")
    assert check.exit_code == 0, check.stderr
    assert "daily: no subscriber file (web sign-ups only)" in check.output
    assert "daily readers in the state store: 1 (pending 0, active 1," in check.output
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 0, result.stderr
    assert "daily-2026-11-25: sent 1, skipped 0, suppressed 0, failed 0" in result.output
