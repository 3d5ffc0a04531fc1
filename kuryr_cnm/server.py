"""The HTTP side: Docker's plugin calls in, JSON out, errors as `{"Err": ...}`.

Docker POSTs `/<Subsystem>.<Method>` with a JSON body and no Content-Type; zero-
argument calls have an empty body. A threaded server answers each connection in
its own thread, so parallel `docker run`s are served concurrently. Nothing here
knows Neutron: routes map a method name to a handler that takes the decoded body
(or None when it was empty) and returns the JSON-able answer.
"""
from __future__ import annotations

import ipaddress
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

from kuryr_cnm import errors, redact

LOG = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.docker.plugins.v1+json"
# Docker never sends bodies near this size; a larger one is refused, not decoded.
MAX_BODY = 1 << 20
# What a refused request may still send after its answer is read and thrown away, this much and
# this long at most (see _RequestHandler._linger): a client sending without end holds its thread
# only so long.
DRAIN_MAX_BYTES = 64 << 20
DRAIN_SECONDS = 5.0
DEFAULT_PORT = 23750  # kuryr-libnetwork's
# A client that connects and never completes the TLS handshake holds only its own thread this long.
HANDSHAKE_TIMEOUT = 10.0
# Hosts in kuryr_uri that mean "every interface"; upstream's docs and deployments used 0.0.0.0.
_WILDCARDS = {"", "0.0.0.0", "::", "*"}

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
                    f"kuryr-cnm does not implement {method[:80] or '/'}; known methods: "
                    + ", ".join(self.methods())
                )
            return HTTPStatus.OK, handler(decode_body(method, raw_body))
        except errors.PluginError as exc:
            return exc.status, {"Err": redact.scrub(exc.message)}
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
    except RecursionError:  # json's decoder recurses once per nested array or object
        raise errors.BadRequest(f"{method}: the request body nests arrays or objects too deeply") from None


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Docker reuses its connection
    server_version = "kuryr-cnm"
    sys_version = ""
    server: "_ServerMixin"

    def handle(self) -> None:
        self._unread_input = False  # set by a refusal that leaves the client's input unread
        super().handle()
        if self._unread_input:
            self._linger()

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        started = time.monotonic()
        method = self.path.lstrip("/").split("?", 1)[0]
        if self.headers.get("Transfer-Encoding") is not None:
            # Docker sends a Content-Length; read as empty, a chunked body would run the call
            # without its arguments and its chunks would be parsed as the next request
            self._refuse(HTTPStatus.LENGTH_REQUIRED,
                         f"{method[:80]}: chunked bodies are not accepted; send a Content-Length")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._refuse(HTTPStatus.BAD_REQUEST, f"{method[:80]}: bad Content-Length")
            return
        raw = self.rfile.read(length) if length else b""
        status, body = self.server.router.dispatch(method, raw)
        self._reply(status, body)
        LOG.debug("%s -> %d in %.1f ms", method, status, (time.monotonic() - started) * 1000)

    def do_GET(self) -> None:  # noqa: N802
        err = "Docker plugin calls are POST /<Subsystem>.<Method>"
        if self.headers.get("Transfer-Encoding") is not None or (self.headers.get("Content-Length") or "0") != "0":
            self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, err)  # its body is not read
            return
        self._reply(HTTPStatus.METHOD_NOT_ALLOWED, {"Err": err})

    do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET  # noqa: N815

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own refusals (unknown verb, bad request line, oversized headers) as
        # JSON with an Err like every other answer, not its HTML page
        self._refuse(code, message or HTTPStatus(code).phrase)

    def _refuse(self, status: int, err: str) -> None:
        """Answer a request whose input is left unread, and end the connection after it."""
        self.close_connection = True  # the unread rest cannot be told from a next request
        self._unread_input = True
        self._reply(status, {"Err": err})

    def _linger(self) -> None:
        """Half-close, then read and discard what the client still sends, within bounds.

        A refused request's body is still arriving when its answer goes out. Closing a socket
        with input unread makes the kernel reset the connection: the client, still writing its
        body, gets a broken pipe or a reset instead of reading the answer (and over TCP the reset
        can discard the answer from its buffer). So the answer goes out, then EOF (SHUT_WR), and
        the rest of the body is read until the client closes, DRAIN_MAX_BYTES are read or
        DRAIN_SECONDS pass, whichever comes first."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            return  # the client is gone: nothing to read, nobody to answer
        deadline = time.monotonic() + DRAIN_SECONDS
        left = DRAIN_MAX_BYTES
        try:
            while left > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.connection.settimeout(remaining)
                # rfile first hands over what it already buffered past the request's headers
                chunk = self.rfile.read1(min(left, 1 << 16))
                if not chunk:
                    break  # the client closed: a close now resets nothing
                left -= len(chunk)
        except OSError:  # the time is up (TimeoutError), or the client reset the connection
            pass
        if left <= 0 or time.monotonic() >= deadline:
            LOG.debug("stopped reading a refused request from %s after %d bytes",
                      self.address_string(), DRAIN_MAX_BYTES - left)

    def _reply(self, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:  # a keep-alive client must not send its next call here
            self.send_header("Connection", "close")
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
    ssl_context: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        # The handshake runs here, in the connection's own thread: done in accept(), one client
        # that connects and says nothing would stall every other connection.
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:  # a plain-HTTP client, no client certificate, a probe
            LOG.info("TLS handshake with %s refused: %s", client_address[0], exc)
            return
        tls.settimeout(None)
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


class TCP6PluginServer(TCPPluginServer):
    address_family = socket.AF_INET6


def tls_context(cert_file: str, key_file: str, ca_file: str | None = None) -> ssl.SSLContext:
    """The listener's TLS 1.2+ context; with ca_file, clients must present a certificate it signed.

    Raises ValueError saying which file is wrong and what to do, never the key's content."""
    for option, path in (("ssl_cert_file", cert_file), ("ssl_key_file", key_file), ("ssl_ca_file", ca_file)):
        if path:
            _check_readable(option, path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        # a callable password: an encrypted key fails here instead of prompting on a service's stdin
        ctx.load_cert_chain(cert_file, key_file, password=lambda: b"")
    except ssl.SSLError as exc:
        raise ValueError(
            f"ssl_cert_file {cert_file} and ssl_key_file {key_file} are not a PEM certificate and its "
            f"unencrypted private key ({exc.reason or exc.__class__.__name__}); check that the key "
            "matches the certificate and is not passphrase-protected") from None
    if ca_file:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except ssl.SSLError as exc:
            raise ValueError(f"ssl_ca_file {ca_file} holds no PEM CA certificate "
                             f"({exc.reason or exc.__class__.__name__})") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _check_readable(option: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise ValueError(f"{option} {path} does not exist: create it (README, Security) or point "
                         f"{option} in kuryr.conf at the right file") from None
    except PermissionError:
        raise ValueError(f"{option} {path} cannot be read by uid {os.getuid()}: kuryr-cnm runs as "
                         "root; fix the file's owner or mode") from None
    except IsADirectoryError:
        raise ValueError(f"{option} {path} is a directory; point {option} at the PEM file") from None


def tcp_bind_address(uri: str, *, bind_all: bool = False, verified_clients: bool = False) -> tuple[str, int]:
    """(host, port) to listen on for an http(s):// or tcp:// kuryr_uri.

    Anyone who reaches the listener drives Neutron with kuryr's credentials, so a
    missing or wildcard host means loopback unless bind_all says otherwise."""
    parts = urlsplit(uri)
    # an explicit :0 is an ephemeral port (the spec file tells Docker which); none at all is 23750
    host, port = parts.hostname or "", DEFAULT_PORT if parts.port is None else parts.port
    if host in _WILDCARDS and not bind_all:
        loopback = "::1" if host == "::" else "127.0.0.1"
        if host:
            LOG.warning("kuryr_uri %s names every interface; listening on %s only. To listen on all, "
                        "set bind_all_interfaces = True (and use TLS with client certificates)", uri, loopback)
        return loopback, port
    if host in _WILDCARDS:
        host = "::" if host == "::" else "0.0.0.0"
    if not _is_loopback(host):
        advice = ("client certificates are required" if verified_clients else
                  "anyone who reaches it can create and delete Neutron ports with kuryr's credentials; "
                  "use TLS with client certificates (enable_ssl, ssl_ca_file)")
        LOG.warning("plugin listener on %s port %d is reachable from other hosts: %s", host, port, advice)
    return host, port


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"  # another name may resolve anywhere: treated as remote


def make_server(uri: str, router: Router, *, socket_mode: int = 0o600,
                ssl_context: ssl.SSLContext | None = None,
                bind_all: bool = False) -> socketserver.BaseServer:
    """Bind the listener for kuryr_uri: unix:///path, http://host:port or https://host:port.

    A TCP listener speaks TLS when given ssl_context (an https:// uri requires one)."""
    parts = urlsplit(uri)
    server: UnixPluginServer | TCPPluginServer
    if parts.scheme == "unix":
        server = _unix_server(parts.path, socket_mode)
    elif parts.scheme in ("http", "https", "tcp"):
        if parts.scheme == "https" and ssl_context is None:
            raise ValueError("an https kuryr_uri needs ssl_cert_file and ssl_key_file")
        verified = ssl_context is not None and ssl_context.verify_mode == ssl.CERT_REQUIRED
        host, port = tcp_bind_address(uri, bind_all=bind_all, verified_clients=verified)
        server = (TCP6PluginServer if ":" in host else TCPPluginServer)((host, port), _RequestHandler)
        server.ssl_context = ssl_context
    else:
        raise ValueError(f"kuryr_uri {uri!r}: use unix:///path, http://host:port or https://host:port")
    server.router = router
    return server


def _unix_server(path: str, socket_mode: int) -> UnixPluginServer:
    _remove_stale_socket(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    # bind() creates the socket file: with this umask it never exists with group/other access,
    # not even until the chmod below. (umask is per process; nothing else creates files at startup.)
    old_umask = os.umask(0o177)
    try:
        server = UnixPluginServer(path, _RequestHandler)
    finally:
        os.umask(old_umask)
    os.chmod(path, socket_mode)
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
