"""A logo named as a file beside config.toml: checked when the config loads, published by
`digest serve` at <base_url>/brand/<name>, and the address every email and page uses."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from werkzeug.test import Client

from digest import logos
from digest.brand import brand_context
from digest.config import Config, load_config
from digest.errors import ConfigError
from digest.state import Store
from digest.web import make_app
from tests.conftest import MakeProject, emailed_html, in_newsroom
from tests.test_config import line_of

SECRET = b"0123456789abcdef-test-secret"
NOW = dt.datetime(2026, 11, 25, 6, 0, tzinfo=dt.UTC)
REPO = Path(__file__).resolve().parent.parent
LIGHT, DARK = REPO / "examples" / "brand" / "ledger.png", REPO / "examples" / "brand" / "ledger-dark.png"
BASE = "http://127.0.0.1:8080"  # the base config's [server] base_url (its default)
FILES = {"logo_url": "brand/ledger.png", "logo_dark_url": "brand/ledger-dark.png", "logo_width": 200}


@pytest.fixture
def branded(make_project: MakeProject) -> Callable[..., Config]:
    """``branded(**newsroom_keys)``: a project with the example logos in its brand/ folder."""

    def make(**keys: object) -> Config:
        path = make_project(replace=in_newsroom(**(keys or FILES)))
        (path.parent / "brand").mkdir(exist_ok=True)
        shutil.copy(LIGHT, path.parent / "brand" / LIGHT.name)
        shutil.copy(DARK, path.parent / "brand" / DARK.name)
        return load_config(path)

    return make


def _client(config: Config, tmp_path: Path) -> Client:
    store = Store(f"sqlite:///{tmp_path}/state.db").migrate()
    return Client(make_app(config, lambda: store, SECRET, clock=lambda: NOW))


def test_a_logo_file_is_addressed_where_digest_serve_publishes_it(branded: Callable[..., Config]) -> None:
    config = branded()
    logo = brand_context(config.settings)["logo"]
    assert (logo["url"], logo["dark_url"]) == (f"{BASE}/brand/ledger.png", f"{BASE}/brand/ledger-dark.png")
    html = emailed_html(config)
    page = lxml.html.document_fromstring(html)
    assert {img.get("src") for img in page.xpath("//h1//img")} == {logo["url"], logo["dark_url"]}
    assert config.logo_files() == {
        "ledger.png": config.root / "brand" / "ledger.png",
        "ledger-dark.png": config.root / "brand" / "ledger-dark.png",
    }


def test_a_logo_url_is_used_as_it_is_and_nothing_is_published(branded: Callable[..., Config]) -> None:
    config = branded(logo_url="https://cdn.example.net/ledger.png", logo_width=200)
    assert brand_context(config.settings)["logo"]["url"] == "https://cdn.example.net/ledger.png"
    assert config.logo_files() == {}


def test_a_name_with_spaces_is_quoted_in_its_address() -> None:
    assert logos.href("brand/The Ledger.png", BASE + "/") == f"{BASE}/brand/The%20Ledger.png"
    assert logos.href("https://cdn.example.net/a b.png", BASE) == "https://cdn.example.net/a b.png"


def test_serve_publishes_the_logo_files_with_caching_for_mail_clients(
    branded: Callable[..., Config], tmp_path: Path
) -> None:
    client = _client(branded(), tmp_path)
    response = client.get("/brand/ledger.png")
    assert response.status_code == 200
    assert response.get_data() == LIGHT.read_bytes()
    assert response.mimetype == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    # Webmail shows images from its own origin: a same-origin resource policy would block them.
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    again = client.get("/brand/ledger.png", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    assert client.get("/brand/ledger-dark.png").get_data() == DARK.read_bytes()
    assert client.head("/brand/ledger.png").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/brand/config.toml",
        "/brand/..%2Fconfig.toml",
        "/brand/%2e%2e/config.toml",
        "/brand/brand%2Fledger.png",
        "/brand/LEDGER.PNG",
        "/brand/",
        "/brand/ledger.png%00.html",
    ],
)
def test_nothing_but_the_named_files_is_served(
    branded: Callable[..., Config], tmp_path: Path, path: str
) -> None:
    response = _client(branded(), tmp_path).get(path)
    assert response.status_code == 404
    # Our own 404 page, which shows the logo but carries no file's bytes.
    assert response.mimetype == "text/html"
    assert b"\x89PNG" not in response.get_data() and b"[newsroom]" not in response.get_data()


def test_a_logo_given_as_a_url_leaves_the_route_empty(branded: Callable[..., Config], tmp_path: Path) -> None:
    client = _client(branded(logo_url="https://cdn.example.net/ledger.png", logo_width=200), tmp_path)
    assert client.get("/brand/ledger.png").status_code == 404


def test_a_logo_file_changed_into_something_else_after_loading_is_not_served(
    branded: Callable[..., Config], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = branded()
    (config.root / "brand" / "ledger.png").write_text("<script>alert(1)</script>")
    client = _client(config, tmp_path)
    assert client.get("/brand/ledger.png").status_code == 404
    assert "is not a image/png image" in caplog.text
    assert client.get("/brand/ledger-dark.png").status_code == 200


def test_posting_to_a_logo_is_refused(branded: Callable[..., Config], tmp_path: Path) -> None:
    assert _client(branded(), tmp_path).post("/brand/ledger.png").status_code == 405


def test_pages_let_in_images_from_where_the_logo_is_published(
    branded: Callable[..., Config], tmp_path: Path
) -> None:
    response = _client(branded(), tmp_path).get("/subscribe/daily")
    assert f"img-src {BASE};" in response.headers["Content-Security-Policy"]
    page = lxml.html.document_fromstring(response.get_data(as_text=True))
    assert f"{BASE}/brand/ledger.png" in {img.get("src") for img in page.xpath("//img")}


def _problems(make_project: MakeProject, setup: Callable[[Path], None], **keys: object) -> list[str]:
    path = make_project(replace=in_newsroom(**keys))
    setup(path.parent)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    line = line_of(path, "logo_url")
    return [str(problem).replace(f"{path}:{line}:", "LINE:") for problem in caught.value.problems]


def _write(name: str, content: bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)

    return setup


def _nothing(root: Path) -> None:
    del root


@pytest.mark.parametrize(
    ("source", "setup", "expected"),
    [
        ("brand/absent.png", _nothing, "LINE: newsroom.logo_url: logo file 'brand/absent.png' not found"),
        (
            "brand/logo.png",
            _write("brand/logo.png", b"<!doctype html><p>not a picture"),
            "LINE: newsroom.logo_url: logo file 'brand/logo.png' is not a image/png image",
        ),
        (
            "brand/logo.jpg",
            _write("brand/logo.jpg", LIGHT.read_bytes()),
            "LINE: newsroom.logo_url: logo file 'brand/logo.jpg' is not a image/jpeg image",
        ),
        (
            "brand/huge.gif",
            _write("brand/huge.gif", b"GIF89a" + bytes(logos.MAX_BYTES)),
            "LINE: newsroom.logo_url: logo file 'brand/huge.gif' is 512 KB; an email's logo should stay under 512 KB",
        ),
        (
            "brand/logo.svg",
            _nothing,
            "LINE: newsroom.logo_url: logo file 'brand/logo.svg' must be a PNG, JPEG or GIF",
        ),
        ("ftp://example.org/logo.png", _nothing, "neither an http(s) URL nor a file"),
        ("https://", _nothing, "is not an http(s) URL"),
    ],
    ids=["missing", "html-named-png", "png-named-jpg", "too-big", "svg", "ftp", "no-host"],
)
def test_a_bad_logo_file_is_a_config_error_at_its_line(
    make_project: MakeProject, source: str, setup: Callable[[Path], None], expected: str
) -> None:
    (problem,) = _problems(make_project, setup, logo_url=source, logo_width=200)
    assert expected in problem, problem
    assert problem.startswith("LINE: ") or "://" in source


def test_two_logo_files_of_one_name_are_refused(make_project: MakeProject) -> None:
    both = _write("light/logo.png", LIGHT.read_bytes())
    (problem,) = _problems(
        make_project, both, logo_url="light/logo.png", logo_dark_url="dark/logo.png", logo_width=200
    )
    assert "two files of one name ('logo.png')" in problem and "rename one" in problem


def test_the_shipped_config_publishes_the_example_logos() -> None:
    # The demo's logo comes from `digest serve`: both files exist and pass the load-time checks.
    shipped = (REPO / "config.toml").read_text()
    for source in ("examples/brand/ledger.png", "examples/brand/ledger-dark.png"):
        assert f'"{source}"' in shipped
        assert logos.problem(source, REPO / source) is None


def test_a_logo_that_cannot_be_read_at_the_moment_is_a_404_not_a_500(
    branded: Callable[..., Config],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Locked (or removed) since the config loaded and checked it.
    config = branded()
    client = _client(config, tmp_path)
    real = Path.open

    def locked(path: Path, *args: Any, **kwargs: Any) -> Any:
        if path.name == "ledger.png":
            raise PermissionError(13, "Permission denied")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(Path, "open", locked)
    assert client.get("/brand/ledger.png").status_code == 404
    assert "not publishing the logo ledger.png: Permission denied" in caplog.text
    assert client.get("/brand/ledger-dark.png").status_code == 200


def test_a_logo_that_grew_too_big_after_loading_is_not_served(
    branded: Callable[..., Config], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = branded()
    (config.root / "brand" / "ledger.png").write_bytes(LIGHT.read_bytes() + bytes(logos.MAX_BYTES))
    assert _client(config, tmp_path).get("/brand/ledger.png").status_code == 404
    assert f"is {(LIGHT.stat().st_size + logos.MAX_BYTES) // 1024} KB" in caplog.text
