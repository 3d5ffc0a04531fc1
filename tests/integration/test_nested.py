"""Nested mode's Neutron side against the stack's real Neutron (trunk subports, allowed address
pairs with If-Match), driven from many threads and two driver instances as two kuryr-cnm
processes would. The child devices are not made here (see tests/nested/prove_datapath.py
for the datapath, and the README for what this machine's kernel and ML2/OVN allow)."""
from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from kuryr_cnm import config, errors, neutron as gateway
from kuryr_cnm.nested import NestedError, VmPort
from kuryr_cnm.nested.macvlan import MacvlanDriver
from kuryr_cnm.nested.vlan import VlanDriver
from kuryr_cnm.neutron import Port
from tests import host

PARALLEL = int(__import__("os").environ.get("KCNM_PARALLEL", "10"))


@pytest.fixture
def client() -> gateway.NeutronClient:
    conf = config.load([host.KURYR_CONF])
    return gateway.NeutronClient(gateway.connect(conf))


@pytest.fixture
def vm_network(neutron, cleanup, unique) -> dict:
    net = neutron.post("/networks", json={"network": {"name": f"kcnmt-nested-{unique}"}}).json()["network"]
    cleanup(lambda: neutron.delete(f"/networks/{net['id']}"))
    cidr = f"10.232.{int(unique[:2], 16)}.0/24"
    subnet = neutron.post("/subnets", json={"subnet": {"network_id": net["id"], "cidr": cidr, "ip_version": 4,
                                                       "enable_dhcp": False}}).json()["subnet"]
    return {"id": net["id"], "subnet": subnet["id"]}


def make_port(neutron, cleanup, network: dict, name: str, **attrs) -> Port:
    body = {"port": {"network_id": network["id"], "name": name, "fixed_ips": [{"subnet_id": network["subnet"]}],
                     **attrs}}
    resp = neutron.post("/ports", json=body)
    assert resp.status_code == 201, resp.text
    raw = resp.json()["port"]
    cleanup(lambda: neutron.delete(f"/ports/{raw['id']}"))
    return Port.from_api(raw)


def parallel(action: Callable[[Port], object], ports: list[Port]) -> list[BaseException]:
    failures: list[BaseException] = []

    def run(p: Port) -> None:
        try:
            action(p)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)
    threads = [threading.Thread(target=run, args=(p,)) for p in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return failures


def test_vlan_subports_in_parallel_get_distinct_ids(neutron, client, cleanup, vm_network, host_id, unique) -> None:
    parent = make_port(neutron, cleanup, vm_network, f"kcnmt-vm-{unique}",
                       **{"binding:host_id": host_id, "device_owner": "compute:nova"})
    trunk = neutron.post("/trunks", json={"trunk": {"port_id": parent.id}}).json()["trunk"]
    cleanup(lambda: neutron.delete(f"/trunks/{trunk['id']}"))
    ports = [make_port(neutron, cleanup, vm_network, f"kcnmt-c{i}-{unique}") for i in range(PARALLEL)]
    # two drivers: two kuryr-cnm processes on the VM, with nothing in memory in common
    drivers = [VlanDriver(client, VmPort(client, "", parent.id)) for _ in range(2)]
    failures = parallel(lambda p: drivers[ports.index(p) % 2]._attach(p), ports)
    assert not failures, failures
    subs = neutron.get(f"/trunks/{trunk['id']}").json()["trunk"]["sub_ports"]
    assert sorted(s["port_id"] for s in subs) == sorted(p.id for p in ports)
    assert sorted(s["segmentation_id"] for s in subs) == list(range(1, PARALLEL + 1))
    assert {neutron.get(f"/ports/{p.id}").json()["port"]["device_owner"] for p in ports} == {"trunk:subport"}
    failures = parallel(lambda p: drivers[0]._detach(p), ports)
    assert not failures, failures
    assert neutron.get(f"/trunks/{trunk['id']}").json()["trunk"]["sub_ports"] == []


def test_vlan_needs_a_trunk(neutron, client, cleanup, vm_network, unique) -> None:
    parent = make_port(neutron, cleanup, vm_network, f"kcnmt-vm-{unique}")
    with pytest.raises(errors.Conflict, match=f"trunk create --parent-port {parent.id}"):
        VlanDriver(client, VmPort(client, "", parent.id))._attach(parent)


def test_pairs_in_parallel_are_all_kept(neutron, client, cleanup, vm_network, unique) -> None:
    # An unbound parent: ML2/OVN refuses other MACs in a *bound* port's pairs (next test), and
    # this test is about the If-Match read-modify-write under concurrency.
    parent = make_port(neutron, cleanup, vm_network, f"kcnmt-vm-{unique}")
    ports = [make_port(neutron, cleanup, vm_network, f"kcnmt-c{i}-{unique}") for i in range(PARALLEL)]
    # one driver, as one kuryr-cnm process: Neutron 29 accepted concurrent PUTs with the same
    # If-Match revision here, so two processes could still lose a pair (see nested/macvlan.py)
    driver = MacvlanDriver(client, VmPort(client, "", parent.id))
    failures = parallel(driver._attach, ports)
    assert not failures, failures
    pairs = neutron.get(f"/ports/{parent.id}").json()["port"]["allowed_address_pairs"]
    assert sorted((p["ip_address"], p["mac_address"]) for p in pairs) == sorted(
        (p.fixed_ips[0].ip_address, p.mac_address) for p in ports)
    failures = parallel(driver._detach, ports)
    assert not failures, failures
    assert neutron.get(f"/ports/{parent.id}").json()["port"]["allowed_address_pairs"] == []


def test_ml2_ovn_refuses_a_container_mac_in_a_bound_parents_pairs(neutron, client, cleanup, vm_network,
                                                                   host_id, unique) -> None:
    parent = make_port(neutron, cleanup, vm_network, f"kcnmt-vm-{unique}",
                       **{"binding:host_id": host_id, "device_owner": "compute:nova"})
    container = make_port(neutron, cleanup, vm_network, f"kcnmt-c-{unique}")
    with pytest.raises(errors.BadRequest, match="use the vlan port driver"):
        MacvlanDriver(client, VmPort(client, "", parent.id))._attach(container)
    assert neutron.get(f"/ports/{parent.id}").json()["port"]["allowed_address_pairs"] == []
    # so serve's start-up check refuses macvlan on this Neutron, naming what works
    revision = neutron.get(f"/ports/{parent.id}").json()["port"]["revision_number"]
    with pytest.raises(NestedError, match="refuses macvlan's allowed address pairs.*vlan.*ipvlan"):
        MacvlanDriver(client, VmPort(client, "", parent.id))._probe_pairs()
    shown = neutron.get(f"/ports/{parent.id}").json()["port"]
    assert shown["allowed_address_pairs"] == [] and shown["revision_number"] == revision
