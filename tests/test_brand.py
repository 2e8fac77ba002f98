"""digest.brand's promise: whatever the accent, every colour a reader must see is readable."""

from __future__ import annotations

import itertools
import re

import pytest

from digest.brand import (
    MIN_CONTRAST,
    MIN_NON_TEXT_CONTRAST,
    Palette,
    brand_context,
    contrast,
    font_stack,
    hex_color,
    luminance,
    mix,
    readable,
)
from digest.config import Config

# Every corner and mid-point of the RGB cube, and brand colours that are hard to read on
# white (pale yellow) or on black (navy).
LEVELS = ("00", "80", "ff")
ACCENTS = ["#" + "".join(rgb) for rgb in itertools.product(LEVELS, repeat=3)] + [
    "#ffd400",
    "#0b1f4d",
    "#0b57a4",
]


@pytest.mark.parametrize("accent", ACCENTS)
def test_every_role_reads_on_its_ground_in_both_modes(accent: str) -> None:
    palette = Palette.of(accent)
    for scheme in (palette.light, palette.dark):
        for text in (scheme.ink, scheme.muted, scheme.link):
            assert contrast(text, scheme.background) >= MIN_CONTRAST, (accent, scheme)
        assert contrast(scheme.button_text, scheme.button) >= MIN_CONTRAST, (accent, scheme)
        # A form field's edge is no text, but it must show: WCAG 1.4.11's 3:1.
        assert contrast(scheme.control, scheme.background) >= MIN_NON_TEXT_CONTRAST, (accent, scheme)


def test_a_field_edge_is_the_rule_grey_shaded_only_as_far_as_it_must() -> None:
    palette = Palette.of()
    # Darker than the rule on white, lighter on black; just past 3:1, not as loud as text.
    assert luminance(palette.light.control) < luminance(palette.light.rule)
    assert luminance(palette.dark.control) > luminance(palette.dark.rule)
    for scheme in (palette.light, palette.dark):
        assert (
            MIN_NON_TEXT_CONTRAST <= contrast(scheme.control, scheme.background) < MIN_NON_TEXT_CONTRAST + 0.2
        )


# WCAG 2.x relative luminance (https://www.w3.org/TR/WCAG21/#dfn-relative-luminance): the
# primaries weigh 0.2126, 0.7152 and 0.0722; a channel at or below sRGB's knee (0.04045, a
# level of 10 of 255) is linear, c / 12.92, and one above it is ((c + 0.055) / 1.055) ** 2.4.
LUMINANCE = [
    ("#000000", 0.0),
    ("#ffffff", 1.0),
    ("#ff0000", 0.2126),
    ("#00ff00", 0.7152),
    ("#0000ff", 0.0722),
    ("#808080", 0.21586),
    ("#777777", 0.18448),
    ("#010101", 0.00030353),  # 1/255/12.92: below the knee
    ("#0a0a0a", 0.0030353),  # 10/255/12.92: still below it
    ("#0b0b0b", 0.0033465),  # 11 is above: the curve
]
# WCAG contrast ratios, (L1 + 0.05) / (L2 + 0.05), either colour first.
CONTRAST = [
    ("#000000", "#ffffff", 21.0),
    ("#ffffff", "#000000", 21.0),
    ("#0b57a4", "#0b57a4", 1.0),
    ("#777777", "#ffffff", 4.48),  # the grey that just fails AA on white
    ("#767676", "#ffffff", 4.54),  # the lightest grey that passes it
    ("#595959", "#ffffff", 7.0),  # AAA
    ("#ffffff", "#ff0000", 4.0),
    ("#000000", "#ff0000", 5.25),
    ("#0000ff", "#ffffff", 8.59),
    ("#ffffff", "#808080", 3.95),
]


@pytest.mark.parametrize(("color", "expected"), LUMINANCE)
def test_relative_luminance_is_wcags(color: str, expected: float) -> None:
    assert luminance(color) == pytest.approx(expected, rel=1e-3, abs=1e-9)


@pytest.mark.parametrize(("one", "other", "expected"), CONTRAST)
def test_contrast_is_wcags_ratio(one: str, other: str, expected: float) -> None:
    assert contrast(one, other) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("#0b57a4", "#0b57a4"),
        ("#0B57A4", "#0b57a4"),
        ("#abc", "#aabbcc"),
        ("#F2A", "#ff22aa"),
        ("#000", "#000000"),
        ("#fff", "#ffffff"),
    ],
)
def test_a_hex_colour_is_read_short_or_long_in_either_case(written: str, read: str) -> None:
    assert hex_color(written) == read


@pytest.mark.parametrize(
    "value",
    [
        "0b57a4",
        "#0b57a",
        "#abcd",
        "#0b57a4f",
        "blue",
        "#ggg",
        "",
        " #0b57a4",
        "#0b57a4 ",
        "#0b57a4\n",
        "#abc\n",
    ],
)
def test_anything_else_is_no_hex_colour(value: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f'{value!r} is not a hex colour like "#0b57a4"')):
        hex_color(value)


@pytest.mark.parametrize(
    ("color", "toward", "share", "mixed"),
    [
        ("#0b57a4", "#ffffff", 0.0, "#0b57a4"),
        ("#0b57a4", "#ffffff", 1.0, "#ffffff"),
        ("#0b57a4", "#000000", 1.0, "#000000"),
        ("#ffffff", "#000000", 0.5, "#808080"),
        ("#000000", "#ffffff", 0.5, "#808080"),
        ("#ff8000", "#0080ff", 0.25, "#bf8040"),
    ],
)
def test_mix_moves_each_channel_its_share_of_the_way(
    color: str, toward: str, share: float, mixed: str
) -> None:
    assert mix(color, toward, share) == mixed


@pytest.mark.parametrize(
    ("color", "background", "shade"),
    [
        ("#767676", "#ffffff", "#767676"),  # 4.54: reads as it is
        ("#0b57a4", "#ffffff", "#0b57a4"),
        ("#777777", "#ffffff", "#767676"),  # 4.48: one step toward black reads
    ],
)
def test_readable_keeps_a_colour_that_reads_and_shades_one_that_does_not(
    color: str, background: str, shade: str
) -> None:
    assert readable(color, background) == shade


@pytest.mark.parametrize(
    ("color", "background"), [("#777777", "#ffffff"), ("#ffd400", "#121212"), ("#0b57a4", "#ffffff")]
)
def test_a_colour_exactly_at_the_minimum_reads(color: str, background: str) -> None:
    # WCAG asks for "at least" the ratio: one that is exactly it passes.
    assert readable(color, background, contrast(color, background)) == color


@pytest.mark.parametrize(
    ("color", "background", "target"),
    [("#ffd400", "#ffffff", "#000000"), ("#0b1f4d", "#121212", "#ffffff"), ("#0b57a4", "#121212", "#ffffff")],
)
@pytest.mark.parametrize("percent", [1, 2, 7, 30, 64])
def test_readable_shades_only_as_far_as_the_minimum_needs(
    color: str, background: str, target: str, percent: int
) -> None:
    # Black on a light background, white on a dark one; asked for exactly the contrast of the
    # shade `percent`% of the way there, that shade is the answer, not one further.
    shade = mix(color, target, percent / 100)
    assert readable(color, background, contrast(shade, background)) == shade


@pytest.mark.parametrize(("background", "best"), [("#808080", "#000000"), ("#666666", "#ffffff")])
def test_when_no_shade_reaches_the_minimum_the_best_there_is_is_given(background: str, best: str) -> None:
    # WCAG's AAA 7:1 on a mid-grey: neither black nor white reaches it; the one nearer it does.
    assert max(contrast("#000000", background), contrast("#ffffff", background)) < 7
    assert readable("#0b57a4", background, 7.0) == best


# (accent, its button's label, the button): white or near-black, whichever reads better on the
# brand's colour, which stays as it is unless neither reads on it.
BUTTONS = [
    ("#0b57a4", "#ffffff", "#0b57a4"),
    ("#0b1f4d", "#ffffff", "#0b1f4d"),
    ("#ffd400", "#111111", "#ffd400"),
    ("#ffffff", "#111111", "#ffffff"),
    # Mid-grey: white reads at 4.48, near-black at 4.22: the button goes one step darker.
    ("#777777", "#ffffff", "#767676"),
]


@pytest.mark.parametrize(("accent", "label", "button"), BUTTONS)
def test_a_button_keeps_the_brand_colour_and_takes_the_label_that_reads_on_it(
    accent: str, label: str, button: str
) -> None:
    palette = Palette.of(accent)
    for scheme in (palette.light, palette.dark):
        assert (scheme.accent, scheme.button_text, scheme.button) == (accent, label, button)


DEFAULT_STACK = "-apple-system, BlinkMacSystemFont, Segoe UI, Roboto, Helvetica, Arial, sans-serif"


@pytest.mark.parametrize(
    ("written", "stack"),
    [
        (None, DEFAULT_STACK),
        ("", DEFAULT_STACK),
        (" , ", DEFAULT_STACK),
        ("Georgia, Times New Roman", "Georgia, Times New Roman, Helvetica, Arial, sans-serif"),
        # Quotes are dropped: the templates' autoescape would turn them into &#39;.
        ("'Times New Roman', \"Georgia\", serif", "Times New Roman, Georgia, serif"),
        ("Xanh Mono, monospace", "Xanh Mono, monospace"),
        # A fallback already named, in any case, is not named twice.
        ("Inter, arial", "Inter, arial, Helvetica, sans-serif"),
        ("Georgia, SERIF", "Georgia, SERIF"),
    ],
)
def test_a_font_stack_ends_in_fonts_every_client_has(written: str | None, stack: str) -> None:
    assert font_stack(written) == stack


def test_without_a_logo_the_brand_has_none(config: Config) -> None:
    assert brand_context(config.settings)["logo"] is None
