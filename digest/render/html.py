"""MJML → HTML (mjml-python, MRML inside) → inlined CSS (premailer) → minified."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from mjml import mjml2html
from premailer import Premailer

from digest.errors import TemplateError

_SPACES = re.compile(r"[ \t]{2,}")
_NEWLINES = re.compile(r"\s*\n\s*")
_DOCTYPE = re.compile(r"^<!doctype html>", re.I)
# MRML's parse errors end "at position START:END", byte offsets into the MJML it was given.
_POSITION = re.compile(r"\s*at position (\d+):(\d+)$")
EXCERPT = 60

# Where character N of the rendered MJML came from: (template file, line), if known.
Locate = Callable[[int], "tuple[str, int] | None"]


def mjml_to_html(source: str, template: str, locate: Locate | None = None) -> str:
    """Compile MJML; an MJML error names the template and, when MRML gives a position, the line."""
    try:
        return mjml2html(source, fonts={}, disable_comments=True)
    except ValueError as exc:
        raise _mjml_error(str(exc), source, template, locate) from None


def _mjml_error(message: str, source: str, template: str, locate: Locate | None) -> TemplateError:
    position = _POSITION.search(message)
    if position is None:
        return TemplateError(f"MJML error: {message}", path=template, hint="MRML gives no position for it")
    start = len(source.encode()[: int(position.group(1))].decode(errors="ignore"))
    line_start = source.rfind("\n", 0, start) + 1
    line_end = source.find("\n", start)
    line = source[line_start : line_end if line_end >= 0 else len(source)]
    column = start - line_start
    excerpt = line[max(0, column - EXCERPT // 2) : column + EXCERPT // 2].strip()
    number = source.count("\n", 0, start) + 1
    detail = f"MJML error: {message[: position.start()]} at line {number} of the MJML, near {excerpt!r}"
    origin = locate(start) if locate else None
    if origin is None:
        return TemplateError(detail, path=template)
    return TemplateError(detail, path=origin[0], line=origin[1])


def inline_css(html: str) -> str:
    """Copy CSS rules onto the elements (many clients ignore <style>), keeping @media rules."""
    # premailer keeps a doctype only when it matches lxml's spelling exactly.
    html = _DOCTYPE.sub("<!DOCTYPE html>", html)
    inlined: str = Premailer(
        html,
        # @media rules cannot be inlined: premailer keeps them in a <style> of their own, so
        # columns still stack on phones and dark mode still applies.
        keep_style_tags=False,
        strip_important=False,
        remove_classes=False,
        disable_validation=True,
        allow_network=False,
        cssutils_logging_level=logging.CRITICAL,
        # Outlook sizes images by the pixel width attribute; keep MRML's, not "100%" from CSS.
        disable_basic_attributes=["width", "height"],
        # Its align="left|right" for a floated image: the templates float none, and a feed's
        # markup keeps no style (digest.ingest.sanitize). Parsing each image's style for it,
        # uncached, was two thirds of this call (44 ms of a 40-story edition's, now 13).
        align_floating_images=False,
    ).transform()
    return inlined


def minify(html: str) -> str:
    """Fold runs of whitespace (keeps Gmail under its clip).

    A run is folded, never dropped: between two inline tags the space is part of the text.
    """
    html = _NEWLINES.sub("\n", html)
    return _SPACES.sub(" ", html).strip()


def to_email_html(source: str, template: str, locate: Locate | None = None) -> str:
    return minify(inline_css(mjml_to_html(source, template, locate)))
