"""The outbox transport: each message becomes an .eml file in a folder (demo and testing)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from digest.address import address_key
from digest.config.transports import OutboxOptions
from digest.errors import TransportError
from digest.output import write_atomically
from digest.send.transports.base import Batch, Outcome, Ready, Record


class OutboxTransport:
    """Writes ``<path>/<edition>/<recipient>.eml``; a resend of the same message overwrites it."""

    name = "outbox"
    max_batch = 200

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = exc.strerror or exc
            raise TransportError(f"cannot create the outbox folder: {problem}", path=self.folder) from None

    def send(self, batch: Batch, record: Record | None = None, ready: Ready | None = None) -> list[Outcome]:
        files = {}
        for envelope in batch.envelopes:
            files[self._path(batch.edition_id, envelope.recipient.email)] = batch.message(envelope).as_bytes()
        if ready is not None:
            ready()
        write_atomically(files)
        outcomes = [
            Outcome.ok(envelope.recipient.email, str(path))
            for envelope, path in zip(batch.envelopes, files, strict=True)
        ]
        # The files are written all at once, so their outcomes are known (and recorded) together.
        if record is not None and outcomes:
            record(list(enumerate(outcomes)))
        return outcomes

    def close(self) -> None:
        """Nothing to release."""

    def _path(self, edition_id: str, email: str) -> Path:
        # Readable, but never a path: only safe characters, plus a hash so two addresses
        # that clean up the same way still get two files.
        safe = re.sub(r"[^A-Za-z0-9@._+-]", "_", email)[:120]
        tag = hashlib.sha256(address_key(email).encode()).hexdigest()[:8]
        return self.folder / re.sub(r"[^A-Za-z0-9._-]", "_", edition_id) / f"{safe}.{tag}.eml"


def create(options: OutboxOptions, env: Mapping[str, str], root: Path) -> OutboxTransport:
    return OutboxTransport(root / options.path)
