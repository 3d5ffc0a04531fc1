from __future__ import annotations

import os
import socket
import stat

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
