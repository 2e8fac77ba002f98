"""The emailed HTML against caniemail's data for Gmail, Apple Mail, Outlook and Yahoo (issue 15).

``tests/caniemail_check.mjs`` lists each HTML or CSS feature the edition uses that one of
those clients lacks, has only in part, or was never tested for. Every such (feature, client)
gap must have an entry in ``tests/fixtures/email_client_fallbacks.toml`` saying what that
client's reader sees instead; an entry no longer needed must go. After changing the
template, run this file: its failure prints the entries to add, ready to paste, with
caniemail's notes and where the HTML uses the feature; write each ``fallback`` by reading the
template, not the notes alone.

The check needs ``npm ci`` (``make test`` runs it): caniemail's data comes inside the package.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from digest.config import Config
from tests.conftest import REPO, emailed_html

CHECKER = REPO / "tests" / "caniemail_check.mjs"
CANIEMAIL = REPO / "node_modules" / "caniemail" / "package.json"
FALLBACKS = REPO / "tests" / "fixtures" / "email_client_fallbacks.toml"
SUPPORTS = ("none", "partial", "unknown")
ENTRY_KEYS = {"feature", "support", "clients", "fallback"}

# (feature title, client) → support, as the checker reports it or the fallbacks file accepts it.
Gaps = dict[tuple[str, str], str]


@dataclass(frozen=True)
class Report:
    clients: list[str]
    gaps: Gaps
    features: dict[str, dict[str, Any]]
    blind_spots: list[dict[str, Any]]
    source: str


def check_html(html: str, folder: Path) -> Report:
    """Run the checker on ``html``; fail, rather than skip, without Node or the package."""
    node = shutil.which("node")
    if node is None or not CANIEMAIL.exists():
        pytest.fail("Node.js or node_modules/caniemail is missing: run `make test` (npm ci)", pytrace=False)
    page = folder / "email.html"
    page.write_text(html, encoding="utf-8")
    done = subprocess.run(
        [node, str(CHECKER), str(page)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    features = {feature["feature"]: feature for feature in found["features"]}
    gaps = {
        (title, client): detail["support"]
        for title, feature in features.items()
        for client, detail in feature["clients"].items()
    }
    source = f"caniemail {found['caniemail']}, data of {found['data_updated']}"
    return Report(found["clients"], gaps, features, found["blind_spots"], source)


def load_fallbacks(clients: list[str]) -> Gaps:
    """The accepted gaps; a malformed entry fails here, named by its feature."""
    entries = tomllib.loads(FALLBACKS.read_text(encoding="utf-8")).get("gap", [])
    accepted: Gaps = {}
    for entry in entries:
        name = entry.get("feature", entry)
        assert set(entry) == ENTRY_KEYS, f"{name}: an entry has exactly {sorted(ENTRY_KEYS)}"
        assert entry["support"] in SUPPORTS, f"{name}: support is one of {SUPPORTS}"
        assert len(entry["fallback"].split()) >= 4, f"{name}: say what the reader sees instead"
        for client in entry["clients"]:
            assert client in clients, f"{name}: {client!r} is not one of the checked clients {clients}"
            key = (entry["feature"], client)
            assert key not in accepted, f"{name}: {client} is listed twice"
            accepted[key] = entry["support"]
    return accepted


def stub(title: str, support: str, clients: list[str], report: Report) -> str:
    """A TOML entry to paste, with what caniemail says and where the HTML uses the feature."""
    feature = report.features[title]
    notes = sorted({note for client in clients for note in feature["clients"][client]["notes"]})
    lines = [
        "[[gap]]",
        f"feature = {json.dumps(title)}",
        f'support = "{support}"',
        f"clients = {json.dumps(clients)}",
        'fallback = "TODO: what the reader of these clients sees instead, checked against the template"',
        f"# {feature['url']}",
        *(f"# note: {note}" for note in notes),
        *(f"# used in: {snippet}" for snippet in feature["snippets"]),
    ]
    return "\n".join(lines)


def missing_entries(report: Report, accepted: Gaps) -> list[str]:
    """Stubs for each gap the file lacks or records with another support, by feature."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for (title, client), support in report.gaps.items():
        if accepted.get((title, client)) != support:
            grouped.setdefault((title, support), []).append(client)
    return [stub(title, support, clients, report) for (title, support), clients in sorted(grouped.items())]


def stale_entries(report: Report, accepted: Gaps) -> list[str]:
    """Accepted gaps the HTML no longer has (or has with another support: see the stubs)."""
    return [
        f"{title} ({support}): {client}"
        for (title, client), support in sorted(accepted.items())
        if report.gaps.get((title, client)) != support
    ]


def test_every_feature_a_major_client_lacks_has_a_fallback(branded_config: Config, tmp_path: Path) -> None:
    # Branded: the logo's light plate and dark-mode swap are checked too.
    report = check_html(emailed_html(branded_config), tmp_path)
    assert report.gaps, "the checker found nothing at all: it is broken, not the email perfect"
    accepted = load_fallbacks(report.clients)
    problems = []
    if missing := missing_entries(report, accepted):
        problems.append(
            "The email uses features that a major client lacks (by caniemail) with no fallback on "
            f"record. Give each a fallback in the template, then add its entry to {FALLBACKS.name}:\n\n"
            + "\n\n".join(missing)
        )
    if stale := stale_entries(report, accepted):
        problems.append(
            f"Entries of {FALLBACKS.name} no longer needed (the gap is gone or changed): remove or "
            "update them:\n" + "\n".join(f"  {line}" for line in stale)
        )
    if problems:
        pytest.fail(f"{report.source}\n\n" + "\n\n".join(problems), pytrace=False)


def test_the_checker_sees_what_caniemails_linter_misses(tmp_path: Path) -> None:
    """The gaps tests/caniemail_check.mjs fills (see its head), on a page that has each."""
    html = """<!DOCTYPE html><html><head><style>
    .card{background-image:linear-gradient(#fff,#eee)}
    @media (prefers-color-scheme:dark){.dm .m{border-radius:4px}}
    </style></head><body><table><tbody><tr><td>
    <a href="#europe">Europe</a><picture><img src="a.png" srcset="a.png 1x, b.png 2x"></picture>
    </td></tr></tbody></table></body></html>"""
    report = check_html(html, tmp_path)
    for title, client in [
        ("@media (prefers-color-scheme)", "gmail.android"),
        ("border-radius", "outlook.windows"),
        ("linear-gradient()", "outlook.windows"),
        ("Local anchors", "gmail.ios"),
        ("<picture> element", "gmail.desktop-webmail"),
        ("srcset and sizes attributes", "outlook.outlook-com"),
        ("<body> element", "yahoo.ios"),
    ]:
        assert (title, client) in report.gaps, f"{title} on {client} not found"
    assert report.features["<body> element"]["snippets"] == ["<body>"], "<tbody> is not <body>"
    assert "Chaining selectors" not in report.features, "`.dm .m` is a descendant, not a chain"
    assert not report.blind_spots, (
        "caniemail would take these as supported by every client though their latest test "
        f"says otherwise, and never report them: {report.blind_spots}"
    )
