"""`digest preview`: a local page showing each list's edition as it will be sent."""

from __future__ import annotations

import click

from digest.cli.base import Context


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8025, show_default=True, type=int, help="Port to listen on.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@click.pass_obj
def preview(obj: Context, host: str, port: int, open_browser: bool) -> None:
    """Preview each list's edition in a browser, as `digest send` would send it.

    Renders with the same code as `digest send` and reloads the page when a template, the
    config or a local feed changes. Writes nothing to the state database; a test send goes
    to one address only, with a [TEST] subject, and is not recorded.
    """
    from digest.config import config_path, load_config
    from digest.preview.app import serve

    path = config_path(obj.config_file)
    if not path.is_file():
        load_config(path)  # says where it looked and how to fix it
    serve(path, host=host, port=port, open_browser=open_browser, announce=click.echo, colour=obj.colour)
