"""`digest serve`: the public pages, the only part of digest on the internet.

``app`` routes each request to the module that answers it (unsubscribe, and the readers'
pages), ``pages`` renders every page from the newsroom's templates with the same security
headers, and ``server`` runs the app under a production WSGI server.
"""

from digest.web.app import create_app, make_app

__all__ = ["create_app", "make_app"]
