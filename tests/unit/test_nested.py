"""Nested mode's logic with a fake Neutron: VLAN id allocation, Conflict and 412 retries, driver choice."""
from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from kuryr_cnm import config, errors, nested
from kuryr_cnm.nested import macvlan, vlan
from kuryr_cnm.neutron import FixedIP, Port

PARENT = "parent-port"


def port(port_id: str, ip: str = "10.0.0.5", mac: str = "fa:16:3e:00:00:05", **raw: Any) -> Port:
    return Port(id=port_id, name="", network_id="net", mac_address=mac, fixed_ips=(FixedIP("sub", ip),), tags=(),
                device_owner="", device_id="", host_id="", vif_type="unbound", vif_details={}, status="DOWN",
                project_id="p", raw=raw)


class FakeNeutron:
    """A trunk and a parent port's pairs with Neutron's rules: a VLAN id once per trunk (409),
    a PUT with a stale If-Match is a 412."""

    def __init__(self, trunk: bool = True) -> None:
        self.lock = threading.Lock()
        self.subports: dict[str, int] | None = {} if trunk else None
        self.pairs: list[dict[str, str]] = []
        self.revision = 1
        self.conflicts = 0
        self.stale = 0

    def get_port(self, port_id: str) -> Port:
        with self.lock:
            details = None if self.subports is None else {
                "trunk_id": "trunk", "sub_ports": [{"port_id": p, "segmentation_id": v}
                                                   for p, v in self.subports.items()]}
            return port(PARENT, mac="fa:16:3e:aa:aa:aa", trunk_details=details,
                        allowed_address_pairs=list(self.pairs), revision_number=self.revision)

    def add_subport(self, trunk_id: str, port_id: str, segmentation_id: int) -> None:
        with self.lock:
            assert self.subports is not None
            if segmentation_id in self.subports.values() or port_id in self.subports:
                self.conflicts += 1
                raise errors.NeutronConflict("PUT /trunks/trunk/add_subports", "segmentation id in use")
            self.subports[port_id] = segmentation_id

    def remove_subport(self, trunk_id: str, port_id: str) -> None:
        with self.lock:
            assert self.subports is not None
            if self.subports.pop(port_id, None) is None:
                raise errors.NeutronNotFound("PUT /trunks/trunk/remove_subports", "no such subport")

    def update_port_if_revision(self, port_id: str, revision: int, **attrs: Any) -> Port:
        with self.lock:
            if revision != self.revision:
                self.stale += 1
                raise errors.NeutronPreconditionFailed("PUT /ports/parent-port", "revision mismatch")
            self.pairs = attrs["allowed_address_pairs"]
            self.revision += 1
        return self.get_port(port_id)


class VmPort:
    def port_id(self) -> str:
        return PARENT

    def __init__(self, client: FakeNeutron) -> None:
        self.client = client

    def port(self) -> Port:
        return self.client.get_port(PARENT)


def driver(cls, client: FakeNeutron):  # type: ignore[no-untyped-def]
    return cls(client, VmPort(client))


def test_lowest_free_vlan_skips_used_and_in_flight() -> None:
    assert vlan.lowest_free(set()) == 1
    assert vlan.lowest_free({1, 2, 4}) == 3
    assert vlan.lowest_free({1, 2, 4}, {3}) == 5
    with pytest.raises(errors.Conflict, match="VLAN ids"):
        vlan.lowest_free(set(range(1, 4095)))


def test_vlan_id_comes_from_the_trunk_and_is_freed() -> None:
    client = FakeNeutron()
    client.subports = {"someone-else": 1}  # another process's subport: Neutron is the allocator
    d = driver(vlan.VlanDriver, client)
    assert d._attach(port("a")) == 2
    assert d._attach(port("a")) == 2  # Docker retried: the same subport, no second add
    d._detach(port("a"))
    assert client.subports == {"someone-else": 1}
    d._detach(port("a"))  # again: nothing to do


def test_vlan_teardown_is_one_request_and_a_remade_trunk_is_read_again() -> None:
    client = FakeNeutron()
    d = driver(vlan.VlanDriver, client)
    d._attach(port("a"))
    d._attach(port("b"))
    reads = []
    real_get = client.get_port
    client.get_port = lambda port_id: (reads.append(port_id), real_get(port_id))[1]  # type: ignore[method-assign]
    d._detach(port("a"))
    assert reads == [] and client.subports == {"b": 2}  # no read of the VM's port on Docker's teardown path
    d._detach(port("a"))  # again: NotFound, so the parent is read to be sure
    assert reads == [PARENT] and client.subports == {"b": 2}


def test_vlan_conflict_is_retried_with_another_id() -> None:
    client = FakeNeutron()
    d = driver(vlan.VlanDriver, client)
    real_get = client.get_port
    raced = []

    def racing_get(port_id: str) -> Port:  # another process takes VLAN 1 right after our read
        seen = real_get(port_id)
        if not raced:
            raced.append(1)
            client.subports["other"] = 1  # type: ignore[index]
        return seen
    client.get_port = racing_get  # type: ignore[method-assign]
    assert d._attach(port("a")) == 2
    assert client.conflicts == 1


def test_parallel_vlan_attaches_get_distinct_ids() -> None:
    client = FakeNeutron()
    drivers = [driver(vlan.VlanDriver, client) for _ in range(2)]  # two processes
    threads = [threading.Thread(target=drivers[i % 2]._attach, args=(port(f"p{i}"),)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(client.subports.values()) == list(range(1, 21))  # type: ignore[union-attr]


def test_vlan_without_trunk_says_how_to_make_one() -> None:
    d = driver(vlan.VlanDriver, FakeNeutron(trunk=False))
    with pytest.raises(errors.Conflict, match="trunk create --parent-port parent-port"):
        d._attach(port("a"))


def test_parallel_pair_updates_keep_every_pair() -> None:
    client = FakeNeutron()
    drivers = [driver(macvlan.MacvlanDriver, client)] * 2  # one process: its threads
    ports = [port(f"p{i}", ip=f"10.0.0.{i + 10}", mac=f"fa:16:3e:00:00:{i + 10:02x}") for i in range(10)]
    threads = [threading.Thread(target=drivers[i % 2]._attach, args=(p,)) for i, p in enumerate(ports)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p["ip_address"] for p in client.pairs) == sorted(f"10.0.0.{i + 10}" for i in range(10))
    threads = [threading.Thread(target=drivers[i % 2]._detach, args=(p,)) for i, p in enumerate(ports)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.pairs == []


def test_pairs_are_idempotent_and_keep_others() -> None:
    client = FakeNeutron()
    client.pairs = [{"ip_address": "10.0.0.99", "mac_address": "fa:16:3e:aa:aa:aa"}]
    d = driver(macvlan.MacvlanDriver, client)
    p = port("a")
    d._attach(p)
    revision = client.revision
    d._attach(p)  # Docker retried: no write
    assert client.revision == revision
    d._detach(p)
    assert client.pairs == [{"ip_address": "10.0.0.99", "mac_address": "fa:16:3e:aa:aa:aa"}]


def test_stale_revision_is_retried() -> None:
    client = FakeNeutron()
    d = driver(macvlan.MacvlanDriver, client)
    real_update = client.update_port_if_revision

    def bumped_once(port_id: str, revision: int, **attrs: Any) -> Port:
        if not client.stale:
            client.revision += 1  # someone else wrote between our read and our write
        return real_update(port_id, revision, **attrs)
    client.update_port_if_revision = bumped_once  # type: ignore[method-assign]
    d._attach(port("a"))
    assert client.stale == 1 and [p["ip_address"] for p in client.pairs] == ["10.0.0.5"]


def conf_with(**binding: str) -> Any:
    conf = config.load()
    for key, value in binding.items():
        group, _, name = key.rpartition("__")
        conf.set_override(name, value, group=group or None)
    return conf


@pytest.mark.parametrize("value, name", [("kuryr_libnetwork.port_driver.drivers.veth", "veth"), ("vlan", "vlan"),
                                         ("kuryr_libnetwork.port_driver.drivers.nested", "macvlan"),
                                         ("macvlan", "macvlan")])
def test_driver_name_from_configuration(value: str, name: str) -> None:
    assert nested.driver_name(conf_with(default_port_driver=value)) == name


def test_veth_is_no_nested_driver_and_unknown_is_refused() -> None:
    assert nested.build(conf_with(), None) is None  # type: ignore[arg-type]
    with pytest.raises(nested.NestedError, match="unknown port driver"):
        nested.build(conf_with(default_port_driver="sriov"), None)  # type: ignore[arg-type]


def test_nested_needs_link_iface_or_vm_port() -> None:
    with pytest.raises(nested.NestedError, match="link_iface"):
        nested.build(conf_with(default_port_driver="vlan"), None)  # type: ignore[arg-type]
    built = nested.build(conf_with(default_port_driver="vlan", binding__link_iface="eth0"), None)  # type: ignore[arg-type]
    assert built is not None and built.name == "vlan"


def test_nested_refuses_the_port_pool() -> None:
    with pytest.raises(nested.NestedError, match="vif_pool"):
        nested.build(conf_with(default_port_driver="nested", binding__link_iface="eth0",
                               vif_pool__enabled=True), None)  # type: ignore[arg-type]


class _CheckingDriver:
    name = "vlan"

    def __init__(self, failure: Exception | None) -> None:
        self._failure = failure

    def check(self) -> None:
        if self._failure is not None:
            raise self._failure


@pytest.mark.parametrize("failure", [None, errors.NeutronUnavailable(
    "GET /ports", "Neutron is unreachable (ConnectFailure)", status=0)])
def test_serve_starts_when_the_prerequisites_cannot_be_checked_yet(failure):
    from kuryr_cnm import cli
    cli._check_port_driver(_CheckingDriver(failure))  # type: ignore[arg-type]


@pytest.mark.parametrize("failure", [errors.NotFound("the VM's port x does not exist in Neutron"),
                                     errors.BackendError("[binding] link_iface eth9 does not exist on this host")])
def test_serve_refuses_to_start_when_a_prerequisite_is_missing(failure):
    from kuryr_cnm import cli
    with pytest.raises(nested.NestedError, match=re.escape(f"port driver vlan: {failure.message}")):
        cli._check_port_driver(_CheckingDriver(failure))  # type: ignore[arg-type]
