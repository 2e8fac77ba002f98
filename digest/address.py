"""Email addresses: the one normalisation that subscribers, suppressions, tokens and transports share.

An address is checked and normalised once, where it comes in (a subscriber file, an editor's
command, an import), by email-validator: the domain in its Unicode form (IDNA), the local part
as written. Everywhere after that it is compared, stored and signed by its ``address_key``,
folded case-insensitively, so that ``Anna@Example.org`` in the subscriber file, the ledger, a
suppression from SendGrid and an unsubscribe link are one reader. This module imports nothing
of digest, so the state store at the bottom can use it.
"""

from __future__ import annotations

import unicodedata

from email_validator import EmailSyntaxError, validate_email
from email_validator.rfc_constants import (
    CASE_INSENSITIVE_MAILBOX_NAMES,
    DOT_ATOM_TEXT,
    DOT_ATOM_TEXT_INTL,
    EMAIL_MAX_LENGTH,
)
from email_validator.syntax import validate_email_local_part

# Distinct domains whose verdict is remembered; past this, new domains take the slow path.
MAX_KNOWN_DOMAINS = 50_000


def address_key(address: str) -> str:
    """How digest compares, stores and signs an address: without surrounding space, case folded.

    Mailbox names are case-sensitive in theory and not in practice, and a reader must not get
    two copies, or keep getting mail after unsubscribing, because of a capital letter.
    """
    return address.strip().casefold()


def normalize_address(address: str) -> str:
    """An address typed by someone (an editor, an import), as its key; EmailNotValidError if it is none."""
    return address_key(Addresses().normalized(address.strip()))


class Addresses:
    """email-validator's verdict on each address, with each domain's checks done only once.

    Most of email-validator's time goes on the domain (IDNA and Unicode checks), and a list
    has a few domains shared by many addresses. An address takes the fast path only when its
    domain has passed before and its local part is one email-validator itself would accept as
    it is, and the address is within the length limit in each of the forms the library
    measures. Anything else goes to the library.
    """

    def __init__(self) -> None:
        # The domain as written → its normalized form, and the longest of its forms (as
        # written, normalized, IDNA ASCII) in UTF-8 bytes, as email-validator measures them.
        self._domains: dict[str, tuple[str, int]] = {}
        # Characters the library has accepted in an unquoted local part, anywhere and first:
        # past its dot-atom pattern it judges a Unicode local part character by character
        # (a combining mark only not first), so its verdict on each is remembered.
        self._inside: set[str] = set()
        self._first: set[str] = set()

    def normalized(self, address: str) -> str:
        """The normalized address, or EmailNotValidError saying what is wrong with it."""
        local, _, domain = address.rpartition("@")
        known = self._domains.get(domain)
        if (
            known is not None
            and self._as_written(local)
            and len(local.encode()) + 1 + known[1] <= EMAIL_MAX_LENGTH
        ):
            return f"{local}@{known[0]}"
        result = validate_email(address, check_deliverability=False, allow_smtputf8=True)
        if len(self._domains) < MAX_KNOWN_DOMAINS:
            forms = (domain, result.domain, result.ascii_domain)
            self._domains[domain] = (result.domain, max(len(form.encode()) for form in forms))
        return result.normalized

    def _as_written(self, local: str) -> bool:
        """Whether the library accepts a local part unquoted and normalizes it to itself: plain
        ASCII in its dot-atom pattern and not a mailbox name it lowercases, or Unicode in NFC
        in its international dot-atom pattern whose characters it accepts."""
        if local.isascii():
            return bool(DOT_ATOM_TEXT.match(local)) and local.lower() not in CASE_INSENSITIVE_MAILBOX_NAMES
        if not DOT_ATOM_TEXT_INTL.match(local) or not unicodedata.is_normalized("NFC", local):
            return False
        if local[0] in self._first and self._inside.issuperset(local):
            return True
        try:
            validate_email_local_part(local, allow_smtputf8=True)
        except EmailSyntaxError:
            return False  # the library, asked about the whole address, says why
        self._first.add(local[0])
        self._inside.update(local)
        return True


def mask_address(email: str) -> str:
    """``an***@example.org``: enough for a reader to recognise, too little to harvest (logs, pages)."""
    local, _, domain = email.rpartition("@")
    if not local:
        return "***"
    return f"{local[: 2 if len(local) > 2 else 1]}***@{domain}"
