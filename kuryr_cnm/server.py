"""The HTTP side: Docker's plugin calls in, JSON out, errors as `{"Err": ...}`.

Docker POSTs `/<Subsystem>.<Method>` with a JSON body and no Content-Type; zero-
argument calls have an empty body. A threaded server answers each connection in
its own thread, so parallel `docker run`s are served concurrently. Nothing here
knows Neutron: routes map a method name to a handler that takes the decoded body
(or None when it was empty) and returns the JSON-able answer.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import ssl
import stat
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from kuryr_cnm import errors

LOG = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.docker.plugins.v1+json"
# Docker never sends bodies near this size; a larger one is refused, not read.
MAX_BODY = 1 << 20

Handler = Callable[[Any], Mapping[str, Any]]


class Router:
    """Method name ("NetworkDriver.CreateNetwork") -> handler."""

    def __init__(self) -> None:
        self._routes: dict[str, Handler] = {}

    def add(self, method: str, handler: Handler) -> None:
        self._routes[method] = handler

    def methods(self) -> list[str]:
        return sorted(self._routes)

    def dispatch(self, method: str, raw_body: bytes) -> tuple[int, Mapping[str, Any]]:
        """Run one call; always returns (status, body), never raises."""
        handler = self._routes.get(method)
        try:
            if handler is None:
                raise errors.UnknownMethod(
                    f"kuryr-cnm does not implement {method or '/'}; known methods: "
                    + ", ".join(self.methods())
                )
            return HTTPStatus.OK, handler(decode_body(method, raw_body))
        except errors.PluginError as exc:
            return exc.status, {"Err": exc.message}
        except Exception:  # a bug: log the traceback here, send Docker one line
            LOG.exception("%s failed with an unexpected error", method)
            return HTTPStatus.INTERNAL_SERVER_ERROR, {
                "Err": f"{method} failed with an internal error in kuryr-cnm; "
                "its log has the traceback"
            }


def decode_body(method: str, raw: bytes) -> Any:
    """The JSON body, or None for an empty one (Docker's zero-argument calls and retries)."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.BadRequest(f"{method}: the request body is not valid JSON ({exc})") from None


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Docker reuses its connection
    server_version = "kuryr-cnm"
    sys_version = ""
    server: "_ServerMixin"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        started = time.monotonic()
        method = self.path.lstrip("/").split("?", 1)[0]
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._reply(HTTPStatus.BAD_REQUEST, {"Err": f"{method}: bad Content-Length"})
            self.close_connection = True
            return
        raw = self.rfile.read(length) if length else b""
        status, body = self.server.router.dispatch(method, raw)
        self._reply(status, body)
        LOG.debug("%s -> %d in %.1f ms", method, status, (time.monotonic() - started) * 1000)

    def do_GET(self) -> None:  # noqa: N802
        self._reply(HTTPStatus.METHOD_NOT_ALLOWED,
                    {"Err": "Docker plugin calls are POST /<Subsystem>.<Method>"})

    do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET  # noqa: N815

    def _reply(self, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def address_string(self) -> str:
        # a Unix socket's client address is '', which the base class indexes
        return self.client_address[0] if isinstance(self.client_address, tuple) else "unix"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        LOG.debug("http %s: " + format, self.address_string(), *args)


class _ServerMixin(socketserver.ThreadingMixIn):
    daemon_threads = True  # a hung Neutron call must not keep the process from exiting
    # dockerd dials once per call and goroutine: a burst of `docker run`s must not find a
    # full accept queue (socketserver's default is 5; a refused dial costs Docker a 1 s retry)
    request_queue_size = 256
    router: Router

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A peer that hangs up (Docker restarting, a probe) is routine, not a traceback on stderr.
        LOG.debug("connection from %s ended with an error", client_address or "unix", exc_info=True)


class UnixPluginServer(_ServerMixin, socketserver.UnixStreamServer):
    pass


class TCPPluginServer(_ServerMixin, socketserver.TCPServer):
    allow_reuse_address = True


def make_server(uri: str, router: Router, *, socket_mode: int = 0o600,
                ssl_context: ssl.SSLContext | None = None) -> socketserver.BaseServer:
    """Bind the listener for kuryr_uri: unix:///path, http://host:port or https://host:port."""
    parts = urlsplit(uri)
    server: UnixPluginServer | TCPPluginServer
    if parts.scheme == "unix":
        path = parts.path
        _remove_stale_socket(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        old_umask = os.umask(0o177)  # the socket exists with no group/other access from the start
        try:
            server = UnixPluginServer(path, _RequestHandler)
        finally:
            os.umask(old_umask)
        os.chmod(path, socket_mode)
    elif parts.scheme in ("http", "https", "tcp"):
        host, port = parts.hostname or "127.0.0.1", parts.port or 23750
        TCPPluginServer.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = TCPPluginServer((host, port), _RequestHandler)
        if parts.scheme == "https":
            if ssl_context is None:
                raise ValueError("an https kuryr_uri needs ssl_cert_file and ssl_key_file")
            server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    else:
        raise ValueError(f"kuryr_uri {uri!r}: use unix:///path, http://host:port or https://host:port")
    server.router = router
    return server


def _remove_stale_socket(path: str) -> None:
    """A socket file left by a killed plugin blocks bind(); remove it unless someone answers on it."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ValueError(f"{path} exists and is not a socket; remove it or choose another kuryr_uri")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: stale
        return
    finally:
        probe.close()
    raise ValueError(f"another process already serves {path}; stop it first")


def serve_in_thread(server: socketserver.BaseServer) -> threading.Thread:
    """Run serve_forever in a daemon thread (tests, and the CLI's signal handling)."""
    thread = threading.Thread(target=server.serve_forever, name="plugin-server", daemon=True)
    thread.start()
    return thread
