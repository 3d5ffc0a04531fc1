"""The plugin listener's security: loopback by default, TLS (and client certificates), socket mode."""
from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import socketserver
import ssl
import stat
from collections.abc import Iterator

import pytest

from kuryr_cnm import server
from tests.plugin_client import DOCKER_HEADERS, PluginClient
from tests.unit.certs import PKI, issue, make_pki


def _router() -> server.Router:
    router = server.Router()
    router.add("Plugin.Activate", lambda body: {"Implements": ["NetworkDriver", "IpamDriver"]})
    router.add("Test.Echo", lambda body: {"got": body})
    return router


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _serve(uri: str, ctx: ssl.SSLContext | None = None) -> Iterator[socketserver.BaseServer]:
    srv = server.make_server(uri, _router(), ssl_context=ctx)
    server.serve_in_thread(srv)
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def tls_server(pki: PKI) -> Iterator[socketserver.BaseServer]:
    yield from _serve("https://127.0.0.1:0", server.tls_context(pki.server.cert, pki.server.key))


@pytest.fixture
def mtls_server(pki: PKI) -> Iterator[socketserver.BaseServer]:
    yield from _serve("https://127.0.0.1:0", server.tls_context(pki.server.cert, pki.server.key, pki.ca.cert))


def _client_ctx(pki: PKI, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca.cert)  # verifies the server, hostname included
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


def _post(srv: socketserver.BaseServer, ctx: ssl.SSLContext | None, method: str,
          payload: object = None) -> tuple[int, object]:
    port = srv.server_address[1]
    conn = (http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5) if ctx
            else http.client.HTTPConnection("127.0.0.1", port, timeout=5))
    body = b"" if payload is None else json.dumps(payload).encode()
    try:
        conn.request("POST", f"/{method}", body=body, headers=dict(DOCKER_HEADERS, **{"Content-Length": str(len(body))}))
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


# --- TLS -------------------------------------------------------------------------------

def test_https_call_answers_as_over_the_unix_socket(tls_server, pki, tmp_path):
    path = str(tmp_path / "k.sock")
    for _ in _serve(f"unix://{path}"):
        client = PluginClient(path, timeout=5)
        over_unix = [client.call("Plugin.Activate"), client.call("Test.Echo", {"NetworkID": "n1"})]
        client.close()
    ctx = _client_ctx(pki)
    over_tls = [_post(tls_server, ctx, "Plugin.Activate"), _post(tls_server, ctx, "Test.Echo", {"NetworkID": "n1"})]
    assert over_tls == over_unix == [(200, {"Implements": ["NetworkDriver", "IpamDriver"]}),
                                     (200, {"got": {"NetworkID": "n1"}})]


def test_https_handshake_with_a_self_signed_certificate(tmp_path):
    pair, _, _ = issue(tmp_path, "self")
    for srv in _serve("https://127.0.0.1:0", server.tls_context(pair.cert, pair.key)):
        ctx = ssl.create_default_context(cafile=pair.cert)
        with socket.create_connection(srv.server_address, timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
                assert tls.getpeercert()["subject"] == ((("commonName", "self"),),)


def test_plain_http_client_is_refused_and_tls_still_served(tls_server, pki):
    with pytest.raises((http.client.HTTPException, OSError)):
        _post(tls_server, None, "Plugin.Activate")
    assert _post(tls_server, _client_ctx(pki), "Plugin.Activate")[0] == 200


def test_a_silent_client_does_not_block_others(tls_server, pki):
    # the handshake runs in the connection's thread, not in accept()
    with socket.create_connection(tls_server.server_address, timeout=5):
        assert _post(tls_server, _client_ctx(pki), "Plugin.Activate")[0] == 200


def test_an_oversized_body_over_tls_gets_its_refusal(tls_server, pki):
    """The refusal reaches a client still sending its body (the server drains it after the
    answer); a close with the body unread reset the connection: a broken pipe, no answer."""
    conn = http.client.HTTPSConnection("127.0.0.1", tls_server.server_address[1], context=_client_ctx(pki),
                                       timeout=10)
    body = b" " * (server.MAX_BODY + (16 << 20))
    try:
        conn.request("POST", "/Test.Echo", body=body, headers=dict(DOCKER_HEADERS, **{"Content-Length": str(len(body))}))
        resp = conn.getresponse()
        assert resp.status == 400 and "Content-Length" in json.loads(resp.read())["Err"]
    finally:
        conn.close()
    assert _post(tls_server, _client_ctx(pki), "Plugin.Activate")[0] == 200


def test_tls_below_1_2_is_not_offered(pki):
    ctx = server.tls_context(pki.server.cert, pki.server.key)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_NONE  # no ssl_ca_file: no client certificate asked for


def test_client_certificate_required_when_ca_configured(mtls_server, pki):
    client = (pki.client.cert, pki.client.key)
    assert _post(mtls_server, _client_ctx(pki, client), "Plugin.Activate")[0] == 200
    for who in (None, (pki.rogue.cert, pki.rogue.key)):  # no certificate; one the CA never signed
        with pytest.raises((ssl.SSLError, http.client.HTTPException, OSError)):
            _post(mtls_server, _client_ctx(pki, who), "Plugin.Activate")


def test_https_uri_without_tls_context_is_refused():
    with pytest.raises(ValueError, match="ssl_cert_file and ssl_key_file"):
        server.make_server("https://127.0.0.1:0", _router())


def test_missing_certificate_says_what_to_do(tmp_path, pki):
    with pytest.raises(ValueError, match=r"ssl_cert_file .*/nope.pem does not exist: create it"):
        server.tls_context(str(tmp_path / "nope.pem"), pki.server.key)
    with pytest.raises(ValueError, match=r"ssl_key_file .* is a directory"):
        server.tls_context(pki.server.cert, str(tmp_path))
    with pytest.raises(ValueError, match=r"ssl_ca_file .*/ca-nope.pem does not exist"):
        server.tls_context(pki.server.cert, pki.server.key, str(tmp_path / "ca-nope.pem"))


@pytest.mark.skipif(os.getuid() == 0, reason="root reads any file")
def test_unreadable_key_says_so(tmp_path, pki):
    key = tmp_path / "key.pem"
    key.write_bytes(open(pki.server.key, "rb").read())
    key.chmod(0)
    with pytest.raises(ValueError, match="cannot be read"):
        server.tls_context(pki.server.cert, str(key))


def test_wrong_or_encrypted_key_fails_without_prompting_or_leaking(tmp_path, pki):
    with pytest.raises(ValueError, match="not a PEM certificate and its unencrypted private key"):
        server.tls_context(pki.server.cert, pki.client.key)  # another certificate's key
    locked, _, _ = issue(tmp_path, "locked", passphrase=b"hunter2-passphrase")
    with pytest.raises(ValueError) as exc:
        server.tls_context(locked.cert, locked.key)  # would prompt on stdin without a password callback
    assert "passphrase-protected" in str(exc.value)
    assert "PRIVATE KEY" not in str(exc.value) and "hunter2" not in str(exc.value)


# --- bind address ----------------------------------------------------------------------

@pytest.mark.parametrize("uri, expected", [
    ("http://0.0.0.0:23750", ("127.0.0.1", 23750)),
    ("http://:23750", ("127.0.0.1", 23750)),
    ("tcp://[::]:5", ("::1", 5)),
    ("https://", ("127.0.0.1", 23750)),
])
def test_wildcard_or_missing_host_binds_loopback(uri, expected):
    assert server.tcp_bind_address(uri) == expected


def test_wildcard_bind_is_logged_with_how_to_listen_on_all(caplog):
    with caplog.at_level(logging.WARNING, "kuryr_cnm.server"):
        server.tcp_bind_address("http://0.0.0.0:23750")
    assert "bind_all_interfaces" in caplog.text and "127.0.0.1 only" in caplog.text


@pytest.mark.parametrize("uri, bind_all, host", [
    ("http://0.0.0.0:23750", True, "0.0.0.0"),
    ("http://:23750", True, "0.0.0.0"),
    ("http://10.1.2.3:23750", False, "10.1.2.3"),
    ("http://controller.example:23750", False, "controller.example"),
])
def test_beyond_loopback_only_when_explicit_and_warned(uri, bind_all, host, caplog):
    with caplog.at_level(logging.WARNING, "kuryr_cnm.server"):
        assert server.tcp_bind_address(uri, bind_all=bind_all)[0] == host
    assert "reachable from other hosts" in caplog.text and "use TLS with client certificates" in caplog.text


@pytest.mark.parametrize("uri", ["http://127.0.0.1:23750", "http://localhost:23750", "http://[::1]:23750",
                                 "http://127.0.0.2:23750"])
def test_loopback_bind_is_quiet(uri, caplog):
    with caplog.at_level(logging.WARNING, "kuryr_cnm.server"):
        server.tcp_bind_address(uri)
    assert caplog.text == ""


def test_server_for_a_wildcard_uri_listens_on_loopback():
    srv = server.make_server("http://0.0.0.0:0", _router())
    try:
        assert srv.server_address[0] == "127.0.0.1"
    finally:
        srv.server_close()


# --- unix socket -----------------------------------------------------------------------

def test_unix_socket_is_0600_from_the_moment_it_exists(tmp_path, monkeypatch):
    """Checked right after bind(), before make_server's chmod: no window with group/other access."""
    seen: list[int] = []
    original = socketserver.UnixStreamServer.server_bind

    def bind_and_look(self: socketserver.UnixStreamServer) -> None:
        original(self)
        seen.append(stat.S_IMODE(os.stat(self.server_address).st_mode))

    monkeypatch.setattr(socketserver.UnixStreamServer, "server_bind", bind_and_look)
    old = os.umask(0o000)  # a permissive umask inherited from whatever started the plugin
    try:
        srv = server.make_server(f"unix://{tmp_path / 'k.sock'}", _router())
        after = os.umask(0o000)
    finally:
        os.umask(old)
    srv.server_close()
    assert seen == [0o600]
    st = os.stat(tmp_path / "k.sock")
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid()
    assert after == 0o000, "make_server restores the process umask"
