"""kuryr-cnm through a real Keystone: password auth, a token scoped to project `service`, and
a token that expires mid-run renewed without a failed call. Runs under `make test-keystone`
(KURYR_TEST_CONF=kuryr-keystone.conf: Keystone on :5000, tokens for 200 s, a keystone-auth
Neutron on :9697); skipped otherwise.

A small forwarding proxy in front of Keystone sees every token the test's plugin asks for;
the `neutron` fixture (noauth, same DB) checks what the plugin made.
"""
from __future__ import annotations

import configparser
import http.client
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from tests import host
from tests.integration.conftest import DockerLike
from tests.plugin_client import PluginClient

NEUTRON_KS_ACCESS_LOG = "/opt/kuryr-cnm/log/neutron-ks-api-access.log"


def _keystone_auth_url() -> str:
    conf = configparser.ConfigParser()
    conf.read(host.KURYR_CONF)
    if conf.get("neutron", "cloud", fallback="") or conf.get("neutron", "auth_type", fallback="") != "password":
        return ""
    return conf.get("neutron", "auth_url", fallback="")


AUTH_URL = _keystone_auth_url()
pytestmark = pytest.mark.skipif(
    not AUTH_URL, reason=f"{host.KURYR_CONF} authenticates with no Keystone password; `make test-keystone` "
    "runs these with KURYR_TEST_CONF=/opt/kuryr-cnm/etc/kuryr-keystone.conf")


@dataclass(frozen=True)
class Token:
    at: float  # time.monotonic() when Keystone answered
    status: int
    project_id: str
    lifetime: float  # seconds from issue to expiry


class TokenWatch:
    """Forwards to Keystone, with Keystone's own URLs in its answers (version discovery) rewritten
    to the proxy's, so that the plugin's token requests keep coming here; notes each token."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream).netloc
        self.tokens: list[Token] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="tokenwatch", daemon=True).start()

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def note(self, method: str, path: str, status: int, body: bytes) -> None:
        if method != "POST" or not path.rstrip("/").endswith("/auth/tokens"):
            return
        token = json.loads(body).get("token", {}) if status == 201 else {}
        lifetime = (datetime.fromisoformat(token["expires_at"]) - datetime.fromisoformat(token["issued_at"])
                    ).total_seconds() if token else 0.0
        self.tokens.append(Token(time.monotonic(), status, token.get("project", {}).get("id", ""), lifetime))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(watch: TokenWatch) -> type[BaseHTTPRequestHandler]:
    class Forward(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn = http.client.HTTPConnection(watch.upstream, timeout=30)
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read().replace(watch.upstream.encode(), watch.netloc.encode())
            conn.close()
            watch.note(self.command, self.path, resp.status, data)
            self.send_response(resp.status)
            for key, value in resp.getheaders():
                if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _forward  # noqa: N815 (keystoneauth needs no other verb)

        def log_message(self, *_: object) -> None:
            pass
    return Forward


@pytest.fixture
def token_watch():
    watch = TokenWatch(AUTH_URL)
    yield watch
    watch.close()


@pytest.fixture
def watched_plugin(extra_plugin, token_watch, unique) -> Iterator[DockerLike]:
    """A kuryr-cnm from kuryr-keystone.conf whose Keystone requests go through the watch."""
    name = f"kcnmks{unique}"
    path = urlsplit(AUTH_URL).path
    extra_plugin(name, {"neutron": {"auth_url": f"http://{token_watch.netloc}{path}"}})
    client = PluginClient(f"/run/docker/plugins/{name}.sock", timeout=60)
    docker = DockerLike(client)
    yield docker
    docker.teardown()  # before extra_plugin stops the plugin: a failed test leaves nothing
    client.close()


def _by_tags(neutron, collection: str, docker_id: str) -> dict:
    tags = f"kuryr.net.uuid.lh:{docker_id[:32]},kuryr.net.uuid.uh:{docker_id[32:]}"
    found = neutron.get(f"/{collection}", params={"tags": tags}).json()[collection]
    assert len(found) == 1, found
    return found[0]


def _subnet(unique: str) -> str:
    return f"10.{196 + int(unique[0], 16) % 4}.{int(unique[1:3], 16)}.0/24"


@pytest.mark.usefixtures("no_leaks")
def test_a_docker_lifecycle_goes_through_keystone(watched_plugin, token_watch, neutron, unique, host_id):
    docker = watched_plugin
    net = docker.create_network(_subnet(unique))
    ep = docker.start(net)
    network = _by_tags(neutron, "networks", net["id"])
    port = neutron.get("/ports", params={"network_id": network["id"], "device_owner": "compute:kuryr"}
                       ).json()["ports"][0]
    docker.stop(ep)
    docker.delete_network(net)
    assert token_watch.tokens and all(t.status == 201 for t in token_watch.tokens), token_watch.tokens
    # made with a token of user kuryr in project service: only a Keystone-checked request gets that
    project = token_watch.tokens[0].project_id
    assert project and network["project_id"] == project and port["project_id"] == project
    assert port["binding:host_id"] == host_id  # binding is admin-only: the role came through too


def _kuryr_lines(offset: int) -> list[str]:
    with open(NEUTRON_KS_ACCESS_LOG, encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        return [line for line in f if '"kuryr-cnm ' in line]


@pytest.mark.timeout(600)
def test_a_token_that_expires_mid_run_is_renewed(watched_plugin, token_watch, unique):
    """Calls every 10 s until well past the first token's expiry: keystoneauth fetches a new
    token before the old one runs out (under 120 s left), and no call fails."""
    docker = watched_plugin
    log_start = os.path.getsize(NEUTRON_KS_ACCESS_LOG)
    net = docker.create_network(_subnet(unique))
    first = token_watch.tokens[0]
    assert first.status == 201 and 120 < first.lifetime <= 300, first  # the stack's 200 s tokens
    calls = 0
    while time.monotonic() < first.at + first.lifetime + 15:
        address = docker.ok("IpamDriver.RequestAddress", {"PoolID": net["pools"][0], "Address": "",
                                                          "Options": None})["Address"]
        docker.ok("IpamDriver.ReleaseAddress", {"PoolID": net["pools"][0], "Address": address.split("/")[0]})
        calls += 2
        time.sleep(10)
    docker.delete_network(net)
    renewed = [t for t in token_watch.tokens[1:] if t.status == 201]
    assert renewed and all(t.status == 201 for t in token_watch.tokens), token_watch.tokens
    assert renewed[0].at < first.at + first.lifetime  # before the first one ran out
    lines = _kuryr_lines(log_start)
    assert len(lines) >= calls, "the plugin's requests should be in the keystone-auth Neutron's access log"
    assert not [line for line in lines if re.search(r'" 401 ', line)], "Neutron refused a token of kuryr-cnm's"
