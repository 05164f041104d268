"""The web view's HTTP server (docs/DESIGN.md §9): gevent's own WSGI server and a small router, in the supervisor's
process.

- ``GET /`` and ``GET /static/<file>``: the page and its scripts, all inside the package (nothing fetched from
  elsewhere);
- ``POST /api/<command>``: the command's arguments as a JSON object, answered through the control server's own
  queue (:meth:`~p2pzmq.control.ControlServer.submit`), so the reply and every refusal are the control socket's;
- ``GET /feed/events`` (Server-Sent Events), ``GET /feed/graph[?have=VERSION]`` and ``GET /feed/peer/<id>``: what
  the page draws.

Safe by default: a request whose ``Origin`` is not this server, or (without a token) whose ``Host`` is not a
loopback name, is refused (403: DNS rebinding); with a token every ``/api`` and ``/feed`` request must carry
``Authorization: Bearer TOKEN`` (401); a command never runs from a GET (405); a body must be JSON declared as
``application/json`` (415, so a cross-site form cannot post one) and at most the control socket's request size
(413). Every refusal is the control socket's error object. The page keeps no cookie and sends the token itself.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import socket
import urllib.parse

import gevent.event
import gevent.pywsgi
import gevent.socket

from .. import control
from ..config import MAX_CONTROL_REQUEST_BYTES
from ..errors import P2PError, TransportError, UsageError
from .feed import Feed, Snapshots

log = logging.getLogger(__name__)

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8", ".png": "image/png"}
_STATIC_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)?")
_PAGE_HEADERS = [
    ("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store")]
_STATUS = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized", 403: "403 Forbidden",
           404: "404 Not Found", 405: "405 Method Not Allowed", 413: "413 Payload Too Large",
           415: "415 Unsupported Media Type", 503: "503 Service Unavailable"}


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: tuple = ()) -> None:
        super().__init__(message)
        self.status = status
        self.headers = list(headers)


def bind(host: str, port: int, token: str | None) -> socket.socket:
    """The listening socket of ``serve --http HOST:PORT``, bound now so that a mistake ends the command before
    anything is built: :class:`UsageError` for an empty token, a non-loopback host without a token, a host that
    does not resolve, a port in use or not ours to bind."""
    if token is not None and not token:
        raise UsageError("--http-token must not be empty")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"--http {host}:{port}: cannot resolve {host!r:.80} ({exc})") from None
    if token is None and not ipaddress.ip_address(address[0]).is_loopback:
        raise UsageError(f"--http {host}:{port} is not a loopback address: give --http-token TOKEN to serve it")
    listener = gevent.socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(128)
    except OSError as exc:
        listener.close()
        raise UsageError(f"--http {host}:{port}: cannot listen there ({exc.strerror or exc})") from None
    return listener


class WebView:
    """Serves the page and API for ``network`` on ``listener`` (from :func:`bind`), commands going through
    ``server`` (the :class:`~p2pzmq.control.ControlServer`). :meth:`stop` ends every open feed, then the server
    and the greenlets of the requests still running."""

    def __init__(self, network, server: control.ControlServer, listener: socket.socket,
                 token: str | None = None) -> None:
        self._network = network
        self._control = server
        self._token = token
        self._closing = gevent.event.Event()
        self._snapshots = Snapshots(network)
        host, self.port = listener.getsockname()[:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"
        self._http = gevent.pywsgi.WSGIServer(listener, self._app, log=None, error_log=log)

    def start(self) -> "WebView":
        self._http.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        self._http.stop(timeout=self._network.config.shutdown_timeout)

    # -- routing ----------------------------------------------------------------------------------------------

    def _app(self, environ: dict, start_response):
        try:
            status, headers, body = self._route(environ)
        except _Refused as exc:
            status, headers = exc.status, [("Content-Type", "application/json"), *exc.headers]
            body = [control.encode(self._control.refuse(str(exc)))]
        start_response(_STATUS[status], headers)
        return body

    def _route(self, environ: dict):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        self._check_origin(environ)
        if path == "/" or path.startswith("/static/"):
            _only("GET", method)
            return self._file("index.html" if path == "/" else path[len("/static/"):])
        if path.startswith("/api/"):
            _only("POST", method)
            self._check_token(environ)
            return self._command(path[len("/api/"):], environ)
        if path.startswith("/feed/"):
            _only("GET", method)
            self._check_token(environ)
            return self._feed(path[len("/feed/"):], environ.get("QUERY_STRING", ""))
        raise _Refused(404, f"no such page: {path!r:.80}")

    def _check_origin(self, environ: dict) -> None:
        """Refuse a request a page of another site made (its ``Origin``), and without a token one that reached us
        by a name other than loopback's (a rebound DNS name: its ``Host``)."""
        host = environ.get("HTTP_HOST", "")
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and origin != f"http://{host}":
            raise _Refused(403, f"cross-origin request refused (Origin {origin!r:.80})")
        if self._token is None and not _loopback_name(host, self.port):
            raise _Refused(403, f"request for host {host!r:.80} refused: this server answers loopback names only")

    def _check_token(self, environ: dict) -> None:
        if self._token is None:
            return
        given = environ.get("HTTP_AUTHORIZATION", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode()):
            raise _Refused(401, "missing or wrong token: send Authorization: Bearer TOKEN",
                           [("WWW-Authenticate", 'Bearer realm="p2pzmq"')])

    # -- answers ----------------------------------------------------------------------------------------------

    def _file(self, name: str):
        if not _STATIC_NAME.fullmatch(name) or ".." in name:
            raise _Refused(404, f"no such file: {name!r:.80}")
        path = os.path.join(STATIC, *name.split("/"))
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            raise _Refused(404, f"no such file: {name!r:.80}") from None
        kind = _TYPES.get(os.path.splitext(name)[1], "application/octet-stream")
        return 200, [("Content-Type", kind), *_PAGE_HEADERS], [data]

    def _command(self, name: str, environ: dict):
        """Run command ``name`` with the body's arguments through the control server."""
        kind = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise _Refused(415, f"a command's body is JSON: send Content-Type: application/json, not {kind!r:.40}")
        declared = environ.get("CONTENT_LENGTH")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_CONTROL_REQUEST_BYTES):
            raise _Refused(413, f"request too large: {declared:.20} bytes, at most {MAX_CONTROL_REQUEST_BYTES}",
                           [("Connection", "close")])
        # without a length (chunked), read one byte past the limit to know it was passed
        raw = environ["wsgi.input"].read(int(declared) if declared is not None else MAX_CONTROL_REQUEST_BYTES + 1)
        if len(raw) > MAX_CONTROL_REQUEST_BYTES:
            raise _Refused(413, f"request too large: more than {MAX_CONTROL_REQUEST_BYTES} bytes",
                           [("Connection", "close")])
        raw = raw or b"{}"
        try:
            arguments = control.decode(raw)
            if not isinstance(arguments, dict) or "cmd" in arguments:
                raise UsageError('malformed request: the body is a JSON object of arguments, without "cmd"')
            command, checked = control.check_request({**arguments, "cmd": name})
        except control.UnknownCommand as exc:
            raise _Refused(404, str(exc)) from None
        except UsageError as exc:
            raise _Refused(400, str(exc)) from None
        return 200, [("Content-Type", "application/json")], [control.encode(self._control.submit(command, checked))]

    def _feed(self, name: str, query: str):
        if name == "events":
            headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-store"),
                       ("X-Accel-Buffering", "no")]
            return 200, headers, Feed(self._network.events).stream(self._closing)
        if name == "graph":
            have = urllib.parse.parse_qs(query).get("have", [""])[0]
            try:
                graph = self._snapshots.graph(int(have) if have.isdigit() else None)
            except P2PError as exc:  # the network is stopping
                raise _Refused(503, f"no graph now: {exc}") from None
            return 200, [("Content-Type", "application/json")], [graph]
        if name.startswith("peer/"):
            found = self._snapshots.peer(name[len("peer/"):])
            if found is None:
                raise _Refused(404, f"no peer {name[len('peer/'):]!r:.80} in the last graph read")
            try:  # asked now, of that one peer: a quick read
                found["counts"] = self._network.peer_counts(found["id"])
            except (UsageError, TransportError) as exc:  # it has gone since that read, or does not answer
                found["counts"] = None
                found["counts_error"] = str(exc)
            return 200, [("Content-Type", "application/json")], [control.encode(found)]
        raise _Refused(404, f"no such feed: {name!r:.80}")


def _only(allowed: str, method: str) -> None:
    if method != allowed:
        raise _Refused(405, f"{method:.10} not allowed here: use {allowed}", [("Allow", allowed)])


def _loopback_name(host: str, port: int) -> bool:
    """``host`` (a Host header) names this port on loopback: ``localhost``, ``127.x.x.x`` or ``[::1]``."""
    name, _, given = host.rpartition(":")
    if given != str(port):
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False

