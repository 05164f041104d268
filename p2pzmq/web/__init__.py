"""The web view of a served network (docs/DESIGN.md §9): ``serve --http HOST:PORT``. :func:`bind` checks and binds
the address before anything is built; :class:`WebView` serves the page (``static/``) and the JSON API."""
from .server import WebView, bind

__all__ = ["WebView", "bind"]
