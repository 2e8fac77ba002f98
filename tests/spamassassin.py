"""SpamAssassin for the tests: one message scored with the rules Debian's package ships.

A thin use of digest.preview.spamassassin, which scans through SpamAssassin's Perl API in a
temporary home, local tests only, Bayes off (its docstring says why). The tests pin its
``PACKAGED`` rules: Debian's spamassassin package (`make test` installs it when missing)
carries the whole rule set in /usr/share/spamassassin (72_active.cf, 50_scores.cf, …), so no
sa-update is needed, and the scan reads those files and the plugins the package loads (the
*.pre files of /etc/spamassassin) and nothing else of the machine: rules sa-update may have
fetched into /var/lib/spamassassin would change the result from one day to the next, the
admin's local.cf and the user's ~/.spamassassin are someone else's choices. Local tests only
makes the scores SpamAssassin's score set 0, the one "SpamAssassin with local rules" uses.

    verdict = score(message_bytes)
    verdict.score   # the total, to the rules' own precision
    verdict.rules   # {"HTML_MESSAGE": 0.001, …}: every rule that hit, with its score
    str(verdict)    # one line per rule, with its description, for a failing assertion
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from digest.errors import SpamAssassinError, SpamAssassinMissing
from digest.preview import spamassassin
from digest.preview.spamassassin import PACKAGED, Hit

TIMEOUT = 120  # seconds: the machine may be busy with other tests
INSTALL = "run `make test`, which installs Debian's spamassassin package"


@dataclass(frozen=True, slots=True)
class Verdict:
    hits: tuple[Hit, ...]  # every rule that hit, highest score first

    @property
    def rules(self) -> dict[str, float]:
        return {hit.name: hit.score for hit in self.hits}

    @property
    def score(self) -> float:
        # SpamAssassin's total is this sum.
        return round(sum(hit.score for hit in self.hits), 3)

    def without(self, *names: str) -> Verdict:
        """The verdict less rules that hit only because of how the test scans the message."""
        return Verdict(tuple(hit for hit in self.hits if hit.name not in names))

    def __str__(self) -> str:
        lines = [f"score {self.score:.3f}:"]
        lines += [f"  {hit.score:7.3f} {hit.name}: {hit.description}" for hit in self.hits]
        return "\n".join(lines)


def score(message: bytes) -> Verdict:
    """Score one RFC 5322 message (CRLF or LF line ends) with SpamAssassin's local tests."""
    assert PACKAGED.rules is not None and PACKAGED.site is not None
    if not (PACKAGED.rules / "72_active.cf").exists() or not list(PACKAGED.site.glob("*.pre")):
        pytest.fail(
            f"SpamAssassin's rules are not in {PACKAGED.rules} (or its plugins in {PACKAGED.site}): "
            f"these tests use Debian's spamassassin package; {INSTALL}"
        )
    try:
        verdict = spamassassin.score(message, PACKAGED, timeout=TIMEOUT)
    except SpamAssassinMissing as error:
        pytest.fail(f"SpamAssassin is missing ({error}): {INSTALL}")
    except SpamAssassinError as error:
        pytest.fail(str(error))
    return Verdict(verdict.hits)
