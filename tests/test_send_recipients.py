"""A send's recipients (``digest.send.recipients``): on a database server, a list's first send
fills its ledger from the rows the import staged and sends them while the server inserts them
as readers; on SQLite, the readers are in before anything is filled or sent."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import digest.send.run
from digest.config import load_config
from digest.errors import DigestError
from digest.send.run import Sender
from digest.state import Store, schema
from digest.state.import_stage import Stage
from digest.state.ledger_types import PENDING, SENT
from digest.state.recipients import desk_groups, fill_ledger
from tests.conftest import NOW, MakeProject
from tests.test_send import SUBSCRIBERS, run, wait_for

pytest_plugins = ["tests.pgserver"]

EDITION = f"daily-{NOW.date().isoformat()}"
READERS = {"anna@example.org", "bob@example.org", "carla@example.org", "dave@example.org", "erin@example.org"}
SENT_TO = Counter(["anna@example.org", "bob@example.org", "carla@example.org", "erin@example.org"])


def project_on(make_project: MakeProject, state_url: str) -> Path:
    project = make_project(replace={'url = "sqlite:///state/digest.sqlite3"': f'url = "{state_url}"'})
    (project.parent / "subscribers" / "daily.csv").write_text(SUBSCRIBERS, encoding="utf-8")
    return project


def sent_to(project: Path) -> Counter[str]:
    """Each address the outbox holds a message for, and how many."""
    found: Counter[str] = Counter()
    for path in (project.parent / "outbox" / EDITION).glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found[message["To"].addresses[0].addr_spec.lower()] += 1
    return found


def recipients(store: Store, edition_id: str) -> set[tuple[str, str, str, str | None]]:
    """The edition's ledger as a fill leaves it: address, name, variant, and why a row is not
    to be sent."""
    ledger = schema.ledger
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(ledger.c.email, ledger.c.name, ledger.c.variant, ledger.c.error).where(
                ledger.c.edition_id == edition_id
            )
        )
        return {(email_, name, variant, error) for email_, name, variant, error in rows}


def readers_before(
    state_url: str, project: Path, monkeypatch: pytest.MonkeyPatch, then: Any = None
) -> list[int]:
    """Patch the import's insert of its new readers: on a server, wait until the sender sent
    from the staged rows; note how many were sent; run ``then`` before the insert."""
    end = Stage.end
    sent: list[int] = []

    def readers_in(self: Stage, now: Any) -> None:
        if state_url.startswith("postgresql"):
            wait_for(lambda: len(sent_to(project)) > 0, timeout=30)
        sent.append(len(sent_to(project)))
        if then:
            then()
        end(self, now)

    monkeypatch.setattr(Stage, "end", readers_in)
    return sent


@pytest.mark.parametrize("state_url", ["sqlite", "postgresql"], indirect=True)
def test_a_first_send_sends_while_the_server_inserts_the_readers(
    make_project: MakeProject, state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = project_on(make_project, state_url)
    sent_before_readers = readers_before(state_url, project, monkeypatch)
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 0, result.output + result.stderr
    assert (sent_before_readers[0] > 0) == state_url.startswith("postgresql")
    assert sent_to(project) == SENT_TO
    with Store(state_url).migrate() as store:
        assert {reader.email for reader in store.readers.of_list("daily")} == READERS
        assert store.ledger.counts(EDITION) == {SENT: 4, "suppressed": 1}
        # What the staged rows gave is what the readers give: names, variants, reasons.
        sender = Sender(load_config(project), "daily", store, now=NOW)
        groups = desk_groups(store.engine, "daily", sender.variant_of)
        fill_ledger(store.engine, "check", "daily", dict.fromkeys(groups, PENDING), now=NOW)
        assert recipients(store, EDITION) == recipients(store, "check")
        assert len(recipients(store, EDITION)) == 5


def test_a_reader_added_while_the_first_import_runs_gets_the_edition_once(
    make_project: MakeProject, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = project_on(make_project, postgres_url)

    def editor_adds() -> None:
        with Store(postgres_url).migrate() as store:
            for address in ("zoe@example.org", "anna@example.org"):  # anna is in the file too
                store.readers.add("daily", address, name="By hand", desks=None, now=NOW)
            store.readers.add("weekly", "yuri@example.org", name="Another list's", desks=None, now=NOW)

    readers_before(postgres_url, project, monkeypatch, then=editor_adds)
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 0, result.output + result.stderr
    assert sent_to(project) == SENT_TO + Counter(["zoe@example.org"])
    with Store(postgres_url) as store:
        assert {reader.email for reader in store.readers.of_list("daily")} == READERS | {"zoe@example.org"}


def test_an_import_failing_after_the_fill_stops_the_send_and_a_rerun_sends_each_once(
    make_project: MakeProject, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = project_on(make_project, postgres_url)

    def fails() -> None:
        raise DigestError("the readers could not be stored: disk full")

    readers_before(postgres_url, project, monkeypatch, then=fails)
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 1
    assert "the readers could not be stored: disk full" in result.stderr
    first = sent_to(project)
    assert first and set(first.values()) == {1}
    with Store(postgres_url) as store:
        assert list(store.readers.of_list("daily")) == []  # the import is all or nothing
    monkeypatch.undo()
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 0, result.output + result.stderr
    assert sent_to(project) == SENT_TO
    with Store(postgres_url) as store:
        assert {reader.email for reader in store.readers.of_list("daily")} == READERS
        assert store.ledger.counts(EDITION) == {SENT: 4, "suppressed": 1}


def test_a_failing_template_stops_a_send_on_postgresql_before_its_first_batch(
    make_project: MakeProject, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = project_on(make_project, postgres_url)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise DigestError("templates/digest.mjml.j2:3: unexpected end of template")

    monkeypatch.setattr(digest.send.run, "render_edition", broken)
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 1
    assert "templates/digest.mjml.j2:3: unexpected end of template" in result.stderr
    assert sent_to(project) == Counter()
    with Store(postgres_url) as store:
        assert SENT not in store.ledger.counts(EDITION)
        # The import, and the fill beside it, were done, and stay for the next run.
        assert {reader.email for reader in store.readers.of_list("daily")} == READERS
