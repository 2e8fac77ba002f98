"""MJML tags and attributes a template writes, checked against MJML's documented components.

MRML (inside mjml-python) drops its warnings: a misspelt tag or attribute renders silently
wrong. So every MJML template is checked once, when jinja2 loads it, and a typo becomes a
TemplateError naming the file, the line and the closest known name.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import jinja2

from digest.errors import TemplateError

# Each component's attributes as MJML documents them (allowedAttributes in mjml's packages/mjml-*);
# None: any attribute, since <mj-all> and <mj-class> set defaults for every component.
_ATTRIBUTES: dict[str, str | None] = {
    "mjml": "lang dir owa",
    "mj-head": "",
    "mj-body": "width background-color id",
    "mj-attributes": "",
    "mj-all": None,
    "mj-class": None,
    "mj-breakpoint": "width",
    "mj-font": "name href",
    "mj-html-attributes": "",
    "mj-selector": "path",
    "mj-html-attribute": "name",
    "mj-include": "path type css-inline",
    "mj-preview": "",
    "mj-style": "inline",
    "mj-title": "",
    "mj-raw": "position",
    "mj-accordion": (
        "container-background-color border font-family icon-align icon-width icon-height "
        "icon-wrapped-url icon-wrapped-alt icon-unwrapped-url icon-unwrapped-alt icon-position "
        "padding padding-top padding-right padding-bottom padding-left"
    ),
    "mj-accordion-element": (
        "background-color border font-family icon-align icon-width icon-height icon-wrapped-url "
        "icon-wrapped-alt icon-unwrapped-url icon-unwrapped-alt icon-position"
    ),
    "mj-accordion-text": (
        "background-color font-size font-family font-weight letter-spacing line-height color padding "
        "padding-top padding-right padding-bottom padding-left"
    ),
    "mj-accordion-title": (
        "background-color color font-size font-family font-weight padding padding-top padding-right "
        "padding-bottom padding-left"
    ),
    "mj-button": (
        "align background-color border border-top border-right border-bottom border-left "
        "border-radius color container-background-color font-family font-size font-style font-weight "
        "height href name title inner-padding letter-spacing line-height padding padding-top "
        "padding-right padding-bottom padding-left rel target text-decoration text-transform "
        "vertical-align text-align width"
    ),
    "mj-carousel": (
        "align border-radius container-background-color icon-width left-icon padding padding-top "
        "padding-right padding-bottom padding-left right-icon thumbnails tb-border tb-border-radius "
        "tb-hover-border-color tb-selected-border-color tb-width"
    ),
    "mj-carousel-image": (
        "alt href rel target title src thumbnails-src border-radius tb-border tb-border-radius"
    ),
    "mj-column": (
        "background-color border border-top border-right border-bottom border-left border-radius "
        "direction inner-background-color padding padding-top padding-right padding-bottom "
        "padding-left inner-border inner-border-bottom inner-border-left inner-border-radius "
        "inner-border-right inner-border-top vertical-align width"
    ),
    "mj-divider": (
        "border-color border-style border-width container-background-color padding padding-top "
        "padding-right padding-bottom padding-left width align"
    ),
    "mj-group": "background-color direction vertical-align width",
    "mj-hero": (
        "mode height background-url background-width background-height background-position "
        "border-radius inner-background-color inner-padding inner-padding-top inner-padding-left "
        "inner-padding-right inner-padding-bottom padding padding-top padding-right padding-bottom "
        "padding-left background-color vertical-align"
    ),
    "mj-image": (
        "alt href name src srcset sizes title rel align border border-top border-right border-bottom "
        "border-left border-radius container-background-color fluid-on-mobile padding padding-top "
        "padding-right padding-bottom padding-left target width height max-height font-size usemap"
    ),
    "mj-navbar": (
        "align base-url hamburger ico-align ico-open ico-close ico-color ico-font-size "
        "ico-font-family ico-text-transform ico-padding ico-padding-left ico-padding-top "
        "ico-padding-right ico-padding-bottom padding padding-top padding-right padding-bottom "
        "padding-left ico-text-decoration ico-line-height"
    ),
    "mj-navbar-link": (
        "color font-family font-size font-style font-weight href name target rel letter-spacing "
        "line-height padding padding-top padding-right padding-bottom padding-left text-decoration "
        "text-transform"
    ),
    "mj-section": (
        "background-color background-url background-repeat background-size background-position "
        "background-position-x background-position-y border border-top border-right border-bottom "
        "border-left border-radius direction full-width gutter padding padding-top padding-right "
        "padding-bottom padding-left text-align text-padding"
    ),
    "mj-social": (
        "align border border-radius container-background-color color font-family font-size font-style "
        "font-weight icon-size icon-height icon-padding inner-padding line-height mode padding "
        "padding-top padding-right padding-bottom padding-left table-layout text-padding "
        "text-decoration vertical-align"
    ),
    "mj-social-element": (
        "align icon-position background-color color border border-radius font-family font-size "
        "font-style font-weight href icon-size icon-height icon-padding line-height name padding "
        "padding-top padding-right padding-bottom padding-left text-padding rel src srcset sizes alt "
        "title target text-decoration vertical-align"
    ),
    "mj-spacer": (
        "border border-bottom border-left border-right border-top container-background-color padding "
        "padding-top padding-right padding-bottom padding-left height"
    ),
    "mj-table": (
        "align border cellpadding cellspacing container-background-color color font-family font-size "
        "font-weight line-height padding padding-top padding-right padding-bottom padding-left role "
        "table-layout vertical-align width"
    ),
    "mj-text": (
        "align background-color color container-background-color font-family font-size font-style "
        "font-weight height letter-spacing line-height padding padding-top padding-right "
        "padding-bottom padding-left text-decoration text-transform vertical-align"
    ),
    "mj-wrapper": (
        "background-color background-url background-repeat background-size background-position "
        "background-position-x background-position-y border border-top border-right border-bottom "
        "border-left border-radius direction full-width gutter padding padding-top padding-right "
        "padding-bottom padding-left text-align text-padding gap"
    ),
}
# MJML accepts these on every component (its validator's whitelist).
_EVERYWHERE = frozenset({"css-class", "mj-class"})
ALLOWED: dict[str, frozenset[str] | None] = {
    tag: None if names is None else frozenset(names.split()) | _EVERYWHERE
    for tag, names in _ATTRIBUTES.items()
}

# Stands for whatever jinja2 writes ({{ … }}, {% … %}): a name containing it is not checked.
_DYNAMIC = "\x1a"
_TAG = re.compile(r"<(/?)(mjml|mj-[\w-]*)(?=[\s/>])((?:\"[^\"]*\"|'[^']*'|[^'\">])*)>")
_ATTRIBUTE = re.compile(r"([^\s=/\"'>]+)(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?")


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    message: str
    hint: str | None


def check_mjml_template(env: jinja2.Environment, source: str, path: str) -> None:
    """Raise a TemplateError for the first unknown MJML tag or attribute in a template's source."""
    problems = find_problems(_literal_text(env, source))
    if problems:
        first = problems[0]
        more = f"; and {len(problems) - 1} more MJML problem(s) after it" if len(problems) > 1 else ""
        raise TemplateError(first.message + more, path=path, line=first.line, hint=first.hint)


def find_problems(text: str) -> list[Problem]:
    """Unknown tags and attributes in MJML text, with the line each is on."""
    problems: list[Problem] = []
    for tag in _TAG.finditer(text):
        closing, name, attributes = tag.groups()
        line = text.count("\n", 0, tag.start()) + 1
        if name not in ALLOWED:
            hint = _did_you_mean(name, ALLOWED, "<{}>")
            problems.append(Problem(line, f"unknown MJML tag <{closing}{name}>", hint))
            continue
        allowed = ALLOWED[name]
        if closing or allowed is None:
            continue
        for attribute in _ATTRIBUTE.finditer(attributes):
            key = attribute.group(1)
            if key not in allowed and _DYNAMIC not in key:
                at = line + attributes.count("\n", 0, attribute.start())
                hint = _did_you_mean(key, allowed, "{!r}")
                problems.append(Problem(at, f"<{name}> has no attribute {key!r}", hint))
    return problems


def _did_you_mean(name: str, known: Iterable[str], form: str) -> str | None:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"did you mean {form.format(close[0])}?" if close else None


def _literal_text(env: jinja2.Environment, source: str) -> str:
    """The template's own text, each jinja2 tag, expression and comment replaced by a marker.

    Its lines are the template's lines, so a match in it is on the line the editor sees.
    """
    parts: list[str] = []
    line = 1
    try:
        for lineno, kind, value in env.lex(source):
            if kind != "data":
                continue
            if lineno > line:
                parts.append("\n" * (lineno - line))
            parts.append(_DYNAMIC + value)
            line = lineno + value.count("\n")
    except jinja2.TemplateSyntaxError:
        return ""  # compiling the template reports it, with its line
    return "".join(parts)
