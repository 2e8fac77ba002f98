"""SpamAssassin for the tests: one message scored with the rules Debian's package ships.

Debian's spamassassin package (`make test` installs it when missing) carries the whole rule
set in /usr/share/spamassassin (72_active.cf, 50_scores.cf, …), so no sa-update is needed. The
scan is pinned to exactly those files and to the plugins the package loads (the *.pre files of
/etc/spamassassin), and reads nothing else of the machine: rules sa-update may have fetched
into /var/lib/spamassassin would change the result from one day to the next, the admin's
local.cf and the user's ~/.spamassassin are someone else's choices.

Local tests only: no DNS, no blocklists, no Razor or Pyzor, no DKIM or SPF lookups, so the
scores are SpamAssassin's score set 0, the one "SpamAssassin with local rules" uses. Bayes is
off: with no trained database it decides nothing, and learning from test messages would only
write state.

It runs SpamAssassin's own Perl API (Mail::SpamAssassin, what the spamassassin command calls)
rather than the command: the command cannot be told where its state folder is, and so creates
and write-tests ~/.spamassassin in the real home of whoever runs the tests (its passwd entry,
whatever $HOME says). Here every folder it writes is a temporary one, and the rules and their
scores come back exactly, where the X-Spam-Status header rounds the total to one decimal.

    verdict = score(message_bytes)
    verdict.score   # the total, to the rules' own precision
    verdict.rules   # {"HTML_MESSAGE": 0.001, …}: every rule that hit, with its score
    str(verdict)    # one line per rule, with its description, for a failing assertion
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

RULES = Path("/usr/share/spamassassin")  # the rules of Debian's package, as released
SITE = Path("/etc/spamassassin")  # where the package's *.pre files load the plugins
# Rule2XSBody (sa-compile) runs the body rules compiled from whatever rules the machine had
# when sa-compile last ran, kept in /var/lib/spamassassin: only faster, so left out.
COMPILED = re.compile(r"^\s*loadplugin\s+Mail::SpamAssassin::Plugin::Rule2XSBody\b.*$", re.MULTILINE)
TIMEOUT = 120

# Arguments: the rules folder, the site folder (plugins), the temporary home.
SCAN = r"""
use strict;
use warnings;
use Mail::SpamAssassin;

my ($rules, $site, $home) = @ARGV;
my $spamassassin = Mail::SpamAssassin->new({
    rules_filename => $rules,
    site_rules_filename => $site,
    userprefs_filename => "$home/user_prefs",
    userstate_dir => "$home/state",
    home_dir_for_helpers => $home,
    dont_copy_prefs => 1,
    local_tests_only => 1,
    require_rules => 1,
    post_config_text => "use_bayes 0\nbayes_auto_learn 0\n",
});
binmode STDIN;
my $message = $spamassassin->parse(do { local $/; <STDIN> });
my $status = $spamassassin->check($message);
my $hits = $status->get_names_of_tests_hit_with_scores_hash();
print "$_ $hits->{$_}\n" for sort keys %$hits;
$status->finish();
$message->finish();
$spamassassin->finish();
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    rules: dict[str, float]  # every rule that hit → its score

    @property
    def score(self) -> float:
        # SpamAssassin's total is this sum.
        return round(sum(self.rules.values()), 3)

    def without(self, *names: str) -> Verdict:
        """The verdict less rules that hit only because of how the test scans the message."""
        return Verdict({rule: points for rule, points in self.rules.items() if rule not in names})

    def __str__(self) -> str:
        lines = [f"score {self.score:.3f}:"]
        for rule, points in sorted(self.rules.items(), key=lambda hit: (-hit[1], hit[0])):
            lines.append(f"  {points:7.3f} {rule}: {describe(rule)}")
        return "\n".join(lines)


def score(message: bytes) -> Verdict:
    """Score one RFC 5322 message (CRLF or LF line ends) with SpamAssassin's local tests."""
    perl = shutil.which("perl")
    if shutil.which("spamassassin") is None or perl is None:
        pytest.fail("SpamAssassin is missing: run `make test`, which installs Debian's spamassassin package")
    if not (RULES / "72_active.cf").exists() or not list(SITE.glob("*.pre")):
        pytest.fail(
            f"SpamAssassin's rules are not in {RULES} (or its plugins in {SITE}): these tests use "
            "Debian's spamassassin package; run `make test`, which installs it"
        )
    with tempfile.TemporaryDirectory(prefix="digest-spamassassin-") as folder:
        home = Path(folder)
        site = home / "site"
        site.mkdir()
        for pre in SITE.glob("*.pre"):
            (site / pre.name).write_text(COMPILED.sub("", pre.read_text(encoding="utf-8")), encoding="utf-8")
        (home / "user_prefs").write_text("")
        # Nothing of the caller's environment but PATH: the locale would change the language
        # of SpamAssassin's messages, and HOME is the temporary folder too.
        env = {"HOME": folder, "PATH": os.environ.get("PATH", os.defpath), "LANG": "C", "LC_ALL": "C"}
        done = subprocess.run(
            [perl, "-e", SCAN, str(RULES), str(site), folder],
            input=message,
            capture_output=True,
            env=env,
            timeout=TIMEOUT,
        )
    if done.returncode != 0:
        pytest.fail(f"SpamAssassin failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    hits = {}
    for line in done.stdout.decode().splitlines():
        rule, points = line.split()
        hits[rule] = float(points)
    return Verdict(hits)


@functools.cache
def describe(rule: str) -> str:
    """The rule's English description from the rules files ("" when it has none)."""
    pattern = re.compile(rf"^\s*describe\s+{re.escape(rule)}\s+(.+?)\s*$", re.MULTILINE)
    for path in sorted(RULES.glob("*.cf")):
        found = pattern.search(path.read_text(encoding="utf-8", errors="replace"))
        if found:
            return found.group(1)
    return ""
