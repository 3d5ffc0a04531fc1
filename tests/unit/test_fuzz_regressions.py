"""Defects the plugin API fuzzer (tests/fuzz) found, each pinned by a focused test."""
from __future__ import annotations

import http.client
import json
import socket
from unittest.mock import MagicMock

import pytest

from kuryr_cnm import errors, exposure, server
from kuryr_cnm.neutron import NeutronClient
from kuryr_cnm.ownership import Owner, Ownership
from kuryr_cnm.protocol import (GwAllocCheckRequest, PoolRequest, ReleaseAddressRequest,
                                RequestAddressRequest)


def _ownership(conf, client) -> Ownership:
    return Ownership(client, Owner(conf.host, conf.plugin_name), conf.subnetpool_name_prefix)


@pytest.fixture
def unix_socket(tmp_path):
    router = server.Router()
    router.add("Plugin.Activate", lambda body: {"Implements": ["NetworkDriver"]})
    path = str(tmp_path / "p.sock")
    srv = server.make_server(f"unix://{path}", router)
    server.serve_in_thread(srv)
    yield path
    srv.shutdown()
    srv.server_close()


def _exchange(sock: socket.socket, request: bytes) -> http.client.HTTPResponse:
    sock.sendall(request)
    resp = http.client.HTTPResponse(sock, method=request.split(b" ")[0].decode())
    resp.begin()
    return resp


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(path)
    return sock


@pytest.mark.parametrize("length", ["abc", "-1", str(server.MAX_BODY + 1)])
def test_refused_content_length_announces_the_close(unix_socket, length):
    """A keep-alive client (Docker's) must learn that the connection ends, or its next
    call fails on a dropped connection."""
    sock = _connect(unix_socket)
    resp = _exchange(sock, f"POST /Plugin.Activate HTTP/1.1\r\nHost: p\r\nContent-Length: {length}\r\n\r\n".encode())
    assert resp.status == 400 and "Content-Length" in json.loads(resp.read())["Err"]
    assert resp.getheader("Connection") == "close"
    sock.close()


def test_kept_alive_connection_is_not_announced_closed(unix_socket):
    sock = _connect(unix_socket)
    for _ in range(2):
        resp = _exchange(sock, b"POST /Plugin.Activate HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\n\r\n")
        assert resp.status == 200 and resp.getheader("Connection") is None
        resp.read()
    sock.close()


@pytest.mark.parametrize("request_bytes", [b"OPTIONS /Plugin.Activate HTTP/1.1\r\nHost: p\r\n\r\n",
                                           b"BREW /Plugin.Activate HTTP/1.1\r\nHost: p\r\n\r\n"])
def test_http_level_refusals_are_json_with_err(unix_socket, request_bytes):
    sock = _connect(unix_socket)
    resp = _exchange(sock, request_bytes)
    body = json.loads(resp.read())
    assert resp.status >= 400 and body["Err"], body
    assert resp.getheader("Content-Type") == server.CONTENT_TYPE
    sock.close()


@pytest.mark.parametrize("exposed", [["80/tcp"], [None], [{"Proto": "tcp", "Port": 80}], [{"Proto": 6, "Port": "80"}],
                                     [{"Proto": 6, "Port": 70000}], [{"Proto": True, "Port": 80}]])
def test_malformed_exposed_ports_are_a_bad_request(exposed):
    """They raised AttributeError/ValueError: a 500 'internal error' and a traceback in the log."""
    with pytest.raises(errors.BadRequest, match="exposed port"):
        exposure.port_ranges(exposed)


@pytest.mark.parametrize("body", [[], "x", {"Options": True}, {"Options": ["internal"]}])
def test_gw_alloc_check_with_a_malformed_body_is_a_bad_request(body):
    """`(body or {}).get("Options")` raised AttributeError: a 500 and a traceback."""
    with pytest.raises(errors.BadRequest):
        GwAllocCheckRequest.parse(body)


def test_gw_alloc_check_reads_internal():
    assert GwAllocCheckRequest.parse({"Options": {"com.docker.network.internal": True}}).internal
    assert not GwAllocCheckRequest.parse(None).internal and not GwAllocCheckRequest.parse({}).internal


@pytest.mark.parametrize("raw", [b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000])
def test_deeply_nested_body_is_a_bad_request(raw):
    """json.loads raised RecursionError, which the decoder did not catch: a 500 and a traceback."""
    router = server.Router()
    router.add("Plugin.Activate", lambda body: {})
    status, body = router.dispatch("Plugin.Activate", raw)
    assert status == 400 and "too deeply" in body["Err"]


@pytest.mark.parametrize("pool_id", ["..", "../ports", "../../v2.0/ports", "a" * 9000, "%2e%2e"])
def test_an_id_that_is_not_a_uuid_never_reaches_neutron(pool_id):
    """A PoolID (from Docker) or neutron.*.uuid option (from a user) of '../ports' made GET
    /subnetpools/../ports, i.e. GET /ports: KeyError 'subnetpool', a 500 and a traceback."""
    conn = MagicMock()
    client = NeutronClient(conn)
    assert client.get_subnetpool(pool_id) is None and client.get_subnet(pool_id) is None
    with pytest.raises(errors.NeutronNotFound, match="not a Neutron id"):
        client.get_network(pool_id)
    client.delete_subnetpool(pool_id)  # nothing to delete
    conn.network.request.assert_not_called()


@pytest.mark.parametrize("pool_id", ["a" * 9000, "..", "x,y", "a/b", "10.0.0.0/24"])
def test_a_pool_id_that_no_neutron_id_looks_like_is_a_bad_request(pool_id):
    """A 9000-character PoolID went into a Neutron query, which answered with an HTML 414: a 500."""
    for parse, body in ((PoolRequest.parse, {}), (RequestAddressRequest.parse, {"Address": ""}),
                        (ReleaseAddressRequest.parse, {"Address": "10.0.0.1"})):
        with pytest.raises(errors.BadRequest, match="not a kuryr pool id") as exc:
            parse(dict(body, PoolID=pool_id))
        assert len(exc.value.message) < 300  # a huge value is not echoed whole into Err and the log


def test_an_unknown_method_is_not_echoed_whole():
    """A 4000-character path came back whole in the 404's Err (and the log)."""
    router = server.Router()
    status, body = router.dispatch("A" * 4000, b"")
    assert status == 404 and len(body["Err"]) < 300


