"""`digest serve`: the unsubscribe endpoint, the same app a WSGI server runs."""

from __future__ import annotations

import os

import click

from digest.cli.base import Context


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.pass_obj
def serve(obj: Context, host: str, port: int) -> None:
    """Run the unsubscribe endpoint ([server] base_url should point here, over https)."""
    from digest.web import create_app
    from digest.web.server import serve as run_server

    run_server(create_app(obj.config, os.environ), host=host, port=port, colour=obj.colour)
