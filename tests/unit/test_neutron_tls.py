"""TLS to Neutron is verified by default, [neutron] cafile is honoured, and credentials stay out
of errors and logs. Against a local fake Neutron/Keystone over HTTPS on 127.0.0.1."""
from __future__ import annotations

import json
import logging
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kuryr_cnm import config, errors, neutron
from tests.unit.certs import PKI, make_pki

PASSWORD = "pw-Kx9-never-logged"


class _FakeOpenStack(BaseHTTPRequestHandler):
    """Neutron answers an empty network list; Keystone refuses every password."""

    def do_GET(self) -> None:  # noqa: N802
        port = self.server.server_address[1]
        if "networks" in self.path:
            self._send(200, {"networks": []})
        elif self.path.startswith("/v3"):  # Keystone's version document
            self._send(200, {"version": {"id": "v3.14", "status": "stable", "links": [
                {"rel": "self", "href": f"https://127.0.0.1:{port}/v3/"}]}})
        else:  # Neutron's version discovery
            self._send(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
                {"rel": "self", "href": f"https://127.0.0.1:{port}/v2.0/"}]}]})

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(401, {"error": {"code": 401, "title": "Unauthorized",
                                   "message": "The request you have made requires authentication."}})

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def fake_url(pki: PKI) -> Iterator[str]:
    import ssl
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenStack)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server.cert, pki.server.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _client(tmp_path: Path, neutron_section: str) -> neutron.NeutronClient:
    path = tmp_path / "kuryr.conf"
    path.write_text("[neutron]\n" + neutron_section)
    return neutron.NeutronClient(neutron.connect(config.load([str(path)])), timeout=5)


def test_verification_is_on_by_default(tmp_path):
    conf = config.load()
    assert conf.neutron.insecure is False and conf.neutron.cafile is None
    path = tmp_path / "kuryr.conf"
    path.write_text("[neutron]\nauth_type = none\nendpoint = https://127.0.0.1:9\n")
    assert neutron.connect(config.load([str(path)])).session.verify is True


def test_unverifiable_certificate_is_refused(tmp_path, fake_url):
    client = _client(tmp_path, f"auth_type = none\nendpoint = {fake_url}\n")
    with pytest.raises(errors.NeutronUnavailable, match=r"set \[neutron\] cafile"):
        client.list_networks()


def test_cafile_is_honoured(tmp_path, fake_url, pki):
    client = _client(tmp_path, f"auth_type = none\nendpoint = {fake_url}\ncafile = {pki.ca.cert}\n")
    assert client.list_networks() == []


def test_refused_password_appears_in_no_error_or_log(tmp_path, fake_url, pki, caplog):
    # openstacksdk authenticates as soon as the client reads the catalog, so the refusal may come
    # from construction or from the call: either way, neither it nor any log line holds the password
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(Exception) as exc:
            _client(tmp_path, f"auth_type = password\nauth_url = {fake_url}/v3\nusername = kuryr\n"
                    f"password = {PASSWORD}\nproject_name = service\nuser_domain_name = Default\n"
                    f"project_domain_name = Default\ncafile = {pki.ca.cert}\n").list_networks()
    reported = "".join(traceback.format_exception(exc.value))
    assert "401" in reported  # Keystone's refusal, not a TLS failure
    assert PASSWORD not in reported and PASSWORD not in caplog.text
