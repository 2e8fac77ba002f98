"""digest.brand's promise: whatever the accent, every colour a reader must see is readable."""

from __future__ import annotations

import itertools

import pytest

from digest.brand import MIN_CONTRAST, MIN_NON_TEXT_CONTRAST, Palette, contrast, luminance

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
