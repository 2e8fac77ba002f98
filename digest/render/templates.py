"""The jinja2 environment: the newsroom's templates first, the packaged defaults after."""

from __future__ import annotations

import textwrap
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

import digest
from digest.errors import TemplateError

HTML_TEMPLATE = "digest.mjml.j2"
TEXT_TEMPLATE = "digest.txt.j2"
SUBJECT_TEMPLATE = "subject.txt.j2"
PREHEADER_TEMPLATE = "preheader.txt.j2"
WIDTH = 72


def default_template_dir() -> Path:
    """The packaged templates: inside an installed wheel, else the repository's templates/."""
    package = Path(digest.__file__).parent
    bundled = package / "_templates"
    return bundled if bundled.is_dir() else package.parent / "templates"


def wrap72(text: str, indent: str = "") -> str:
    """Text wrapped at 72 columns, every line indented; its own line breaks and long URLs kept."""
    return "\n".join(
        textwrap.fill(
            line,
            width=WIDTH,
            initial_indent=indent,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
        for line in text.splitlines()
    )


def make_environment(user_dir: Path | None = None) -> jinja2.Environment:
    """Templates are looked up in ``user_dir`` first, then in the packaged defaults."""
    dirs = [default_template_dir()]
    if user_dir is not None and user_dir.resolve() != dirs[0].resolve():
        dirs.insert(0, user_dir)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
        # Everything that becomes HTML is escaped; the text parts are not HTML.
        autoescape=jinja2.select_autoescape(enabled_extensions=("mjml.j2", "html.j2", "html"), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=True,
    )
    env.filters["wrap72"] = wrap72
    return env


def render_template(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    """Render one template; any failure becomes a TemplateError naming the file and line."""
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax error: {exc.message}", path=exc.filename or exc.name or name, line=exc.lineno
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(
            f"template {exc.name!r} not found",
            hint=f"looked in {', '.join(env.loader.searchpath)}",  # type: ignore[union-attr]
        ) from None
    except Exception as exc:  # an error raised while rendering: find the template line in the traceback
        path, line = _template_frame(exc, env)
        message = exc.message if isinstance(exc, jinja2.TemplateError) and exc.message else str(exc)
        raise TemplateError(f"template error: {message}", path=path or name, line=line) from None


def _template_frame(exc: BaseException, env: jinja2.Environment) -> tuple[str | None, int | None]:
    roots = tuple(str(Path(d).resolve()) for d in env.loader.searchpath)  # type: ignore[union-attr]
    found: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename and str(Path(frame.filename).resolve()).startswith(roots):
            found = (frame.filename, frame.lineno)
    return found
