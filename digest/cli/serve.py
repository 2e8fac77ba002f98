"""`digest serve`: the public pages (sign-up, confirmation, unsubscribe…) on gunicorn."""

from __future__ import annotations

import os

import click

from digest.cli.base import Context


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes (each with a few threads); they share the state database.",
)
@click.pass_obj
def serve(obj: Context, host: str, port: int, workers: int) -> None:
    """Run the public pages: sign-up, confirmation and unsubscribe ([server] base_url, over https)."""
    from digest.statefile import open_store
    from digest.web import create_app
    from digest.web.server import serve as run_server

    # Made here, before the workers fork, so a missing secret stops it at once; each worker
    # opens the state store itself on first use.
    app = create_app(obj.config, os.environ)
    # The database is created or upgraded once, here: workers opening a new SQLite file at the
    # same moment would find it still empty and refuse it. Closed before the fork.
    with open_store(obj.config) as store:
        store.migrate()
    run_server(lambda: app, host=host, port=port, workers=workers)
