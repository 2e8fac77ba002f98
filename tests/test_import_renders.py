"""A send renders its variants while the store takes the file's rows in (on a database server:
``Sender.import_subscribers``, ``digest.send.importing``), and still stops before its first
batch when a template fails."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select

import digest.send.run
from digest.errors import DigestError
from digest.state import Store, schema
from digest.state.ledger_types import SENT
from tests.conftest import NOW, MakeProject
from tests.test_send import SUBSCRIBERS, run, wait_for

pytest_plugins = ["tests.pgserver"]

EDITION = f"daily-{NOW.date().isoformat()}"


def saved_variants(url: str) -> int:
    with Store(url) as store, store.engine.connect() as conn:
        table = schema.edition_variants
        return conn.execute(select(func.count()).where(table.c.edition_id == EDITION)).scalar() or 0


def project_on(make_project: MakeProject, state_url: str) -> Any:
    project = make_project(replace={'url = "sqlite:///state/digest.sqlite3"': f'url = "{state_url}"'})
    (project.parent / "subscribers" / "daily.csv").write_text(SUBSCRIBERS, encoding="utf-8")
    return project


@pytest.mark.parametrize("state_url", ["sqlite", "postgresql"], indirect=True)
def test_the_variants_are_rendered_while_the_server_takes_the_rows_in(
    make_project: MakeProject, state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = project_on(make_project, state_url)
    threads: list[str] = []
    render = digest.send.run.render_edition

    def noted(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return render(*args, **kwargs)

    monkeypatch.setattr(digest.send.run, "render_edition", noted)
    ends = digest.state.imports._Importer.end
    seen_at_end: list[int] = []

    def end(self: Any, told: Any) -> None:
        # On a server the variants are saved before the rows go in: the end waits for them.
        if state_url.startswith("postgresql"):
            wait_for(lambda: saved_variants(state_url) == 4, timeout=30)
        seen_at_end.append(saved_variants(state_url))
        ends(self, told)

    monkeypatch.setattr(digest.state.imports._Importer, "end", end)
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 0, result.output + result.stderr
    with Store(state_url) as store:
        assert store.ledger.counts(EDITION) == {SENT: 4, "suppressed": 1}
    # The file's four desk choices (all, Business, Culture and Ukraine, Europe): each rendered once.
    assert saved_variants(state_url) == 4 and len(threads) == 4
    if state_url.startswith("postgresql"):
        assert seen_at_end == [4] and set(threads) == {"digest-meanwhile_0"}
    else:  # one writer: the renders' saves would wait for the import's
        assert seen_at_end == [0] and set(threads) == {"MainThread"}


def test_a_template_failing_meanwhile_stops_the_send_before_its_first_batch(
    make_project: MakeProject, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = project_on(make_project, postgres_url)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise DigestError("templates/digest.mjml.j2:3: unexpected end of template")

    monkeypatch.setattr(digest.send.run, "render_edition", broken)
    result = run(project, "send", "--list", "daily")
    assert result.exit_code == 1
    assert "templates/digest.mjml.j2:3: unexpected end of template" in result.stderr
    with Store(postgres_url) as store:
        assert store.ledger.counts(EDITION) == {}  # nothing claimed, nothing sent
        # The import itself was done, and stays.
        assert {reader.email for reader in store.readers.of_list("daily")} == {
            "anna@example.org",
            "bob@example.org",
            "carla@example.org",
            "dave@example.org",
            "erin@example.org",
        }
