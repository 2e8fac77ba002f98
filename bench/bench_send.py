"""Time `Sender.send()` to many synthetic subscribers, through SendGrid and SMTP (`make bench`).

Builds a project in a temp folder for each run: `tests/conftest.py`'s config with a sixth
desk, the example stories with today's dates (`examples/freshen.py`: 30 stories in 6 desks),
and a subscriber CSV whose desk choices make 32 variants (30% all desks, the rest one of 31
combinations; 1% unsubscribed; nine names in ten, half of them with non-ASCII letters).
Each run sends the whole list in fresh subprocesses, so a peak RSS (``ru_maxrss``) is its
own. The runs (sizes are comma-separated lists):

- ``--sendgrid`` (100,000 and 1,000,000): to a local HTTP server that answers every
  ``POST /v3/mail/send`` with 202; the ledger in SQLite;
- ``--smtp`` (100,000): to a local SMTP server with 4 connections; by default a bare asyncio
  server that takes each message and drops it (``--smtp-sink aiosmtpd``: a real aiosmtpd
  server, which spends about 1.2 ms of CPU per message and so sets the pace on a small machine);
- ``--dkim`` (none, ed25519, rsa): the SMTP runs once per way of signing, back to back: unsigned,
  an Ed25519 key, an RSA-2048 key (``both``: the two together); the difference in CPU per
  recipient from the unsigned run of the same size is the cost of signing;
- ``--postgresql`` (100,000) × ``--senders`` (1 and 2): the SendGrid path with the ledger on a
  local PostgreSQL server (Debian's, as in the tests, but syncing to disk), the senders
  started together and sharing the list; ```--latency MS`` makes the SendGrid sink of these
  runs answer each request that much later, as the real service does from across the
  network (a sender then waits for most of its time, and a second sender on another machine
  fills that wait; on this one machine the wait leaves the CPU to the other sender, so two
  senders here are a fair model of two machines sharing one database); ``--handshake MS``
  makes each new connection to that sink wait that much before its first answer: the round
  trips of the TCP and TLS handshakes a client pays when it does not keep its connections;
- ``--warm``: every run starts with the list already in the state store (imported untimed),
  as on any day after the first, when the send finds the file unchanged and does not read it;
- ``--naive`` (200): the baseline, each of the first N subscribers rendered and composed on
  their own (jinja2 → MJML → premailer, then their message), per path.

Each sink runs in a process of its own, so the CPU it spends is not counted (it is shown
apart). The send is the whole of ``Sender.send()``: building and rendering the edition,
reading and validating the CSV, filling the ledger, claiming, building payloads or messages,
posting, recording. CPU is that of the sending processes (all threads, user and system) and
of the processes they waited for (a large file is read ahead in a second process), over the
send, divided by the number of recipients. Beside each ratio to the bare sender: the time each
spent in the garbage collector's passes (``Collector``), which each pays in its own way.

``--breakdown N`` (default 10,000; 0 skips it) sends N recipients once more per path (and
the SendGrid path on PostgreSQL too, when there are PostgreSQL runs) with a meter around the
functions of each stage: thread CPU time, each stage without the stages it
calls (``BENCH_METER=wall`` in the environment: wall time instead, to see where a sender
waits). The meter itself costs a few µs per recipient. ``--cprofile N`` lists the functions
with the most CPU of their own under cProfile instead (much slower; for digging in).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import csv
import datetime as dt
import functools
import gc
import http.server
import itertools
import json
import os
import platform
import pstats
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The config's five desks and a sixth, Film, that the bench's config gives the stories
# tagged Film first (the config's own maps them to Culture).
DESKS = ("Ukraine", "North America", "Business", "Europe", "Culture", "Film")
# Every subscriber chooses one of these: all desks (an empty cell), each desk alone, each pair
# and ten of the triples, so a list has 32 variants to render and send.
CHOICES: tuple[tuple[str, ...], ...] = (
    (),
    *itertools.combinations(DESKS, 1),
    *itertools.combinations(DESKS, 2),
    *itertools.islice(itertools.combinations(DESKS, 3), 10),
)
VARIANTS = len(CHOICES)
FIRST = ["Olha", "James", "Sofie", "Dmytro", "Priya", "Lúcia", "Jürgen", "Aisha", "Søren", "Zoë", "Олена"]
LAST = ["Marchenko", "Whitaker", "Lindqvist", "Savchuk", "Raman", "Ferreira", "Hoffmann", "Коваль", "Dubois"]
DOMAINS = ["example.org", "example.com", "example.net", "news.example.org", "mail.example.co.uk"]
SECRET = "bench-secret-for-unsubscribe-links-0123456789"
API_KEY = "SG.bench-key"
SMTP_CONNECTIONS = 4
PATHS = ("sendgrid", "smtp")
# The keys each --dkim mode signs with ([[transports.bench.dkim]] tables).
DKIM_MODES = {"none": (), "ed25519": ("ed25519",), "rsa": ("rsa",), "both": ("rsa", "ed25519")}


# -- the project -----------------------------------------------------------------------------


def write_subscribers(path: Path, rows: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["email", "name", "desks", "status"])
        for n in range(rows):
            email = f"reader.{n}@{DOMAINS[n % len(DOMAINS)]}"
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}" if rng.random() < 0.9 else ""
            desks = CHOICES[0] if rng.random() < 0.3 else rng.choice(CHOICES[1:])
            status = "unsubscribed" if rng.random() < 0.01 else rng.choice(["active", ""])
            out.writerow([email, name, ";".join(desks), status])


def dkim_key(kind: str) -> bytes:
    """A fresh key: RSA-2048 as PEM, Ed25519 as dknewkey --ktype ed25519 writes it (base64 seed)."""
    import base64

    import nacl.signing
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if kind == "ed25519":
        return base64.b64encode(bytes(nacl.signing.SigningKey.generate()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def dkim_tables(folder: Path, mode: str) -> str:
    """Fresh keys in ``folder`` and the SMTP transport's [[…dkim]] tables that name them."""
    tables = ""
    for kind in DKIM_MODES[mode]:
        (folder / f"dkim-{kind}.key").write_bytes(dkim_key(kind))
        tables += (
            f'\n[[transports.bench.dkim]]\ndomain = "news.example.org"\nselector = "bench-{kind}"\n'
            f'key_file = "dkim-{kind}.key"\n'
        )
    return tables


def write_project(
    folder: Path, rows: int, path: str, port: int, state_url: str | None = None, dkim: str = "none"
) -> Path:
    """config.toml, today's feeds and the subscriber CSV for one path, in ``folder``."""
    for sub in ("feeds", "subscribers", "templates"):
        (folder / sub).mkdir(parents=True)
    stories, freshen = REPO / "examples" / "stories", REPO / "examples" / "freshen.py"
    command = [sys.executable, str(freshen), "--src", str(stories), "--dest", str(folder / "feeds")]
    subprocess.run(command, check=True, capture_output=True)
    write_subscribers(folder / "subscribers" / "daily.csv", rows)
    if path == "sendgrid":
        transport = f'backend = "sendgrid"\napi_url = "http://127.0.0.1:{port}"\nbackoff = 0.01\n'
    else:
        transport = (
            f'backend = "smtp"\nhost = "127.0.0.1"\nport = {port}\n'
            f"connections = {SMTP_CONNECTIONS}\nbackoff = 0.01\n"
        )
    # The project every test starts from. Imported here, in the parent only: tests/conftest.py
    # brings pytest and its plugins, which the sending processes (whose memory is measured)
    # must not carry, as `digest send` does not.
    from tests.conftest import BASE_CONFIG

    config = BASE_CONFIG.replace('transport = "outbox"', 'transport = "bench"')
    config = config.replace('"Europe", "Culture"]', '"Europe", "Culture", "Film"]')
    config = config.replace('"Film" = "Culture"', '"Film" = "Film"')
    assert config.count('"Film"') == 3, "tests/conftest.py's BASE_CONFIG changed: update the bench"
    if state_url:
        config = config.replace('url = "sqlite:///state/digest.sqlite3"', f'url = "{state_url}"')
    config += f"\n[transports.bench]\n{transport}{dkim_tables(folder, dkim)}"
    config += '\n[server]\nbase_url = "https://news.example.org"\n'
    (folder / "config.toml").write_text(config, encoding="utf-8")
    return folder / "config.toml"


# -- the sinks (each in a process of its own) ------------------------------------------------


class _SendGridHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests = 0
    bytes = 0
    latency = 0.0  # seconds before each answer (the provider's round trip)
    handshake = 0.0  # seconds before a new connection's first answer (TCP and TLS round trips)
    connections = 0

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:
        type(self).connections += 1
        time.sleep(self.handshake)
        super().handle()

    def do_POST(self) -> None:
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
        type(self).requests += 1
        type(self).bytes += int(self.headers.get("Content-Length") or 0)
        time.sleep(self.latency)
        ok = self.path == "/v3/mail/send"
        self.send_response(202 if ok else 404)
        if ok:
            self.send_header("X-Message-Id", f"bench-{type(self).requests}")
        self.send_header("Content-Length", "0")
        self.end_headers()


def _sendgrid_sink() -> tuple[int, Callable[[], None]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SendGridHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1], server.shutdown


class _Discard:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def _smtp_sink() -> tuple[int, Callable[[], None]]:
    from aiosmtpd.controller import Controller

    from tests.smtpd import free_port

    controller = Controller(_Discard(), hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller.port, controller.stop


async def _raw_smtp_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Just enough SMTP to take messages and drop them: no parsing, no checks."""
    writer.write(b"220 sink ESMTP\r\n")
    while line := await reader.readline():
        command = line[:4].upper()
        if command == b"EHLO":
            writer.write(b"250-sink\r\n250-8BITMIME\r\n250 SIZE 33554432\r\n")
        elif command == b"DATA":
            writer.write(b"354 go ahead\r\n")
            await reader.readuntil(b"\r\n.\r\n")
            writer.write(b"250 OK\r\n")
        elif command == b"QUIT":
            writer.write(b"221 bye\r\n")
            break
        else:  # HELO, MAIL, RCPT, RSET, NOOP
            writer.write(b"250 OK\r\n")
        await writer.drain()
    writer.close()


def _raw_smtp_sink() -> tuple[int, Callable[[], None]]:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        asyncio.start_server(_raw_smtp_session, "127.0.0.1", 0, limit=64 * 2**20)
    )
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return server.sockets[0].getsockname()[1], lambda: loop.call_soon_threadsafe(loop.stop)


def run_sink(kind: str) -> None:
    """Print the port, serve until stdin closes, then print the CPU seconds the sink used.

    ``sendgrid:0.25:0.1``: a SendGrid sink that answers each request 0.25 s late, and the first
    of each connection 0.1 s later still.
    """
    sinks = {"sendgrid": _sendgrid_sink, "smtp": _smtp_sink, "raw-smtp": _raw_smtp_sink}
    kind, _, delays = kind.partition(":")
    latency, _, handshake = delays.partition(":")
    _SendGridHandler.latency = float(latency or 0)
    _SendGridHandler.handshake = float(handshake or 0)
    port, stop = sinks[kind]()
    print(port, flush=True)
    sys.stdin.read()
    stop()
    usage = {"cpu": time.process_time(), "posted": _SendGridHandler.bytes}
    print(json.dumps({**usage, "connections": _SendGridHandler.connections}), flush=True)


@contextmanager
def sink(kind: str) -> Iterator[tuple[int, dict[str, float]]]:
    """A sink process; yields its port, and a dict that gets its CPU seconds when it stops."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--sink", kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None and process.stdout is not None
    usage: dict[str, float] = {}
    try:
        yield int(process.stdout.readline()), usage
        process.stdin.close()
        usage.update(json.loads(process.stdout.readline() or "{}"))
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


# -- the meter: CPU per stage ----------------------------------------------------------------

# Stage → (module, attribute) of the functions whose CPU it is; "*" marks a generator, which
# is metered each time it is resumed. Each stage is counted without the stages it calls.
STAGES: dict[str, list[str]] = {
    "edition: build + render the variants": [
        "digest.send.run:Sender.edition",
        "digest.send.run:Sender.rendered",
    ],
    "subscribers: read CSV, validate, de-dup": [
        "*digest.send.run:Sender.entries",  # before issue 12: the file, read by the send
        "digest.send.importing:import_subscribers",  # since: imported into the state store
    ],
    "ledger: insert": [
        "digest.state.ledger:Ledger.add",
        "digest.send.run:fill_ledger",  # before the import's staged rows filled it (PostgreSQL)
        "digest.send.recipients:fill_ledger",
        "digest.send.recipients:fill_from",
    ],
    "ledger: claim": ["digest.state.ledger:Ledger.claim", "digest.state.ledger:Ledger.release"],
    # On a database server a thread writes the outcomes; the sending thread waits for it here.
    "ledger: waits for a write": ["digest.send.recording:Recorder.ready"],
    "ledger: suppressions": ["digest.state.suppressions:Suppressions.suppressed_among"],
    "ledger: finish, counts": [
        "digest.state.ledger:Ledger.finish",
        "digest.send.recording:Recorder.record",
        "digest.state.ledger:Ledger.retry_failed",
        "digest.state.ledger:Ledger.counts",
        "digest.state.ledger:Ledger.failures",
    ],
    "envelopes: tokens, Message-IDs, headers": ["digest.send.run:Sender.envelope"],
    "payload JSON / MIME message": [
        "digest.send.transports.sendgrid:SendGridPayload.__init__",
        "json:dumps",
        "digest.send.transports.smtp:SmtpTransport._composer",
        "digest.send.transports.smtp_wire:message_bytes",
        "digest.send.dkim:Signer.sign",
    ],
    "HTTP / SMTP I/O": [
        "digest.send.transports.sendgrid:SendGridTransport._post",
        "digest.send.transports.smtp:SmtpTransport._connect",
        "digest.send.transports.smtp:SmtpTransport._attempt",
        "digest.send.transports.smtp:SmtpTransport.close",
    ],
}


_METER_CLOCK = time.perf_counter if os.environ.get("BENCH_METER") == "wall" else time.thread_time


class Collector:
    """The cyclic garbage collector's passes over a block (``gc.callbacks``): how many full
    passes, and the wall time of all passes. Both senders pay it: digest's full passes walked
    what lives through a send until it froze that (``digest.collector.steady``); the bare
    sender's walk the list it holds."""

    def __init__(self) -> None:
        self.full, self.seconds, self._began = 0, 0.0, 0.0

    def __enter__(self) -> Collector:
        gc.callbacks.append(self._tell)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._tell)

    def _tell(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._began
        self.full += info["generation"] == 2

    def numbers(self) -> dict[str, float]:
        return {"gc_seconds": self.seconds, "gc_full": self.full}


class Meter:
    """Thread CPU time per stage, each stage without the stages it calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()
        self._local = threading.local()

    def install(self) -> None:
        import importlib

        for stage, targets in STAGES.items():
            for target in targets:
                generator = target.startswith("*")
                module_name, _, path = target.lstrip("*").partition(":")
                owner: Any = importlib.import_module(module_name)
                *parents, name = path.split(".")
                for parent in parents:
                    owner = getattr(owner, parent)
                if not hasattr(owner, name):
                    continue  # another version of digest: meter what there is
                wrap = self._generator if generator else self._function
                setattr(owner, name, wrap(stage, getattr(owner, name)))

    def _enter(self, stage: str) -> None:
        stack = self._local.__dict__.setdefault("stack", [])
        now = _METER_CLOCK()
        if stack:
            self._charge(stack[-1], now)
        stack.append([stage, now])

    def _leave(self) -> None:
        stack = self._local.stack
        now = _METER_CLOCK()
        self._charge(stack.pop(), now)
        if stack:
            stack[-1][1] = now

    def _charge(self, frame: list[Any], now: float) -> None:
        with self._lock:
            self.seconds[frame[0]] += now - frame[1]
        frame[1] = now

    def _function(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def metered(*args: Any, **kwargs: Any) -> Any:
            self._enter(stage)
            try:
                return function(*args, **kwargs)
            finally:
                self._leave()

        return metered

    def _generator(self, stage: str, function: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        @functools.wraps(function)
        def metered(*args: Any, **kwargs: Any) -> Iterator[Any]:
            items = function(*args, **kwargs)
            while True:
                self._enter(stage)
                try:
                    item = next(items)
                except StopIteration:
                    return
                finally:
                    self._leave()
                yield item

        return metered


# -- one send (in a fresh process) -----------------------------------------------------------


def _timed_renders() -> list[float]:
    """Have the sender's ``render_edition`` note the CPU seconds of each variant it renders."""
    import digest.send.run

    seconds: list[float] = []
    render = digest.send.run.render_edition

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return render(*args, **kwargs)
        finally:
            seconds.append(time.process_time() - start)

    digest.send.run.render_edition = timed  # type: ignore[assignment]
    return seconds


def naive(sender: Any, path: str, sample: int) -> dict[str, Any]:
    """The baseline: what each recipient costs when everything is done for them alone.

    For each of the list's first ``sample`` subscribers: their desks cut from the edition,
    the full jinja2 → MJML → premailer render, and their own message (the MIME message
    serialized for SMTP; the MIME-less JSON request body for SendGrid), all with nothing
    shared between recipients but the compiled templates.
    """
    from digest.config import SendGridOptions
    from digest.model import Variant
    from digest.render import environment, render_edition
    from digest.send.transports.base import Batch
    from digest.send.transports.sendgrid import SendGridPayload
    from digest.state.ledger_types import Claimed

    edition = sender.edition(freeze=False)
    jinja = environment(sender.config)
    options = sender.transport_config
    sender.import_subscribers([])
    subscribers = itertools.islice(sender.store.readers.of_list("daily"), sample)
    cpu = time.process_time()
    done = 0
    for n, subscriber in enumerate(subscribers):
        variant = Variant.of(subscriber.desks, sender.list_desks)
        key = variant.key
        content = render_edition(sender.config, variant.select(edition), jinja)
        envelope = sender.envelope(Claimed(n, subscriber.email, subscriber.name, key, 1))
        batch = Batch(sender.edition_id, "daily", key, content, sender.sender, sender.now, (envelope,))
        if path == "smtp":
            batch.message(envelope).as_bytes()
        else:
            assert isinstance(options, SendGridOptions)
            json.dumps(next(SendGridPayload(batch, options).requests())[1])
        done += 1
    return {"cpu": time.process_time() - cpu, "recipients": done}


def signing(sender: Any, sample: int) -> dict[str, Any]:
    """CPU per message of DKIM signing alone, on ``sample`` of the list's real messages (the
    all-desks variant, composed as the SMTP transport composes them): digest's Signer with each
    key, and dkimpy's own ``dkim.sign`` for comparison."""
    import dkim

    from digest.dkimkey import load_key
    from digest.model import Variant
    from digest.render import environment, render_edition
    from digest.render.message import Composer
    from digest.send.dkim import Signature, Signer, signed_names
    from digest.state.ledger_types import Claimed

    edition = sender.edition(freeze=False)
    sender.import_subscribers([])
    readers = list(itertools.islice(sender.store.readers.of_list("daily"), sample))
    variant = Variant.of(None, sender.list_desks)  # every desk: the longest message
    content = render_edition(sender.config, variant.select(edition), environment(sender.config))
    envelopes = [sender.envelope(Claimed(n, r.email, r.name, variant.key, 1)) for n, r in enumerate(readers)]
    batch = sender.batch(variant.key, content, envelopes)
    composer = Composer(
        content, sender=batch.sender, edition_id=batch.edition_id, date=batch.date, headers=batch.headers
    )
    pieces = [composer.message_pieces(e.recipient, e.message_id or "", e.headers) for e in envelopes]
    messages = [(b"".join(p), p) for p in pieces if p is not None]
    keys = {kind: dkim_key(kind) for kind in ("ed25519", "rsa")}
    include = list(signed_names(name for name, _value in dkim.rfc822_parse(messages[0][0])[0]))

    def per_message(sign: Callable[[bytes, list[bytes]], object], reps: int, count: int) -> float:
        cpu = time.process_time()
        for _ in range(reps):
            for data, parts in messages[:count]:
                sign(data, parts)
        return (time.process_time() - cpu) / (reps * min(count, len(messages)))

    def signer(*kinds: str) -> Signer:
        return Signer([Signature(b"news.example.org", k.encode(), load_key(keys[k])) for k in kinds])

    def stock(kind: str) -> Callable[[bytes, list[bytes]], object]:
        algorithm = b"rsa-sha256" if kind == "rsa" else b"ed25519-sha256"
        return lambda data, _parts: dkim.sign(
            data, kind.encode(), b"news.example.org", keys[kind], include_headers=include,
            canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=algorithm,
        )  # fmt: skip

    ed, rsa, both = signer("ed25519"), signer("rsa"), signer("rsa", "ed25519")
    return {
        "bytes": statistics.mean(len(data) for data, _parts in messages),
        "Ed25519": per_message(ed.sign, 3, sample),
        "RSA-2048": per_message(rsa.sign, 3, sample),
        "RSA-2048 and Ed25519": per_message(both.sign, 3, sample),
        "Ed25519, from the bytes alone": per_message(lambda data, _parts: ed.sign(data), 1, sample),
        "dkimpy's dkim.sign, Ed25519": per_message(stock("ed25519"), 1, 50),
        "dkimpy's dkim.sign, RSA-2048": per_message(stock("rsa"), 1, 20),
    }


def bare(sender: Any, csv_path: Path) -> dict[str, Any]:
    """The bare sender (bench/bare_sender.py) on the same list, edition and sink as `send`."""
    from email.utils import parseaddr

    from bench.bare_sender import Content, Identity, bare_send
    from digest.model import Variant
    from digest.render import environment, render_edition

    renders: list[float] = []
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu, wall, started = time.process_time(), time.perf_counter(), time.time()
    edition = sender.edition(freeze=False)
    jinja = environment(sender.config)

    def render(desks: tuple[str, ...]) -> Content:
        began = time.perf_counter()
        variant = Variant.of(desks or None, sender.list_desks)
        content = render_edition(sender.config, variant.select(edition), jinja)
        renders.append(time.perf_counter() - began)
        return Content(content.subject, content.html, content.text)

    name, address = parseaddr(sender.sender)
    identity = Identity(
        list_name="daily",
        edition_id=sender.edition_id,
        sender=address,
        sender_name=name,
        list_id=sender.addresser.list_headers["List-Id"],
        greet=sender.greeting.to,
    )
    with Collector() as collector:
        counts = bare_send(
            csv_path,
            identity=identity,
            api_url=sender.transport_config.api_url,
            api_key=API_KEY,
            secret=SECRET.encode(),
            base_url="https://news.example.org",
            render=render,
        )
    wall = time.perf_counter() - wall
    return {
        "wall": wall,
        "started": started,
        "ended": started + wall,
        "cpu": time.process_time() - cpu,
        "base_kib": base,
        "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "counts": counts,
        "variants": len(renders),
        "renders": renders,
        "stages": {},
        **collector.numbers(),
    }


def as_installed() -> None:
    """Make the modules of packages only the development lock has (requirements-dev.lock less
    requirements.lock) fail to import here, as they do where digest is installed to send.

    Libraries load some of them when they find them: httpx its command-line client, and so rich
    and pygments, 5.7 MiB a send would not otherwise have. (A module imported already, by this
    very script, is left as it is.)"""
    from importlib.metadata import packages_distributions

    def pinned(lock: str) -> set[str]:
        lines = (REPO / lock).read_text(encoding="utf-8").splitlines()
        return {line.split("==")[0].strip().lower().replace("_", "-") for line in lines if "==" in line}

    dev_only = pinned("requirements-dev.lock") - pinned("requirements.lock")
    for module, distributions in packages_distributions().items():
        names = {name.lower().replace("_", "-") for name in distributions}
        if names <= dev_only and module not in sys.modules:
            sys.modules[module] = None  # type: ignore[assignment]  # import raises ImportError


def child(config_path: Path, mode: str, profile_out: Path | None) -> None:
    as_installed()
    from bench.bench_subscribers import cpu_seconds
    from digest.config import load_config
    from digest.send.run import Sender
    from digest.statefile import open_store

    config = load_config(config_path)
    store = open_store(config).migrate()
    sender = Sender(config, "daily", store, now=dt.datetime.now(dt.UTC))
    if mode.startswith("naive"):
        print(json.dumps(naive(sender, mode.split(":")[1], int(mode.split(":")[2]))))
        return
    if mode.startswith("sign:"):
        print(json.dumps(signing(sender, int(mode.split(":")[1]))))
        return
    if mode == "bare":
        print(json.dumps(bare(sender, config_path.parent / "subscribers" / "daily.csv")))
        return
    if mode == "import":  # the day before: the list is in the store, and the file unchanged
        sender.import_subscribers([])
        print(json.dumps({}))
        return
    renders = _timed_renders()
    meter = Meter() if mode == "breakdown" else None
    if meter:
        meter.install()
    profilers = _profile_threads() if mode == "cprofile" else []
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu, wall, started = cpu_seconds(), time.perf_counter(), time.time()
    with Collector() as collector:
        summary = sender.send()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    for profiler in profilers:
        profiler.disable()
    if profilers and profile_out:
        stats = pstats.Stats(profilers[0])
        for profiler in profilers[1:]:
            stats.add(profiler)
        stats.dump_stats(profile_out)
    with store.engine.connect() as conn:
        query = "SELECT count(DISTINCT variant) FROM send_ledger WHERE status = 'sent'"
        variants = conn.exec_driver_sql(query).scalar()
    store.close()
    result = {
        "wall": wall,
        "started": started,
        "ended": started + wall,
        "cpu": cpu,
        "base_kib": base,
        "peak_kib": peak,
        "counts": dict(summary.counts),
        "variants": variants,
        "renders": renders,
        "stages": meter.seconds if meter else {},
        **collector.numbers(),
    }
    print(json.dumps(result))


def _profile_threads() -> list[cProfile.Profile]:
    """A CPU-time profiler in this thread and in each thread started from now on."""
    profilers: list[cProfile.Profile] = []
    original_run = threading.Thread.run

    def start() -> cProfile.Profile:
        profiler = cProfile.Profile(time.thread_time)
        profilers.append(profiler)
        profiler.enable()
        return profiler

    def run(self: threading.Thread) -> None:
        profiler = start()
        try:
            original_run(self)
        finally:
            profiler.disable()

    threading.Thread.run = run  # type: ignore[method-assign]
    start()
    return profilers


def send(
    folder: Path,
    path: str,
    rows: int,
    mode: str = "plain",
    smtp_sink: str = "raw",
    state_url: str | None = None,
    senders: int = 1,
    dkim: str = "none",
    latency: float = 0.0,
    warm: bool = False,
    handshake: float = 0.0,
) -> dict[str, Any]:
    """Set up a project, start the sink, send in fresh processes; their numbers.

    ``warm``: the subscriber file is imported into the store first, untimed, as on every day
    after the first (the send then finds it unchanged and does not read it).

    With several senders (on a shared PostgreSQL ledger) they start together; the wall time
    runs from the first start to the last end, the CPU is theirs summed, the peak the highest.
    """
    project = folder / f"{path}-{rows}-{mode.replace(':', '-')}-{senders}-{dkim}"
    profile_out = project / "send.prof"
    kind = "raw-smtp" if path == "smtp" and smtp_sink == "raw" else path
    with sink(f"{kind}:{latency}:{handshake}" if latency or handshake else kind) as (port, sink_usage):
        config = write_project(project, rows, path, port, state_url, dkim)
        env = {**os.environ, "DIGEST_SECRET": SECRET, "SENDGRID_API_KEY": API_KEY}
        command = [sys.executable, __file__, "--child", str(config), mode, str(profile_out)]
        if warm:
            setup = [*command[:-2], "import", str(profile_out)]
            subprocess.run(setup, check=True, env=env, capture_output=True)
        children = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(senders)
        ]
        results: list[dict[str, Any]] = []
        for child_process in children:
            out, err = child_process.communicate()
            if child_process.returncode:
                sys.exit(f"the {path} send failed:\n{err}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    result = dict(max(results, key=lambda r: r.get("ended", 0)))  # the last to end saw the whole ledger
    if senders > 1:
        result["wall"] = max(r["ended"] for r in results) - min(r["started"] for r in results)
        result["cpu"] = sum(r["cpu"] for r in results)
        result["peak_kib"] = max(r["peak_kib"] for r in results)
        result["base_kib"] = max(r["base_kib"] for r in results)
        result["renders"] = [seconds for r in results for seconds in r["renders"]]
    result["sink_cpu"] = sink_usage.get("cpu", 0.0)
    result["posted"] = sink_usage.get("posted", 0)
    result["connections"] = sink_usage.get("connections", 0)
    if mode == "cprofile":
        stats = pstats.Stats(str(profile_out))
        table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
        result["top"] = sorted(
            (
                (entry[2], f"{Path(file).name}:{line} {func} ({entry[1]:,} calls)")
                for (file, line, func), entry in table.items()
            ),
            reverse=True,
        )[:25]
    shutil.rmtree(project, ignore_errors=True)
    return result


# -- main ------------------------------------------------------------------------------------


@contextmanager
def postgresql(runs: list[int]) -> Iterator[Callable[[str], str]]:
    """A local PostgreSQL server (as in the tests, but syncing to disk like a real one) when
    there are runs for it; yields a function that makes a new database and gives its URL."""
    if not runs:
        yield lambda name: sys.exit("no PostgreSQL server was started")
        return
    from tests.pgserver import PostgresServer

    server = PostgresServer(fsync=True).start()
    try:
        yield server.create_database
    finally:
        server.stop()


def sizes(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if any(value < 1 for value in values):
        raise argparse.ArgumentTypeError("each size must be at least 1")
    return values


def report(label: str, n: int, result: dict[str, Any]) -> None:
    renders = result["renders"]
    print(
        f"{label:<30}{n:>11,}{result['wall']:>8.1f}{n / result['wall']:>13,.0f}"
        f"{result['cpu'] / n * 1e6:>17.1f}{result['peak_kib'] / 1024:>13.1f}"
        f"{(result['peak_kib'] - result['base_kib']) / 1024:>11.1f}{result['sink_cpu']:>11.1f}"
        f"  {result['variants']} sent, {len(renders)} rendered: {renders[0] * 1e3:.0f} / "
        f"{statistics.median(renders[1:] or renders) * 1e3:.1f}  {result['counts']}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sendgrid", type=sizes, default=[100_000, 1_000_000], metavar="N,N", help="default 100000,1000000"
    )
    parser.add_argument("--smtp", type=sizes, default=[100_000], metavar="N,N", help="default 100000")
    parser.add_argument(
        "--postgresql",
        type=sizes,
        default=[100_000],
        metavar="N,N",
        help="SendGrid path with the ledger on a local PostgreSQL server (default 100000)",
    )
    parser.add_argument(
        "--senders",
        type=sizes,
        default=[1, 2],
        metavar="N,N",
        help="how many senders share each PostgreSQL run (default 1,2)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="MS",
        help="the SendGrid sink of the PostgreSQL runs answers this many ms late (default 0)",
    )
    parser.add_argument(
        "--handshake",
        type=float,
        default=0.0,
        metavar="MS",
        help="and answers a new connection's first request this many ms later still (default 0)",
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="every run starts with the list already imported, as on any day after the first",
    )
    parser.add_argument(
        "--naive", type=int, default=200, metavar="N", help="subscribers of the naive baseline (0: none)"
    )
    parser.add_argument(
        "--breakdown", type=int, default=10_000, metavar="N", help="recipients of the metered run (0: none)"
    )
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="recipients of a cProfile run")
    parser.add_argument(
        "--smtp-sink",
        choices=["raw", "aiosmtpd"],
        default="raw",
        help="raw (default): a bare asyncio server that parses nothing; aiosmtpd: a real one (slower)",
    )
    parser.add_argument(
        "--dkim",
        type=lambda text: [mode for mode in text.split(",") if mode],
        default=["none", "ed25519", "rsa"],
        metavar="MODE,MODE",
        help=f"the SMTP runs, each signed so ({', '.join(DKIM_MODES)}; default none,ed25519,rsa)",
    )
    parser.add_argument("--sink", help=argparse.SUPPRESS)  # a kind of run_sink
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sink:
        run_sink(args.sink)
        return 0
    if args.child:
        child(Path(args.child[0]), args.child[1], Path(args.child[2]))
        return 0
    if unknown := set(args.dkim) - set(DKIM_MODES):
        parser.error(f"--dkim: unknown mode(s) {', '.join(sorted(unknown))} (known: {', '.join(DKIM_MODES)})")
    runs = [("sendgrid", n, 1, False, "none") for n in args.sendgrid]
    runs += [("smtp", n, 1, False, dkim) for n in args.smtp for dkim in args.dkim]
    runs += [("sendgrid", n, senders, True, "none") for n in args.postgresql for senders in args.senders]
    paths = list(dict.fromkeys(path for path, *_ in runs))

    from importlib.metadata import version

    cpu = platform.processor() or platform.machine()
    print(f"machine: {platform.platform()}, {cpu}, {os.cpu_count()} CPUs")
    print(f"python:  {platform.python_implementation()} {sys.version.split()[0]}, ", end="")
    print(f"SQLAlchemy {version('sqlalchemy')}, SQLite {__import__('sqlite3').sqlite_version}, ", end="")
    print(f"email-validator {version('email-validator')}, sendgrid {version('sendgrid')}, ", end="")
    print(f"aiosmtpd {version('aiosmtpd')}; SMTP sink: {args.smtp_sink}, {SMTP_CONNECTIONS} connections\n")
    print(f"{'path, ledger':<30}{'recipients':>11}{'wall s':>8}{'recipients/s':>13}", end="")
    print(f"{'CPU µs/recipient':>17}", end="")
    print(f"{'peak RSS MiB':>13}{'growth MiB':>11}{'sink CPU s':>11}  variants, render ms first / median")
    fast: dict[str, float] = {}
    signed: dict[tuple[int, str], float] = {}  # (recipients, --dkim mode) → CPU s per recipient
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as name, postgresql(args.postgresql) as database:
        folder = Path(name)
        for path, n, senders, shared, dkim in runs:
            url = database(f"bench_{path}_{n}_{senders}") if shared else None
            latency = args.latency / 1000 if shared else 0.0
            handshake = args.handshake / 1000 if shared else 0.0
            result = send(
                folder,
                path,
                n,
                smtp_sink=args.smtp_sink,
                state_url=url,
                senders=senders,
                dkim=dkim,
                latency=latency,
                warm=args.warm,
                handshake=handshake,
            )
            if not shared and (dkim == "none" or path not in fast):
                fast[path] = result["cpu"] / n
            if path == "smtp":
                signed[n, dkim] = result["cpu"] / n
            label = f"{path}, " + (f"PostgreSQL ×{senders}" if shared else "SQLite")
            label += f", {args.latency:.0f} ms" if latency else ""
            label += f", handshake {args.handshake:.0f} ms" if handshake else ""
            label += ", warm" if args.warm else ""
            label += "" if dkim == "none" else f", DKIM {dkim}"
            report(label, n, result)
            if path == "sendgrid" and senders == 1:
                # The baseline in the same run, on the same list and sink (bench/bare_sender.py).
                baseline = send(folder, path, n, "bare", latency=latency, handshake=handshake)
                report("  bare sender, no state", n, baseline)
                print(
                    f"  digest / bare: {result['wall'] / baseline['wall']:.2f}× the wall time, "
                    f"{result['cpu'] / baseline['cpu']:.2f}× the CPU; posted "
                    f"{result['posted'] / 2**20:,.1f} and {baseline['posted'] / 2**20:,.1f} MiB over "
                    f"{result['connections']:,} and {baseline['connections']:,} connections; "
                    f"the collector's passes {result['gc_seconds']:.1f} and {baseline['gc_seconds']:.1f} s "
                    f"({result['gc_full']:,} and {baseline['gc_full']:,} full)",
                    flush=True,
                )
        for (n, dkim), each in signed.items():
            if dkim != "none" and (n, "none") in signed:
                extra = (each - signed[n, "none"]) * 1e6
                print(
                    f"\nDKIM {dkim}: {extra:.1f} µs more CPU per message than unsigned (SMTP, {n:,})", end=""
                )
        print()
        if args.smtp and any(dkim != "none" for dkim in args.dkim):
            result = send(folder, "smtp", 1_000, "sign:200", args.smtp_sink)
            size = result["bytes"]
            print(f"\nDKIM signing alone, CPU per message ({size / 1024:.0f} KB messages, one thread):")
            for label, seconds in result.items():
                if label not in ("bytes", "sink_cpu", "posted"):
                    print(f"  {label:<34}{seconds * 1e6:>9.1f} µs")
        for path in paths if args.naive else ():
            result = send(folder, path, 1_000, f"naive:{path}:{args.naive}", args.smtp_sink)
            each = result["cpu"] / result["recipients"]
            print(
                f"\nnaive {path}: a full render and message for each of {result['recipients']} subscribers: "
                f"{each * 1e3:.1f} ms CPU each, {each / fast[path]:,.0f}× the {fast[path] * 1e6:.1f} µs above"
            )
        # The SendGrid path is metered once more on PostgreSQL when it has runs there.
        metered = [(path, None) for path in paths] + [("sendgrid", "PostgreSQL")] * bool(args.postgresql)
        for path, server in metered if args.breakdown else ():
            n = args.breakdown
            url = database(f"bench_breakdown_{n}") if server else None
            result = send(folder, path, n, "breakdown", args.smtp_sink, state_url=url, warm=args.warm)
            stages = result["stages"]
            stages["other (send loop, batches, threads)"] = max(result["cpu"] - sum(stages.values()), 0.0)
            where = f"{path}, {server or 'SQLite'}" + (", warm" if args.warm else "")
            print(f"\n{where}, {n:,} recipients, metered: {result['cpu'] / n * 1e6:.1f} µs CPU per recipient")
            for stage, seconds in stages.items():
                print(f"  {stage:<42}{seconds / n * 1e6:>8.1f} µs{seconds / result['cpu']:>6.0%}")
        for path in paths if args.cprofile else ():
            n = args.cprofile
            result = send(folder, path, n, "cprofile", args.smtp_sink)
            print(f"\n{path}, {n:,} recipients under cProfile: own CPU time per recipient")
            for seconds, function in result["top"]:
                print(f"  {seconds / n * 1e6:>8.1f} µs  {function}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
