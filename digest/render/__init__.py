"""Render: an edition → subject, preheader, responsive HTML and a plain-text part."""

from __future__ import annotations

from pathlib import Path

import jinja2

from digest.config import Config
from digest.ingest.sanitize import one_line, shorten
from digest.model import Edition, Rendered
from digest.render.context import NAME_MARK, Greeting, template_context
from digest.render.html import to_email_html
from digest.render.templates import (
    GREETING_TEMPLATE,
    HTML_TEMPLATE,
    PREHEADER_TEMPLATE,
    SUBJECT_TEMPLATE,
    TEXT_TEMPLATE,
    make_environment,
    output_origin,
    render_template,
)

# Subject lines past this are cut by mail clients anyway; cut at a word, with an ellipsis.
SUBJECT_LIMIT = 200


def environment(config: Config) -> jinja2.Environment:
    return make_environment(config.templates)


def render_edition(
    config: Config, edition: Edition, env: jinja2.Environment | None = None, *, web: bool = False
) -> Rendered:
    """Render all four templates for an edition (its desks are the variant); ``web``: for the
    web archive, not an email (see ``template_context``)."""
    env = env or environment(config)
    context = template_context(config, edition, web=web)
    # Subject and preheader end up in headers or hidden text: one line, no control characters.
    subject = shorten(one_line(render_template(env, SUBJECT_TEMPLATE, context)), SUBJECT_LIMIT)
    preheader = one_line(render_template(env, PREHEADER_TEMPLATE, context))
    context.update(subject=subject, preheader=preheader)
    mjml = render_template(env, HTML_TEMPLATE, context)
    html = to_email_html(
        mjml,
        _template_path(env, HTML_TEMPLATE),
        # Only called after an MJML error: it renders the template once more to find the line.
        lambda offset: output_origin(env, HTML_TEMPLATE, context, offset),
    )
    text = render_template(env, TEXT_TEMPLATE, context).strip() + "\n"
    return Rendered(subject=subject, preheader=preheader, html=html, text=text)


def render_greeting(env: jinja2.Environment) -> Greeting:
    """The greeting's wording (``greeting.txt.j2``), rendered once for every recipient to come."""
    named, anonymous = (
        one_line(render_template(env, GREETING_TEMPLATE, {"name": name})) for name in (NAME_MARK, "")
    )
    return Greeting(named, anonymous)


def _template_path(env: jinja2.Environment, name: str) -> str:
    # The compiled template's file: asking the loader again would read and check it again.
    filename = env.get_template(name).filename
    return str(Path(filename)) if filename else name


__all__ = ["Greeting", "Rendered", "environment", "render_edition", "render_greeting"]
