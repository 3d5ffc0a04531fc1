"""`kuryr-cnm serve` on TCP: spec files Docker finds the listener by, TLS options, startup errors."""
from __future__ import annotations

import http.client
import json
import logging
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from kuryr_cnm import cli, config, server
from tests.unit.certs import PKI, make_pki

# Neutron is not contacted by these tests: a dead endpoint is fine
NEUTRON = "[neutron]\nauth_type = none\nendpoint = http://127.0.0.1:9\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _conf(tmp_path: Path, default: str) -> Path:
    path = tmp_path / "kuryr.conf"
    path.write_text(f"[DEFAULT]\nspec_dir = {tmp_path / 'spec'}\nplugin_name = kt\n{default}\n{NEUTRON}")
    return path


def _spec(tmp_path: Path, default: str) -> tuple[str, str]:
    """Bind as serve does, write the spec, return (file name, content)."""
    conf = config.load([str(_conf(tmp_path, default))])
    srv = server.make_server(conf.kuryr_uri, server.Router(), ssl_context=cli._tls_context(conf))
    try:
        path = cli._write_spec_file(conf, srv)
        return Path(path).name, Path(path).read_text()
    finally:
        srv.server_close()


def test_plain_tcp_gets_a_spec_with_the_bound_loopback_address(tmp_path):
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "kt.json").write_text("{}")  # left by an earlier TLS setting
    name, content = _spec(tmp_path, "kuryr_uri = http://0.0.0.0:0")
    assert name == "kt.spec"
    assert content.startswith("tcp://127.0.0.1:") and not content.startswith("tcp://127.0.0.1:0\n")
    assert not (tmp_path / "spec" / "kt.json").exists()


def test_tls_gets_a_json_spec_with_https_and_tlsconfig(tmp_path, pki):
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "kt.spec").write_text("tcp://127.0.0.1:1\n")  # would win over the .json
    name, content = _spec(tmp_path, f"kuryr_uri = http://127.0.0.1:0\nenable_ssl = true\n"
                          f"ssl_cert_file = {pki.server.cert}\nssl_key_file = {pki.server.key}\n"
                          f"ssl_ca_file = {pki.ca.cert}\ndocker_tls_cert_file = {pki.client.cert}\n"
                          f"docker_tls_key_file = {pki.client.key}\n")
    spec = json.loads(content)
    assert name == "kt.json" and spec["Name"] == "kt" and spec["Addr"].startswith("https://127.0.0.1:")
    assert spec["TLSConfig"] == {"InsecureSkipVerify": False, "CAFile": pki.ca.cert,
                                 "CertFile": pki.client.cert, "KeyFile": pki.client.key}
    assert not (tmp_path / "spec" / "kt.spec").exists()


def test_tls_without_a_ca_for_docker_is_unverified_and_says_so(tmp_path, pki, caplog):
    with caplog.at_level(logging.WARNING):
        _, content = _spec(tmp_path, f"kuryr_uri = https://127.0.0.1:0\nssl_cert_file = {pki.server.cert}\n"
                           f"ssl_key_file = {pki.server.key}\n")
    assert json.loads(content)["TLSConfig"]["InsecureSkipVerify"] is True
    assert "Docker will not verify" in caplog.text


@pytest.mark.parametrize("default, message", [
    ("kuryr_uri = https://127.0.0.1:0\nssl_cert_file = /nonexistent/cert.pem",
     "ssl_cert_file /nonexistent/cert.pem does not exist: create it"),
    ("kuryr_uri = https://127.0.0.1:0\nssl_ca_file = {ca}\nssl_cert_file = {cert}\nssl_key_file = {key}",
     "set docker_tls_cert_file and docker_tls_key_file"),
])
def test_serve_refuses_to_start_with_a_clear_error(tmp_path, pki, caplog, default, message):
    default = default.format(ca=pki.ca.cert, cert=pki.server.cert, key=pki.server.key)
    conf = config.load([str(_conf(tmp_path, default))])
    with caplog.at_level(logging.ERROR):
        assert cli.serve(conf) == 1
    assert message in caplog.text
    assert not (tmp_path / "spec").exists() or not list((tmp_path / "spec").iterdir())


def test_serve_over_mutual_tls_answers_docker_with_the_spec_it_wrote(tmp_path, pki):
    """What Docker does: read <name>.json, dial Addr with its TLSConfig, Plugin.Activate."""
    conf = _conf(tmp_path, f"kuryr_uri = https://127.0.0.1:0\nssl_cert_file = {pki.server.cert}\n"
                 f"ssl_key_file = {pki.server.key}\nssl_ca_file = {pki.ca.cert}\n"
                 f"docker_tls_cert_file = {pki.client.cert}\ndocker_tls_key_file = {pki.client.key}\n")
    spec_path = tmp_path / "spec" / "kt.json"
    proc = subprocess.Popen([sys.executable, "-m", "kuryr_cnm.cli", "serve", "--config-file", str(conf)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        from tests.host import wait_for
        wait_for(lambda: spec_path.exists() and spec_path.read_text().endswith("\n"), timeout=30, what="spec")
        spec = json.loads(spec_path.read_text())
        tls = spec["TLSConfig"]
        ctx = ssl.create_default_context(cafile=tls["CAFile"])
        ctx.load_cert_chain(tls["CertFile"], tls["KeyFile"])
        host_port = spec["Addr"].removeprefix("https://")
        conn = http.client.HTTPSConnection(host_port, context=ctx, timeout=10)
        conn.request("POST", "/Plugin.Activate", body=b"", headers={"Content-Length": "0"})
        resp = conn.getresponse()
        assert (resp.status, json.loads(resp.read())) == (200, {"Implements": ["NetworkDriver", "IpamDriver"]})
        conn.close()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert not spec_path.exists(), "the spec is removed on shutdown"
