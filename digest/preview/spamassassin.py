"""SpamAssassin's verdict on one message, through its own Perl API (Mail::SpamAssassin).

Not the `spamassassin` command: it cannot be told where its state folder is, so it creates and
write-tests ~/.spamassassin in the real home of whoever runs it (its passwd entry, whatever
$HOME says), and its X-Spam-Status header rounds the total to one decimal. The API is told every
folder it may write (the user state, the helpers' home), and here each is in a temporary folder
removed after the scan; the total and each rule that hit come back exactly, with the rule's
description.

Every scan is local tests only (no DNS, blocklists, Razor or Pyzor, DKIM or SPF lookups), reads
no user preferences, and has Bayes, the auto-welcomelist and TxRep off: without a trained
database they decide nothing, and with one (a site-wide path in local.cf) scoring a preview
would learn from it and write to it. ``Rules`` says which rules it reads:

- ``MACHINE``, the preview's: what the machine's own SpamAssassin reads, its default rules path
  (sa-update's rules in /var/lib/spamassassin when present, else the package's) and its site
  folder, local.cf included: the editor sees what their mail server would say.
- ``PACKAGED``, the tests': only the rules Debian's package ships and the plugins its *.pre
  files load, so a score changes with the package and nothing else.

    verdict = score(message_bytes)   # MACHINE's rules
    verdict.score, verdict.required  # the total, and where spam starts
    verdict.hits                     # (Hit("HTML_MESSAGE", 0.001, "HTML included in message"), …)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from digest.errors import SpamAssassinError, SpamAssassinMissing

TIMEOUT = 60.0
_HINT = "apt-get install spamassassin, or `make spamassassin`"
# Rule2XSBody runs the body rules sa-compile compiled from whatever rules the machine had when
# it last ran (kept in /var/lib/spamassassin): left out where the rules must be only the
# package's. Elsewhere it only makes the same rules faster.
_COMPILED = re.compile(rb"^\s*loadplugin\s+Mail::SpamAssassin::Plugin::Rule2XSBody\b.*$", re.MULTILINE)
# Printed instead of a verdict when perl runs but has no Mail::SpamAssassin.
_MISSING = "missing"

# Arguments: the rules folder and the site folder ("" for SpamAssassin's default), whether to
# read the site folder's .cf files, the temporary home.
_SCAN = r"""
use strict;
use warnings;

my ($rules, $site, $site_cf, $home) = @ARGV;
unless (eval { require Mail::SpamAssassin; 1 }) {
    if ($@ =~ m{^Can't locate Mail/SpamAssassin\.pm}) { print "missing\n"; exit 1; }
    die $@;
}
my $spamassassin = Mail::SpamAssassin->new({
    ($rules ne '' ? (rules_filename => $rules) : ()),
    ($site ne '' ? (site_rules_filename => $site) : ()),
    ignore_site_cf_files => !$site_cf,
    userstate_dir => "$home/state",
    home_dir_for_helpers => $home,
    dont_copy_prefs => 1,
    local_tests_only => 1,
    require_rules => 1,
    post_config_text => <<'OFF',
use_bayes 0
bayes_auto_learn 0
ifplugin Mail::SpamAssassin::Plugin::AWL
if (version >= 4.000000)
use_auto_welcomelist 0
else
use_auto_whitelist 0
endif
endif
ifplugin Mail::SpamAssassin::Plugin::TxRep
use_txrep 0
endif
OFF
});
$spamassassin->init(0);  # 0: no user preferences
binmode STDIN;
my $message = $spamassassin->parse(do { local $/; <STDIN> });
my $status = $spamassassin->check($message);
print "score\t", $status->get_score(), "\n";
print "required\t", $status->get_required_score(), "\n";
my $hits = $status->get_names_of_tests_hit_with_scores_hash();
for my $name (sort keys %$hits) {
    my $about = $spamassassin->{conf}->get_description_for_rule($name) // '';
    $about =~ s/\s+/ /g;
    print "hit\t$name\t$hits->{$name}\t$about\n";
}
$status->finish();
$message->finish();
$spamassassin->finish();
"""


@dataclass(frozen=True, slots=True)
class Rules:
    """Which rules and plugins a scan reads."""

    rules: Path | None = None  # the rules folder; None: SpamAssassin's default path
    site: Path | None = None  # the site folder (*.pre plugins, local.cf); None: the default
    site_cf: bool = True  # read the site folder's .cf files (local.cf…), not only its plugins
    compiled: bool = True  # let Rule2XSBody run sa-compile's compiled body rules

    def __post_init__(self) -> None:
        if not self.compiled and self.site is None:
            raise ValueError("leaving out the compiled rules needs the site folder named")


MACHINE = Rules()
PACKAGED = Rules(
    rules=Path("/usr/share/spamassassin"), site=Path("/etc/spamassassin"), site_cf=False, compiled=False
)


@dataclass(frozen=True, slots=True)
class Hit:
    name: str
    score: float
    description: str  # "" when the rule has none


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float  # SpamAssassin's total, to its rules' precision
    required: float  # the score at which it calls a message spam
    hits: tuple[Hit, ...]  # every rule that hit, highest score first

    @property
    def spam(self) -> bool:
        return self.score >= self.required


def score(
    message: bytes, rules: Rules = MACHINE, *, timeout: float = TIMEOUT, perl: str | None = None
) -> Verdict:
    """Score one RFC 5322 message (CRLF or LF line ends) with SpamAssassin's local tests.

    ``perl`` is the interpreter to run (default: the PATH's). Raises SpamAssassinMissing when
    perl or Mail::SpamAssassin is not installed, SpamAssassinError when the scan fails or
    takes longer than ``timeout`` seconds. Nothing is written outside a temporary folder.
    """
    program = perl or shutil.which("perl")
    if program is None:
        raise SpamAssassinMissing("perl is not installed", hint=_HINT)
    with tempfile.TemporaryDirectory(prefix="digest-spamassassin-") as folder:
        site = _site(rules, Path(folder))
        arguments = [str(rules.rules or ""), str(site or ""), "1" if rules.site_cf else "", folder]
        # Nothing of the caller's environment but PATH: the locale would change the language of
        # the rules' descriptions; HOME and TMPDIR keep whatever else is written in the folder.
        env = {"HOME": folder, "TMPDIR": folder, "PATH": os.environ.get("PATH", os.defpath)}
        env |= {"LANG": "C", "LC_ALL": "C"}
        try:
            done = subprocess.run(
                [program, "-e", _SCAN, *arguments],
                input=message,
                capture_output=True,
                env=env,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise SpamAssassinError(f"SpamAssassin did not answer within {timeout:g} s") from None
        except OSError as error:
            raise SpamAssassinError(f"SpamAssassin could not run: {error}") from None
    out = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0:
        if out.strip() == _MISSING:
            raise SpamAssassinMissing("perl's Mail::SpamAssassin is not installed", hint=_HINT)
        errors = done.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = f": {errors[-1].strip()}" if errors else ""
        raise SpamAssassinError(f"SpamAssassin failed (exit {done.returncode}){reason}")
    return _verdict(out)


def _site(rules: Rules, folder: Path) -> Path | None:
    """The site folder to read: the named one, or a copy in ``folder`` without Rule2XSBody."""
    if rules.compiled or rules.site is None:
        return rules.site
    site = folder / "site"
    site.mkdir()
    # SpamAssassin reads only the folder's own *.pre and *.cf files, not its subfolders.
    for path in [*rules.site.glob("*.pre"), *(rules.site.glob("*.cf") if rules.site_cf else ())]:
        # As bytes: a .cf file need not be UTF-8, and SpamAssassin reads it as it is.
        (site / path.name).write_bytes(_COMPILED.sub(b"", path.read_bytes()))
    return site


def _verdict(out: str) -> Verdict:
    """The verdict from the scan's lines: score, required, and one ``hit`` per rule."""
    total = required = None
    hits = []
    try:
        for line in out.splitlines():
            kind, _, rest = line.partition("\t")
            if kind == "score":
                total = float(rest)
            elif kind == "required":
                required = float(rest)
            elif kind == "hit":
                name, points, about = rest.split("\t", 2)
                hits.append(Hit(name, float(points), about))
    except ValueError:
        raise SpamAssassinError(f"SpamAssassin's answer is unreadable: {line[:200]!r}") from None
    if total is None or required is None:
        raise SpamAssassinError("SpamAssassin gave no score")
    return Verdict(total, required, tuple(sorted(hits, key=lambda hit: (-hit.score, hit.name))))
