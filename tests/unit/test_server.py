from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import threading
import time

import pytest

from kuryr_cnm import errors, server
from tests.plugin_client import PluginClient


def _router() -> server.Router:
    router = server.Router()
    router.add("Plugin.Activate", lambda body: {"Implements": ["NetworkDriver"], "body": body})
    router.add("Test.Echo", lambda body: {"got": body})

    def fail(body):
        raise errors.Conflict("address 10.0.0.5 is in use; pick another --ip")
    router.add("Test.Fail", fail)

    def crash(body):
        raise KeyError("secret-internal-detail")
    router.add("Test.Crash", crash)
    return router


def test_empty_body_reaches_handler_as_none():
    assert _router().dispatch("Test.Echo", b"") == (200, {"got": None})
    assert _router().dispatch("Test.Echo", b"  \n") == (200, {"got": None})


def test_json_body_is_decoded():
    assert _router().dispatch("Test.Echo", b'{"A": 1}') == (200, {"got": {"A": 1}})


def test_unknown_method_is_404_with_known_methods_listed():
    status, body = _router().dispatch("NetworkDriver.Bogus", b"")
    assert status == 404
    assert "NetworkDriver.Bogus" in body["Err"] and "Test.Echo" in body["Err"]


def test_malformed_json_is_400():
    status, body = _router().dispatch("Test.Echo", b"{nope")
    assert status == 400 and "not valid JSON" in body["Err"]
    status, body = _router().dispatch("Test.Echo", b"\xff\xfe")
    assert status == 400


def test_plugin_error_keeps_status_and_message():
    assert _router().dispatch("Test.Fail", b"{}") == (409, {"Err": "address 10.0.0.5 is in use; pick another --ip"})


def test_unexpected_exception_is_500_without_traceback():
    status, body = _router().dispatch("Test.Crash", b"{}")
    assert status == 500
    assert "secret-internal-detail" not in body["Err"] and "Traceback" not in body["Err"]
    assert "Test.Crash" in body["Err"]


@pytest.fixture
def unix_server(tmp_path):
    path = str(tmp_path / "plugins" / "kuryr.sock")
    srv = server.make_server(f"unix://{path}", _router())
    server.serve_in_thread(srv)
    yield path
    srv.shutdown()
    srv.server_close()


def test_serves_docker_style_requests_over_unix_socket(unix_server):
    client = PluginClient(unix_server, timeout=5)
    status, headers, body = client.raw("Plugin.Activate")
    assert status == 200 and headers["Content-Type"] == "application/vnd.docker.plugins.v1+json"
    # keep-alive: the same connection serves the next call
    assert client.call("Test.Echo", {"NetworkID": "n1"}) == (200, {"got": {"NetworkID": "n1"}})
    assert client.call("Test.Fail", {})[0] == 409
    assert client.call("Test.Echo")[0] == 200
    client.close()


def test_socket_is_created_root_only(unix_server):
    assert stat.S_IMODE(os.stat(unix_server).st_mode) == 0o600


def test_stale_socket_is_replaced(tmp_path):
    path = str(tmp_path / "stale.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()  # the file stays, nobody listens: what a killed plugin leaves
    srv = server.make_server(f"unix://{path}", _router())
    srv.server_close()


def test_refuses_a_socket_someone_serves(unix_server):
    with pytest.raises(ValueError, match="already serves"):
        server.make_server(f"unix://{unix_server}", _router())


def test_refuses_a_path_that_is_not_a_socket(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ValueError, match="not a socket"):
        server.make_server(f"unix://{path}", _router())


def test_tcp_listener(tmp_path):
    srv = server.make_server("http://127.0.0.1:0", _router())
    server.serve_in_thread(srv)
    try:
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=5)
        conn.request("POST", "/Plugin.Activate", body=b"", headers={"Content-Length": "0"})
        assert conn.getresponse().status == 200
    finally:
        srv.shutdown()
        srv.server_close()


def test_bad_uri_scheme():
    with pytest.raises(ValueError, match="kuryr_uri"):
        server.make_server("ftp://x", _router())


# --- refusals reach the client ---------------------------------------------------------
# A refused request's body is still arriving when the answer goes out. Closing with that
# input unread made the kernel reset the connection: the client still writing its body got
# BrokenPipeError/ConnectionResetError, and over TCP the reset could also take the answer.

BIG = server.MAX_BODY + (16 << 20)  # well past the socket buffers, so the server must read it


def _chunked(size: int) -> bytes:
    piece = b"x" * 65536
    return (f"{len(piece):x}\r\n".encode() + piece + b"\r\n") * (size // len(piece)) + b"0\r\n\r\n"


def _plain(size: int) -> bytes:
    return b"x" * size


# (request head, body maker, expected status): every way of refusing a request with input unread
REFUSALS = {
    "oversized": (f"POST /Test.Echo HTTP/1.1\r\nHost: p\r\nContent-Length: {BIG}\r\n\r\n".encode(),
                  _plain, 400),
    "bad-length": (b"POST /Test.Echo HTTP/1.1\r\nHost: p\r\nContent-Length: abc\r\n\r\n", _plain, 400),
    "negative-length": (b"POST /Test.Echo HTTP/1.1\r\nHost: p\r\nContent-Length: -1\r\n\r\n", _plain, 400),
    "chunked": (b"POST /Test.Echo HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n", _chunked, 411),
    "get-with-body": (f"GET /Test.Echo HTTP/1.1\r\nHost: p\r\nContent-Length: {BIG}\r\n\r\n".encode(),
                      _plain, 405),
    "unknown-verb": (f"BREW /Test.Echo HTTP/1.1\r\nHost: p\r\nContent-Length: {BIG}\r\n\r\n".encode(),
                     _plain, 501),
}


@pytest.fixture(params=["unix", "tcp"])
def any_server(request, tmp_path):
    """(connect, server) for a listener of either kind."""
    if request.param == "unix":
        path = str(tmp_path / "k.sock")
        srv = server.make_server(f"unix://{path}", _router())

        def connect() -> socket.socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            sock.connect(path)
            return sock
    else:
        # an ephemeral port: make_server reads port 0 as kuryr's default 23750, which a parallel run may hold
        srv = server.TCPPluginServer(("127.0.0.1", 0), server._RequestHandler)
        srv.router = _router()

        def connect() -> socket.socket:
            return socket.create_connection(srv.server_address, timeout=10)
    server.serve_in_thread(srv)
    yield connect, srv
    srv.shutdown()
    srv.server_close()


def _send_and_read(sock: socket.socket, head: bytes, body: bytes) -> tuple[http.client.HTTPResponse, bytes, list]:
    """Send head + body from a thread (as Go's client does) while reading the answer here."""
    send_errors: list[BaseException] = []

    def send() -> None:
        try:
            sock.sendall(head + body)
        except OSError as exc:
            send_errors.append(exc)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        resp = http.client.HTTPResponse(sock, method=head.split(b" ", 1)[0].decode())
        resp.begin()
        data = resp.read()
    finally:
        sender.join(20)
    assert not sender.is_alive(), "the client could not finish sending its body"
    return resp, data, send_errors


@pytest.mark.parametrize("kind", list(REFUSALS))
def test_a_refusal_reaches_a_client_that_sends_its_whole_body(any_server, kind):
    connect, _ = any_server
    head, make_body, status = REFUSALS[kind]
    sock = connect()
    try:
        resp, data, send_errors = _send_and_read(sock, head, make_body(BIG))
    finally:
        sock.close()
    assert send_errors == [], f"the client's body was cut off: {send_errors!r}"
    assert resp.status == status and json.loads(data)["Err"]
    assert resp.getheader("Content-Type") == server.CONTENT_TYPE
    assert resp.getheader("Connection") == "close"
    # and the server goes on serving
    sock = connect()
    try:
        resp, data, _ = _send_and_read(sock, b"POST /Test.Echo HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\n\r\n", b"{}")
    finally:
        sock.close()
    assert resp.status == 200 and json.loads(data) == {"got": {}}


def test_a_refusal_reaches_http_client_posting_an_oversized_body(unix_server):
    client = PluginClient(unix_server, timeout=10)
    try:
        status, _, data = client.raw("Test.Echo", b" " * BIG)
    finally:
        client.close()
    assert status == 400 and "Content-Length" in json.loads(data)["Err"]
    assert PluginClient(unix_server, timeout=5).call("Plugin.Activate")[0] == 200


def test_draining_a_refused_body_stops_at_its_byte_bound(any_server, monkeypatch):
    """A client that never stops sending holds its connection's thread only so long."""
    monkeypatch.setattr(server, "DRAIN_MAX_BYTES", 1 << 20)
    monkeypatch.setattr(server, "DRAIN_SECONDS", 60.0)  # the byte bound, not the time bound, ends it
    connect, _ = any_server
    sock = connect()
    head = b"POST /Test.Echo HTTP/1.1\r\nHost: p\r\nContent-Length: 999999999999\r\n\r\n"
    resp = http.client.HTTPResponse(sock, method="POST")
    stopped = threading.Event()

    def endless() -> None:
        try:
            sock.sendall(head)
            while not stopped.is_set():
                sock.sendall(b"x" * 65536)
        except OSError:
            stopped.set()  # the server gave up draining and closed

    sender = threading.Thread(target=endless, daemon=True)
    sender.start()
    try:
        resp.begin()
        assert resp.status == 400 and json.loads(resp.read())["Err"]
        assert stopped.wait(10), "the server drained an endless body without bound"
    finally:
        stopped.set()
        sender.join(10)
        sock.close()


def test_draining_a_refused_body_stops_at_its_time_bound(any_server, monkeypatch):
    """A client that announces a large body and then dawdles is cut off after the drain's time."""
    monkeypatch.setattr(server, "DRAIN_SECONDS", 0.5)
    connect, _ = any_server
    sock = connect()
    try:
        started = time.monotonic()
        sock.sendall(f"POST /Test.Echo HTTP/1.1\r\nHost: p\r\nContent-Length: {BIG}\r\n\r\n".encode() + b"x" * 1000)
        resp = http.client.HTTPResponse(sock, method="POST")
        resp.begin()
        assert resp.status == 400 and json.loads(resp.read())["Err"]
        assert sock.recv(1) == b""  # half-closed after the answer
        with pytest.raises((BrokenPipeError, ConnectionResetError)):  # and closed once the time is up
            while time.monotonic() - started < 5:
                sock.sendall(b"x")
                time.sleep(0.05)
        assert time.monotonic() - started < 3
    finally:
        sock.close()
