"""The running plugin (started by `make up`) answers Docker's handshake on its socket."""
from __future__ import annotations

import os
import stat

import pytest

from tests import host
from tests.plugin_client import PluginClient


@pytest.fixture
def client():
    c = PluginClient(host.PLUGIN_SOCKET, timeout=10)
    yield c
    c.close()


def test_handshake_as_docker_sends_it(client):
    # the four calls Docker makes, in its order, on one keep-alive connection
    status, headers, body = client.raw("Plugin.Activate")
    assert status == 200
    assert headers["Content-Type"] == "application/vnd.docker.plugins.v1+json"
    assert body == b'{"Implements": ["NetworkDriver", "IpamDriver"]}'
    status, caps = client.call("NetworkDriver.GetCapabilities")
    assert status == 200 and caps["Scope"] == "local" and caps["ConnectivityScope"] == "local"
    status, caps = client.call("IpamDriver.GetCapabilities")
    assert status == 200 and caps["RequiresMACAddress"] in (True, False)
    assert client.call("IpamDriver.GetDefaultAddressSpaces") == (
        200, {"LocalDefaultAddressSpace": "no_address_space", "GlobalDefaultAddressSpace": "no_address_space"})


def test_unknown_method_is_404_and_server_keeps_serving(client):
    status, body = client.call("NetworkDriver.NoSuchMethod", {"x": 1})
    assert status == 404 and "does not implement NetworkDriver.NoSuchMethod" in body["Err"]
    status, _, raw = client.raw("NetworkDriver.GetCapabilities", b"{not json")
    assert status == 400 and b"not valid JSON" in raw
    assert client.call("Plugin.Activate")[0] == 200


def test_socket_is_root_only():
    st = os.stat(host.PLUGIN_SOCKET)
    mode = stat.S_IMODE(st.st_mode)
    assert mode == 0o600, f"plugin socket mode {oct(mode)}: expected 0600"
    assert st.st_uid == 0, f"plugin socket owned by uid {st.st_uid}, not root"
