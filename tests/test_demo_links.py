"""`make demo`'s unsubscribe links and logo work with the `digest serve` the README tells you to run.

The demo's commands run as the Makefile runs them (its DEMO_ENV), in a copy of the project;
`digest serve` runs with the line the README says to export; the link comes from a real .eml.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import time
from email import policy
from pathlib import Path

import httpx

from digest.send.unsubscribe import DEMO_SECRET
from digest.state import Store
from tests.conftest import REPO
from tests.test_cli_send import free_port

READER = "halyna.bondar@example.org"


def makefile_env() -> dict[str, str]:
    """What `make demo` puts in front of `digest build` and `digest send`."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    (line,) = re.findall(r"^DEMO_ENV := (\w+)=(\S+)$", makefile, re.M)
    assert "$(DEMO_ENV) $(BIN)/digest build" in makefile and "$(DEMO_ENV) $(BIN)/digest send" in makefile
    return {line[0]: line[1]}


def readme_env() -> dict[str, str]:
    """The one line the README's quick start says to export before `digest serve`."""
    quick = (REPO / "README.md").read_text(encoding="utf-8").split("## Quick start", 1)[1].split("\n## ")[0]
    (line,) = re.findall(r"^export (\w+)=(\S+)", quick, re.M)
    assert ".venv/bin/digest serve" in quick
    return {line[0]: line[1]}


def test_the_makefile_and_the_readme_use_the_demo_secret() -> None:
    assert makefile_env() == readme_env() == {"DIGEST_SECRET": DEMO_SECRET.decode()}


def digest(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "digest", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def wait_until_up(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_a_demo_link_unsubscribes_through_the_readmes_serve(tmp_path: Path) -> None:
    for name in ("config.toml", "examples", "subscribers", "templates"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    shell = {key: value for key, value in os.environ.items() if key != "DIGEST_SECRET"}
    subprocess.run([sys.executable, "examples/freshen.py"], cwd=tmp_path, check=True, capture_output=True)
    for args in (("build",), ("send", "--list", "daily")):
        done = digest(tmp_path, {**shell, **makefile_env()}, *args)
        assert done.returncode == 0, done.stderr
    (eml,) = tmp_path.glob(f"outbox/daily-*/{READER}.*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    link = re.match(r"<(http://127\.0\.0\.1:8080/unsubscribe/[^>]+)>", str(message["List-Unsubscribe"]))
    assert link is not None
    assert link[1] in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    logos = re.findall(r'<img src="(http://127\.0\.0\.1:8080/brand/[^"]+)"', html)
    assert [logo.rsplit("/", 1)[1] for logo in logos] == ["ledger.png", "ledger-dark.png"]

    port = free_port()
    url = link[1].replace(":8080/", f":{port}/")
    serve = subprocess.Popen(
        [sys.executable, "-m", "digest", "serve", "--port", str(port)],
        cwd=tmp_path,
        env={**shell, **readme_env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    state = f"sqlite:///{tmp_path / 'state' / 'digest.sqlite3'}"
    try:
        wait_until_up(f"http://127.0.0.1:{port}", serve)
        page = httpx.get(url)
        assert page.status_code == 200 and "<form" in page.text and "ha***@example.org" in page.text
        with Store(state).migrate() as store:
            assert store.suppressions.is_suppressed(READER, "daily") is None  # GET changes nothing
        done = httpx.post(url, data={"confirm": "yes"})
        assert done.status_code == 200 and "You are unsubscribed" in done.text
        # The masthead's logos are the example files, published by the same server.
        for logo in logos:
            picture = httpx.get(logo.replace(":8080/", f":{port}/"))
            assert picture.content == (tmp_path / "examples" / "brand" / logo.rsplit("/", 1)[1]).read_bytes()
    finally:
        serve.terminate()
        _out, err = serve.communicate(timeout=10)
    assert "public DEMO secret" in err and "never in production" in err
    with Store(state).migrate() as store:
        record = store.suppressions.is_suppressed(READER, "daily")
        assert record is not None and record.source == "web"
    again = digest(tmp_path, {**shell, **makefile_env()}, "send", "--list", "daily", "--resend", READER)
    assert again.returncode == 1 and f"{READER} unsubscribed from daily on " in again.stderr
