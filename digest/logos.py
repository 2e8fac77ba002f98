"""Where the newsroom's logo comes from: a URL of its own, or a file `digest serve` publishes.

``logo_url`` (and ``logo_dark_url``) in ``[newsroom]`` take an http(s) URL, or the path of a
PNG, JPEG or GIF file (relative to config.toml). A file is published by `digest serve` at
``<base_url>/brand/<file name>``, and that is the address every email and page uses, so a
newsroom without an image host (and `make demo`, offline) still has its logo in the inbox.

Only the files config.toml names are served, looked up by their exact name: there is no path
from a request to any other file. Each is checked when the config loads: it exists, it is small
enough for an email, and its bytes are the image its name says (so the server never hands a
browser an HTML file labelled as a picture).
"""

from __future__ import annotations

from pathlib import Path, PurePath
from urllib.parse import quote, urlsplit

# The route of `digest serve` under which the logo files are published.
LOGO_PATH = "/brand/"
# What each file name ending is served as, and the bytes such a file starts with.
TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
_SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}
# A logo is fetched once per reader who opens the email; anything larger is a photograph.
MAX_BYTES = 512 * 1024


def is_file(source: str) -> bool:
    """True when ``source`` names a file to publish rather than an http(s) URL."""
    return urlsplit(source).scheme.lower() not in ("http", "https")


def published_name(source: str) -> str:
    """The name a logo file is published under: its own file name."""
    return PurePath(source).name


def href(source: str, base_url: str) -> str:
    """The address emails and pages use for the logo ``source``."""
    if not is_file(source):
        return source
    return f"{base_url.rstrip('/')}{LOGO_PATH}{quote(published_name(source))}"


def media_type(source: str) -> str | None:
    """What a logo file is served as, from its name; None for a name that is no image of ours."""
    return TYPES.get(PurePath(source).suffix.lower())


def check_file_name(source: str) -> str:
    """``source``, a logo file's path as config.toml gives it: a name that says which image."""
    if urlsplit(source).scheme and len(urlsplit(source).scheme) > 1:  # one letter: a Windows drive
        raise ValueError(f"{source!r} is neither an http(s) URL nor a file")
    if media_type(source) is None:
        raise ValueError(f"logo file {source!r} must be a PNG, JPEG or GIF, named with {', '.join(TYPES)}")
    return source


def problem(source: str, path: Path) -> str | None:
    """What is wrong with the logo file ``path`` (config.toml's ``source``), or None."""
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            head = file.read(8)
    except FileNotFoundError:
        return f"logo file {source!r} not found (looked in {path})"
    except OSError as exc:
        return f"cannot read logo file {source!r}: {exc.strerror or exc}"
    return content_problem(source, size, head)


def content_problem(source: str, size: int, head: bytes) -> str | None:
    """What is wrong with a logo file of ``size`` bytes that starts with ``head``, or None."""
    if size > MAX_BYTES:
        limit = MAX_BYTES // 1024
        return f"logo file {source!r} is {size // 1024} KB; an email's logo should stay under {limit} KB"
    kind = media_type(source)
    if kind is None or not head.startswith(_SIGNATURES[kind]):
        return f"logo file {source!r} is not a {kind or 'known'} image, whatever its name says"
    return None
