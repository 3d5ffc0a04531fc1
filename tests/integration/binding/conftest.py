"""Fixtures for the binding tests: a Plugger on the real OVSDB, and the ports to plug.

Every port a test plugs is a real Neutron port bound to this host (on a network of the
module's, with no subnet): the stack's own kuryr-cnm runs its reconciler every few
seconds, and would rightly unplug an OVS port or veth of kuryr's whose Neutron port does
not exist. The rest of a VifPort (network id, project, endpoint, MAC, vif_type, details)
is the test's to choose. Whatever a test leaves behind (veths, bridges, OVS ports named
after its ports) is removed by plain `ip` / `ovs-vsctl` commands after the test, pass or
fail, before its Neutron ports are deleted.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kuryr_cnm.binding import Plugger, VifPort, interface_names
from tests import host

# what Neutron 29 with ML2/OVN answers here for binding:vif_details
OVN_DETAILS: dict[str, Any] = {"port_filter": True, "connectivity": "l2", "ovs_create_tap": True,
                               "bridge_name": "br-int", "datapath_type": "netdev",
                               "bound_drivers": {"0": "ovn"}}


def link(name: str) -> dict[str, Any] | None:
    """`ip -d link show dev <name>` as a dict, or None if there is no such device."""
    proc = host.run(["ip", "-j", "-d", "link", "show", "dev", name], check=False)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


def kind(name: str) -> str | None:
    info = link(name)
    return info.get("linkinfo", {}).get("info_kind") if info else None


def tx_checksumming(name: str) -> str:
    """'on' or 'off', as `ethtool -k` shows it."""
    for line in host.run(["ethtool", "-k", name]).stdout.splitlines():
        if line.startswith("tx-checksumming:"):
            return line.split(":", 1)[1].split()[0]
    raise AssertionError(f"ethtool -k {name} shows no tx-checksumming")


def port_names(port: VifPort) -> list[str]:
    """Every device name plugging `port` may make."""
    short = port.port_id[:11]
    iface = interface_names(port.port_id)
    return [iface.host_name, iface.container_name] + [p + short for p in ("qvo", "qvb", "qbr")]


def assert_nothing_left(port: VifPort, bridge: str = "br-int") -> None:
    names = port_names(port)
    assert [n for n in names if host.link_exists(n)] == []
    assert host.ovs_ports(bridge) & set(names) == set()


def _scrub(port: VifPort) -> None:
    for name in port_names(port):
        host.run(["ovs-vsctl", "--if-exists", "del-port", name], check=False)
        host.run(["ip", "link", "del", name], check=False)
    host.run(["ip", "link", "del", "brq" + port.network_id[:11]], check=False)


@pytest.fixture(scope="module")
def plugger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plugger]:
    """One Plugger for the module, as the plugin has one per process."""
    p = Plugger(bindir=str(tmp_path_factory.mktemp("bindir")))
    yield p
    p.close()


@pytest.fixture(scope="module")
def binding_network(neutron: Any) -> Iterator[str]:
    """A Neutron network (no subnet) for the module's ports."""
    network = neutron.post("/networks", json={"network": {"name": f"kcnmt-binding-{uuid.uuid4().hex[:8]}"}})
    assert network.status_code == 201, network.text
    network_id = network.json()["network"]["id"]
    yield network_id
    neutron.delete(f"/networks/{network_id}")


@pytest.fixture
def make_port(neutron: Any, binding_network: str, host_id: str) -> Iterator[Callable[..., VifPort]]:
    """Factory: make_port(vif_type="ovs", **fields) -> VifPort of a fresh Neutron port bound
    here, with random ids for the rest."""
    made: list[VifPort] = []
    neutron_ports: list[str] = []

    def make(vif_type: str = "ovs", **fields: Any) -> VifPort:
        answer = neutron.post("/ports", json={"port": {
            "network_id": binding_network, "binding:host_id": host_id, "name": "kcnmt-binding"}})
        assert answer.status_code == 201, answer.text
        port_id = answer.json()["port"]["id"]
        neutron_ports.append(port_id)  # deleted even if the VifPort below cannot be made
        values: dict[str, Any] = dict(
            port_id=port_id, mac="fa:16:3e:" + ":".join(f"{b:02x}" for b in uuid.uuid4().bytes[:3]),
            network_id=str(uuid.uuid4()), project_id=uuid.uuid4().hex, endpoint_id=uuid.uuid4().hex * 2,
            vif_type=vif_type, vif_details=dict(OVN_DETAILS) if vif_type == "ovs" else {}, mtu=1442)
        values.update(fields)
        port = VifPort(**values)
        made.append(port)
        return port

    yield make
    for port in made:
        _scrub(port)
    for port_id in neutron_ports:
        neutron.delete(f"/ports/{port_id}")
