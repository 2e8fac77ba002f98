"""The jinja2 environment: the newsroom's templates first, the packaged defaults after."""

from __future__ import annotations

import textwrap
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import GeneratorType
from typing import Any

import jinja2

import digest
from digest.errors import TemplateError
from digest.render.mjml_check import check_mjml_template

HTML_TEMPLATE = "digest.mjml.j2"
TEXT_TEMPLATE = "digest.txt.j2"
SUBJECT_TEMPLATE = "subject.txt.j2"
PREHEADER_TEMPLATE = "preheader.txt.j2"
GREETING_TEMPLATE = "greeting.txt.j2"
MJML_SUFFIXES = (".mjml.j2", ".mjml")
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


class _Loader(jinja2.FileSystemLoader):
    """Loads templates from the folders in order; checks an MJML template's tags as it loads it.

    jinja2 asks for a template's source only to compile it (once, and again when the file
    changes), so the check costs nothing per render.
    """

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Any]:
        source, filename, uptodate = super().get_source(environment, template)
        if template.endswith(MJML_SUFFIXES):
            check_mjml_template(environment, source, filename)
        return source, filename, uptodate


def make_environment(user_dir: Path | None = None) -> jinja2.Environment:
    """Templates are looked up in ``user_dir`` first, then in the packaged defaults."""
    dirs = [default_template_dir()]
    if user_dir is not None and user_dir.resolve() != dirs[0].resolve():
        dirs.insert(0, user_dir)
    env = jinja2.Environment(
        loader=_Loader([str(d) for d in dirs]),
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
    except TemplateError:  # found while loading the template (an MJML typo): it has its line
        raise
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


def output_origin(
    env: jinja2.Environment, name: str, context: Mapping[str, Any], offset: int
) -> tuple[str, int] | None:
    """The template file and line that wrote character ``offset`` of the template's output.

    For error messages only: it renders the template again. jinja2 compiles a template to a
    generator; while it is paused after yielding a piece of output, its frame is in the code
    of the template that wrote that piece.
    """
    written = 0
    pieces = env.get_template(name).generate(context)
    for piece in pieces:
        written += len(piece)
        if written > offset:
            paused = _paused_in(pieces)
            return _line_of(*paused, piece, offset - (written - len(piece))) if paused else None
    return None


def _paused_in(generator: Iterator[str]) -> tuple[jinja2.Template, int] | None:
    """The innermost template whose code yielded last, and the line of that code."""
    found = None
    current: object = generator
    # Down the chain of `yield from` (blocks, extends) to the template code that yielded.
    while isinstance(current, GeneratorType) and current.gi_frame is not None:
        frame = current.gi_frame
        template = frame.f_globals.get("__jinja_template__")
        if isinstance(template, jinja2.Template):
            found = (template, frame.f_lineno)
        current = current.gi_yieldfrom
    return found


def _line_of(template: jinja2.Template, code_line: int, piece: str, at: int) -> tuple[str, int]:
    """The template line of character ``at`` of ``piece``, written by the code at ``code_line``.

    jinja2 marks the code of each statement and expression with its template line, not that of
    the literal text after it: text is found in the source after the last mark instead.
    """
    filename = template.filename or template.name or ""
    line = template.get_corresponding_lineno(code_line)
    try:
        source = Path(filename).read_text(encoding="utf-8")
    except OSError:
        return filename, line
    after = sum(len(text) + 1 for text in source.split("\n")[: line - 1])
    found = source.find(piece, after) if piece.strip() else -1
    if found < 0:  # an expression's value, not text of the template
        return filename, line
    return filename, source.count("\n", 0, found + at) + 1
