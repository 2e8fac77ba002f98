"""The newsroom's look: its accent colour made readable, its fonts with safe fallbacks.

One home for colour: the email templates and the web pages take their colours from
``Palette``, so every text colour meets WCAG's 4.5:1 against its background in light and dark
mode whatever accent a newsroom picks (a pale yellow brand still gets readable links).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from digest import logos

if TYPE_CHECKING:
    from digest.config.models import Settings

# WCAG 2.x AA for body text.
MIN_CONTRAST = 4.5
# WCAG 2.1's 1.4.11 for what is not text but must be seen, like the edge of a form field.
MIN_NON_TEXT_CONTRAST = 3.0
DEFAULT_ACCENT = "#0b57a4"
# Every stack ends with fonts every client has, then the generic family.
SAFE_FALLBACK = ("Helvetica", "Arial", "sans-serif")
DEFAULT_FONTS = ("-apple-system", "BlinkMacSystemFont", "Segoe UI", "Roboto", *SAFE_FALLBACK)
_GENERIC = {"serif", "sans-serif", "monospace", "system-ui", "cursive", "fantasy"}
_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
# A font name CSS takes unquoted: words of letters, digits and hyphens, each starting with a
# letter. No quotes, ";" or braces: a stack goes into style attributes and <style>.
_WORD = r"-?[^\W\d][\w-]*"
_FONT_NAME = re.compile(rf"^{_WORD}(?: {_WORD})*$")


def hex_color(value: str) -> str:
    """``#abc`` or ``#aabbcc``, returned as lower-case ``#aabbcc``; ValueError otherwise."""
    # fullmatch: a `$` would let a trailing newline through, into the pages' CSS.
    if not _HEX.fullmatch(value):
        raise ValueError(f'{value!r} is not a hex colour like "#0b57a4"')
    digits = value[1:].lower()
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return f"#{digits}"


def _channels(color: str) -> tuple[int, int, int]:
    value = int(color[1:], 16)
    return value >> 16, (value >> 8) & 0xFF, value & 0xFF


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(color: str) -> float:
    """WCAG relative luminance of ``#rrggbb``."""
    r, g, b = (_linear(c) for c in _channels(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(one: str, other: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours, 1 to 21."""
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def mix(color: str, toward: str, share: float) -> str:
    """``color`` moved ``share`` (0 to 1) of the way to ``toward``."""
    pairs = zip(_channels(color), _channels(toward), strict=True)
    return "#" + "".join(f"{round(a + (b - a) * share):02x}" for a, b in pairs)


def readable(color: str, background: str, minimum: float = MIN_CONTRAST) -> str:
    """``color`` itself when it reads on ``background``, else the nearest shade of it that does:
    mixed toward black on a light background, toward white on a dark one."""
    if contrast(color, background) >= minimum:
        return color
    target = "#000000" if luminance(background) > 0.18 else "#ffffff"
    for step in range(1, 101):
        shade = mix(color, target, step / 100)
        if contrast(shade, background) >= minimum:
            return shade
    return target


def font_stack(value: str | None) -> str:
    """The newsroom's fonts, then the safe fallbacks it does not already name, for CSS."""
    names = [name.strip().strip("'\"") for name in (value or "").split(",")]
    names = [name for name in names if name] or list(DEFAULT_FONTS)
    for name in names:
        if not _FONT_NAME.match(name):
            raise ValueError(
                f"font {name!r} cannot stand unquoted in a CSS font list; "
                "use names whose words are letters, digits and hyphens, each word starting with a letter"
            )
    folded = {name.casefold() for name in names}
    if not folded & _GENERIC:
        names += [fallback for fallback in SAFE_FALLBACK if fallback.casefold() not in folded]
    elif names[-1].casefold() not in _GENERIC:
        raise ValueError(f"the generic family in {value!r} must come last, where a browser falls back to it")
    # Unquoted: CSS takes a name of several words as it is, and a quote would be escaped to
    # &#39; by the templates' autoescape, breaking the rule it sits in.
    return ", ".join(names)


@dataclass(frozen=True, slots=True)
class Scheme:
    """The colours of one mode; every text colour reads on ``background`` at 4.5:1 or more, and
    ``control`` (the edge of a form field) at 3:1."""

    background: str
    ink: str
    muted: str
    rule: str
    accent: str
    link: str
    button: str
    button_text: str
    control: str


@dataclass(frozen=True, slots=True)
class Palette:
    light: Scheme
    dark: Scheme

    @classmethod
    def of(cls, accent: str = DEFAULT_ACCENT) -> Palette:
        return _palette(accent)


# Finding the readable shades takes about 0.3 ms; every variant of an edition and every page
# asks again for the same accent.
@functools.lru_cache(maxsize=8)
def _palette(accent: str) -> Palette:
    return Palette(
        light=_scheme(accent, "#ffffff", "#1f1f1f", "#5c5c5c", "#d6d6d6"),
        dark=_scheme(accent, "#121212", "#e8e8e8", "#ababab", "#3d3d3d"),
    )


def _scheme(accent: str, background: str, ink: str, muted: str, rule: str) -> Scheme:
    # The button keeps the brand's own colour; its label is white or near-black, whichever
    # reads better, and only a mid-tone that neither reads on is shaded.
    button_text = max(("#ffffff", "#111111"), key=lambda text: contrast(text, accent))
    button = readable(accent, button_text)
    return Scheme(
        background=background,
        ink=ink,
        muted=muted,
        rule=rule,
        accent=accent,
        link=readable(accent, background),
        button=button,
        button_text=button_text,
        # The rule's own grey, darkened (lightened in dark mode) until a field's edge shows.
        control=readable(rule, background, MIN_NON_TEXT_CONTRAST),
    )


def brand_context(settings: Settings) -> dict[str, Any]:
    """The newsroom's look as templates see it, the emails' and the web pages' alike: ``light``
    and ``dark`` schemes, ``fonts``, and ``logo`` (None without one; its alt text defaults to
    the newsroom's name, its addresses are where readers fetch it)."""
    newsroom, base_url = settings.newsroom, settings.server.base_url
    logo = None
    if newsroom.logo_url:
        logo = {
            "url": logos.href(newsroom.logo_url, base_url),
            "dark_url": newsroom.logo_dark_url and logos.href(newsroom.logo_dark_url, base_url),
            "width": newsroom.logo_width,
            "height": newsroom.logo_height,
            "alt": newsroom.logo_alt or newsroom.name,
        }
    palette = Palette.of(newsroom.accent_color)
    return {"light": palette.light, "dark": palette.dark, "fonts": newsroom.font_stack, "logo": logo}
