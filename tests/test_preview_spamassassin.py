"""The preview's spam check: what it shows of a verdict, and the real SpamAssassin behind it.

First the check itself (its detail, its messages, its cache) with a stand-in scorer; then the
real SpamAssassin through its Perl API (digest.preview.spamassassin): it scores as the
machine's SpamAssassin would, shows the rules that hit, says why when it could not score, and
writes nothing outside its own temporary folder: not in $HOME, not in the home of the passwd
entry (where the `spamassassin` command made ~/.spamassassin), not left in /tmp. Those tests
are skipped only when SpamAssassin is absent (`make spamassassin` installs it).
"""

from __future__ import annotations

import functools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.errors import SpamAssassinError, SpamAssassinMissing
from digest.preview import spamassassin
from digest.preview.checks import SPAM_NOT_INSTALLED, SpamResults, spam_check
from digest.preview.spamassassin import MACHINE, PACKAGED, Hit, Rules, Verdict
from tests.conftest import REPO

EDITION = REPO / "tests" / "golden" / "daily.eml"  # a real edition, as digest sends it
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
# A rule of the site's own, as an admin would add to local.cf.
LOCAL_CF = (
    "body DIGEST_LOCAL_RULE /Morning Ledger/\n"
    "describe DIGEST_LOCAL_RULE Names the test newsletter\n"
    "score DIGEST_LOCAL_RULE 2.345\n"
)


def test_spam_check_shows_the_rules_or_says_why_it_did_not_run() -> None:
    def missing(message: bytes) -> Verdict:
        raise SpamAssassinMissing("perl's Mail::SpamAssassin is not installed")

    def slow(message: bytes) -> Verdict:
        raise SpamAssassinError("SpamAssassin did not answer within 30 s")

    not_run = spam_check(b"Subject: x\r\n\r\nbody\r\n", scorer=missing)
    assert not_run["ok"] is None and not_run["detail"] == SPAM_NOT_INSTALLED
    timed_out = spam_check(b"Subject: x\r\n\r\nbody\r\n", scorer=slow)
    assert timed_out["ok"] is None and timed_out["detail"] == "SpamAssassin did not answer within 30 s"
    hits = (
        Hit("MIME_HTML_ONLY", 0.1, "Message only has text/html MIME parts"),
        Hit("HTML_MESSAGE", 0.001, ""),
    )
    found = spam_check(b"Subject: y\r\n\r\nbody\r\n", scorer=lambda _message: Verdict(0.101, 5.0, hits))
    assert found == {
        "id": "spam",
        "name": "Spam score",
        "ok": True,
        "detail": "score 0.101, spam at 5 (MIME_HTML_ONLY 0.1, HTML_MESSAGE 0.001)",
    }
    spam = spam_check(b"Subject: z\r\n\r\nbody\r\n", scorer=lambda _message: Verdict(5.0, 5.0, ()))
    assert spam["ok"] is False and spam["detail"] == "score 5, spam at 5"


def test_spam_verdicts_are_remembered_only_where_asked() -> None:
    calls: list[bytes] = []

    def scorer(message: bytes) -> Verdict:
        calls.append(message)
        if message == b"slow":
            raise SpamAssassinError("SpamAssassin did not answer within 30 s")
        return Verdict(0.1, 5.0, ())

    results = SpamResults(limit=2)
    first = spam_check(b"one", scorer=scorer, results=results)
    assert spam_check(b"one", scorer=scorer, results=results) == first and calls == [b"one"]
    spam_check(b"one", scorer=scorer)  # no results given: nothing remembered or reused
    assert calls == [b"one", b"one"]
    spam_check(b"two", scorer=scorer, results=results)
    spam_check(b"three", scorer=scorer, results=results)  # over the limit: starts afresh
    spam_check(b"one", scorer=scorer, results=results)
    assert calls == [b"one", b"one", b"two", b"three", b"one"]
    spam_check(b"slow", scorer=scorer, results=results)  # a failure is not a verdict: tried again
    spam_check(b"slow", scorer=scorer, results=results)
    assert calls[-2:] == [b"slow", b"slow"]


@pytest.fixture(scope="module")
def perl() -> str:
    perl = shutil.which("perl")
    probe = [perl or "perl", "-MMail::SpamAssassin", "-e", "1"]
    if perl is None or subprocess.run(probe, capture_output=True).returncode != 0:
        pytest.skip(
            "SpamAssassin (perl's Mail::SpamAssassin) is not installed: `make spamassassin` installs it"
        )
    return perl


def _passwd_state() -> list[str] | None:
    """What ~/.spamassassin of the passwd entry holds (None: no such folder)."""
    folder = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".spamassassin"
    if not folder.is_dir():
        return None
    # The command's write-test files live for an instant, and another process on the machine
    # may be running the command.
    return sorted(path.name for path in folder.iterdir() if not path.name.startswith(".sawritetest"))


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty $HOME and an empty temporary root; after the test, both still empty and the
    passwd home's ~/.spamassassin as it was. Yields the temporary root."""
    home, temporary = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temporary.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    before = _passwd_state()
    yield temporary
    assert not (home / ".spamassassin").exists()
    assert list(home.iterdir()) == [], "the scan wrote in $HOME"
    assert list(temporary.iterdir()) == [], "the scan left its temporary folder behind"
    assert _passwd_state() == before, "the scan changed ~/.spamassassin of the passwd home"


def test_the_preview_scores_a_real_edition_and_shows_the_rules(perl: str, isolated: Path) -> None:
    result = spam_check(EDITION.read_bytes())  # the preview's own: the machine's rules
    assert result["id"] == "spam" and result["ok"] is True, result
    assert re.fullmatch(r"score -?[\d.]+, spam at [\d.]+ \(.+\)", result["detail"]), result
    assert "HTML_MESSAGE 0.001" in result["detail"]  # exact: the header would say 0.0


def test_a_spam_message_fails_the_check_with_its_rules(perl: str, isolated: Path) -> None:
    message = f"From: a@example.org\nTo: b@example.org\nSubject: offer\n\n{GTUBE}\n".encode()
    result = spam_check(message)
    assert result["ok"] is False, result
    assert result["detail"].startswith("score 1") and "GTUBE 1000" in result["detail"], result


def test_the_verdict_is_exact_with_descriptions(perl: str, isolated: Path) -> None:
    for rules in (MACHINE, PACKAGED):
        verdict = spamassassin.score(EDITION.read_bytes(), rules)
        assert Hit("HTML_MESSAGE", 0.001, "HTML included in message") in verdict.hits
        assert verdict.score == round(sum(hit.score for hit in verdict.hits), 3)
        assert verdict.required == 5.0 and not verdict.spam
        assert [hit.score for hit in verdict.hits] == sorted(
            (hit.score for hit in verdict.hits), reverse=True
        )


def test_the_site_s_local_cf_counts_where_asked(perl: str, isolated: Path, tmp_path: Path) -> None:
    assert PACKAGED.site is not None
    site = tmp_path / "site"
    site.mkdir()
    for pre in PACKAGED.site.glob("*.pre"):
        shutil.copy(pre, site)
    (site / "local.cf").write_text(LOCAL_CF)
    message = EDITION.read_bytes()
    machine = spamassassin.score(message, Rules(site=site))  # as MACHINE does with /etc/spamassassin
    assert Hit("DIGEST_LOCAL_RULE", 2.345, "Names the test newsletter") in machine.hits
    plugins_only = spamassassin.score(message, Rules(site=site, site_cf=False, compiled=False))
    assert "DIGEST_LOCAL_RULE" not in {hit.name for hit in plugins_only.hits}
    assert round(machine.score - plugins_only.score, 3) == 2.345


def test_the_scan_writes_nothing_outside_its_temporary_folder(
    perl: str, isolated: Path, tmp_path: Path
) -> None:
    strace = shutil.which("strace")
    if strace is None or subprocess.run([strace, "-o", "/dev/null", "true"], capture_output=True).returncode:
        pytest.skip("strace is not installed, or cannot trace here: it watches what the scan writes")
    log = tmp_path / "strace.log"
    traced = tmp_path / "perl"
    traced.write_text(f'#!/bin/sh\nexec {strace} -f -qq -s 4096 -o {log} -e trace=%file {perl} "$@"\n')
    traced.chmod(0o755)
    spamassassin.score(EDITION.read_bytes(), MACHINE, perl=str(traced))
    written = _written(log.read_text())
    # The trace sees the writes: SpamAssassin's write-test of its state folder, in the scan's.
    assert any(path.startswith(str(isolated)) and path.endswith("/.spamassassin") for path in written)
    outside = [path for path in written if not path.startswith(f"{isolated}/") and path != "/dev/null"]
    assert outside == [], "the scan wrote outside its temporary folder"


# The calls that change a file by name (readlink, stat and the like only read).
CHANGES = {
    *("mkdir", "mkdirat", "mknod", "mknodat", "rmdir", "unlink", "unlinkat", "truncate"),
    *("rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat"),
    *("chmod", "fchmodat", "chown", "lchown", "fchownat", "utime", "utimes", "utimensat", "futimesat"),
}


def _written(trace: str) -> list[str]:
    """The paths of the trace's successful calls that create, change or remove a file."""
    written = []
    for found in re.finditer(r"^\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+)", trace, re.MULTILINE):
        call, arguments, returned = found.groups()
        opens = call in ("open", "openat", "creat") and re.search(
            r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC", arguments
        )
        changes = call in CHANGES
        if (opens or changes) and returned != "-1":
            written += re.findall(r'"((?:[^"\\]|\\.)*)"', arguments)
    return written


def test_a_timeout_or_a_failure_is_a_message_not_a_traceback(
    perl: str, isolated: Path, tmp_path: Path
) -> None:
    message = EDITION.read_bytes()
    slow = functools.partial(spamassassin.score, timeout=0.01)
    with pytest.raises(SpamAssassinError, match=r"^SpamAssassin did not answer within 0\.01 s$"):
        slow(message)
    assert spam_check(message, scorer=slow)["detail"] == "SpamAssassin did not answer within 0.01 s"
    empty = tmp_path / "no-rules"
    empty.mkdir()
    broken = functools.partial(spamassassin.score, rules=Rules(rules=empty, site=empty))
    failed = spam_check(message, scorer=broken)
    assert failed["ok"] is None
    assert re.fullmatch(r"SpamAssassin failed \(exit \d+\): config: no rules were found!.*", failed["detail"])


def test_without_mail_spamassassin_the_check_says_it_is_not_installed(
    perl: str, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A perl whose @INC lacks the folders that hold Mail/SpamAssassin.pm: a machine without it.
    hiding = tmp_path / "perl"
    hide = 'BEGIN { @INC = grep { !-e "$_/Mail/SpamAssassin.pm" } @INC }'
    hiding.write_text(f"#!/bin/sh\nexec {perl} -e '{hide}' \"$@\"\n")
    hiding.chmod(0o755)
    message = EDITION.read_bytes()
    with pytest.raises(SpamAssassinMissing, match="Mail::SpamAssassin is not installed"):
        spamassassin.score(message, perl=str(hiding))
    assert spam_check(message, scorer=functools.partial(spamassassin.score, perl=str(hiding)))["detail"] == (
        SPAM_NOT_INSTALLED
    )
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(SpamAssassinMissing, match="perl is not installed"):
        spamassassin.score(message)


def test_leaving_out_compiled_rules_needs_the_site_folder() -> None:
    with pytest.raises(ValueError, match="site folder"):
        Rules(compiled=False)
