"""MJML → HTML (mjml-python, MRML inside) → inlined CSS (premailer) → minified."""

from __future__ import annotations

import logging
import re

from mjml import mjml2html
from premailer import Premailer

from digest.errors import TemplateError

_SPACES = re.compile(r"[ \t]{2,}")
_NEWLINES = re.compile(r"\s*\n\s*")
_DOCTYPE = re.compile(r"^<!doctype html>", re.I)


def mjml_to_html(source: str, template: str) -> str:
    """Compile MJML; an MJML error names the template it came from."""
    try:
        return mjml2html(source, fonts={}, disable_comments=True)
    except ValueError as exc:
        raise TemplateError(f"MJML error: {exc}", path=template) from None


def inline_css(html: str) -> str:
    """Copy CSS rules onto the elements (many clients ignore <style>), keeping @media rules."""
    # premailer keeps a doctype only when it matches lxml's spelling exactly.
    html = _DOCTYPE.sub("<!DOCTYPE html>", html)
    return Premailer(
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
    ).transform()


def minify(html: str) -> str:
    """Fold runs of whitespace (keeps Gmail under its clip).

    A run is folded, never dropped: between two inline tags the space is part of the text.
    """
    html = _NEWLINES.sub("\n", html)
    return _SPACES.sub(" ", html).strip()


def to_email_html(source: str, template: str) -> str:
    return minify(inline_css(mjml_to_html(source, template)))
