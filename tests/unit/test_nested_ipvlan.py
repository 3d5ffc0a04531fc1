"""The ipvlan port driver against the in-memory Neutron (ML2/OVN's rules: a bound port's pairs carry its
own MAC or a VRRP one), and wired as `serve` wires it with a fake kernel: pairs of an IP alone,
retried on a stale revision, removed one container at a time, dual-stack; no MAC told to Docker."""
from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from kuryr_cnm import errors, nested
from kuryr_cnm.binding import announce
from kuryr_cnm.binding import nested as links
from kuryr_cnm.nested.base import VmPort
from kuryr_cnm.nested.ipvlan import IpvlanDriver
from kuryr_cnm.nested.macvlan import MacvlanDriver
from kuryr_cnm.neutron import Port
from tests.unit.binding.fake_netlink import FakeHost, FakeKernel
from tests.unit.fake_neutron import FakeNeutron
from tests.unit.test_nested import conf_with
from tests.unit.wiring import Host, docker_id

VRRP_MAC = "00:00:5e:00:01:07"


class Vm:
    """A VM's port bound to host "vm" on a network with an IPv4 and an IPv6 subnet."""

    def __init__(self) -> None:
        self.neutron = FakeNeutron()
        self.network = self.neutron.make_network("vm-net")
        self.v4 = self.neutron.make_subnet(self.network.id, "10.0.0.0/24")
        self.v6 = self.neutron.make_subnet(self.network.id, "fd00:10::/64")
        self.parent = self.neutron.make_port(self.network.id, fixed_ips=[{"subnet_id": self.v4.id}],
                                             **{"binding:host_id": "vm"})
        self.driver = IpvlanDriver(self.neutron, VmPort(self.neutron, "eth0", self.parent.id))

    def container(self, dual_stack: bool = False) -> Port:
        subnets = [self.v4, self.v6] if dual_stack else [self.v4]
        return self.neutron.make_port(self.network.id, fixed_ips=[{"subnet_id": s.id} for s in subnets])

    def pairs(self) -> list[dict[str, str]]:
        return self.neutron.raw("ports", self.parent.id)["allowed_address_pairs"]

    def written(self) -> list[list[dict[str, Any]]]:
        return [c["allowed_address_pairs"] for c in self.neutron.calls_to("update_port_if_revision")]


@pytest.fixture
def vm() -> Vm:
    return Vm()


def test_the_pair_is_the_ip_alone_and_neutron_gives_it_the_vm_ports_mac(vm: Vm) -> None:
    port = vm.container()
    vm.driver._attach(port)
    ip = port.fixed_ips[0].ip_address
    assert vm.written() == [[{"ip_address": ip}]]  # no mac_address key
    assert vm.pairs() == [{"ip_address": ip, "mac_address": vm.parent.mac_address}]
    vm.driver._attach(port)  # Docker retried: nothing to write
    assert len(vm.written()) == 1


def test_attach_and_detach_are_two_requests_each(vm: Vm) -> None:
    """The PUT answers with the port as written: no read after it (in the VM, each
    CreateEndpoint and DeleteEndpoint made 3 requests)."""
    port = vm.container()
    vm.neutron.reset_calls()
    vm.driver._attach(port)
    assert (vm.neutron.reads(), vm.neutron.writes()) == (1, 1)
    vm.neutron.reset_calls()
    vm.driver._detach(port)
    assert (vm.neutron.reads(), vm.neutron.writes()) == (1, 1) and vm.pairs() == []


def test_ml2_ovn_refuses_macvlans_pair_on_the_same_port_and_says_to_use_ipvlan(vm: Vm) -> None:
    macvlan = MacvlanDriver(vm.neutron, VmPort(vm.neutron, "eth0", vm.parent.id))
    with pytest.raises(errors.BadRequest, match="ipvlan"):
        macvlan._attach(vm.container())
    assert vm.pairs() == []


def test_macvlan_on_ml2_ovn_is_refused_at_start_and_names_the_drivers_that_work(vm: Vm) -> None:
    macvlan = MacvlanDriver(vm.neutron, VmPort(vm.neutron, "eth0", vm.parent.id))
    with pytest.raises(nested.NestedError, match="refuses macvlan's allowed address pairs.*vlan.*ipvlan"):
        macvlan.check()
    assert vm.pairs() == []


def test_macvlan_where_neutron_takes_its_pairs_starts_and_leaves_the_pairs_as_they_were(
        vm: Vm, monkeypatch: pytest.MonkeyPatch) -> None:
    from kuryr_cnm.nested import macvlan as macvlan_module
    from tests.unit import fake_neutron
    monkeypatch.setattr(fake_neutron, "_check_vrrp_macs", lambda port: None)  # ML2/OVS, or Neutron 28.0.0
    theirs = {"ip_address": "10.0.0.77", "mac_address": "fa:16:3e:00:00:77"}
    leftover = {"ip_address": "10.0.0.78", "mac_address": macvlan_module.PROBE_MAC}  # a probe killed half-way
    vm.neutron.update_port(vm.parent.id, allowed_address_pairs=[theirs, leftover])
    vm.neutron.reset_calls()
    MacvlanDriver(vm.neutron, VmPort(vm.neutron, "eth0", vm.parent.id)).check()
    assert vm.pairs() == [theirs]
    assert len(vm.written()) == 2  # the probe, and its removal
    assert vm.neutron.reads() == 2  # port security's check and the probe's: each PUT answers with the port


def test_macvlan_probe_writes_nothing_to_an_unbound_vm_port(vm: Vm) -> None:
    vm.neutron.update_port(vm.parent.id, **{"binding:host_id": ""})  # Neutron checks bound ports' pairs only
    MacvlanDriver(vm.neutron, VmPort(vm.neutron, "eth0", vm.parent.id)).check()
    assert vm.written() == []


def test_a_concurrent_write_of_the_vm_port_is_retried_and_kept(vm: Vm) -> None:
    other = {"ip_address": "10.0.0.99"}  # another kuryr-cnm (or the operator) writes between our read and write

    def race(_args: dict[str, Any]) -> None:
        if not vm.neutron.calls_to("update_port"):
            vm.neutron.update_port(vm.parent.id, allowed_address_pairs=[other])
    vm.neutron.before("update_port_if_revision", race)
    port = vm.container()
    vm.driver._attach(port)
    assert sum(r.endswith(" 412") for r in vm.neutron.requests) == 1
    assert sorted(p["ip_address"] for p in vm.pairs()) == sorted(["10.0.0.99", port.fixed_ips[0].ip_address])


def test_parallel_attaches_and_detaches_keep_every_pair(vm: Vm) -> None:
    ports = [vm.container() for _ in range(10)]

    def all_of(method: Any) -> None:
        threads = [threading.Thread(target=method, args=(p,)) for p in ports]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    all_of(vm.driver._attach)
    assert sorted(p["ip_address"] for p in vm.pairs()) == sorted(p.fixed_ips[0].ip_address for p in ports)
    all_of(vm.driver._detach)
    assert vm.pairs() == []


def test_removal_takes_out_only_its_own_pair(vm: Vm) -> None:
    port, neighbour = vm.container(), vm.container()
    ip = port.fixed_ips[0].ip_address
    vrrp = {"ip_address": ip, "mac_address": VRRP_MAC}  # the same address with a VRRP MAC: not ours
    operators = {"ip_address": "10.0.0.200", "mac_address": vm.parent.mac_address}
    vm.neutron.update_port(vm.parent.id, allowed_address_pairs=[vrrp, operators])
    vm.driver._attach(port)
    vm.driver._attach(neighbour)
    vm.driver._detach(port)
    assert vm.pairs() == [vrrp, operators, {"ip_address": neighbour.fixed_ips[0].ip_address,
                                            "mac_address": vm.parent.mac_address}]
    vm.driver._detach(port)  # again (DeleteEndpoint retried): nothing to write
    assert len(vm.written()) == 3


def test_dual_stack_puts_both_addresses_and_removes_both(vm: Vm) -> None:
    port = vm.container(dual_stack=True)
    ips = [f.ip_address for f in port.fixed_ips]
    assert {len(ip.split(":")) > 1 for ip in ips} == {False, True}
    vm.driver._attach(port)
    assert vm.written() == [[{"ip_address": ip} for ip in ips]]
    assert sorted(p["ip_address"] for p in vm.pairs()) == sorted(ips)
    vm.driver._detach(port)
    assert vm.pairs() == []


def test_port_security_off_is_refused_at_start(vm: Vm) -> None:
    vm.neutron.update_port(vm.parent.id, port_security_enabled=False, security_groups=[])
    with pytest.raises(nested.NestedError, match="port security"):
        vm.driver.check()


@pytest.mark.parametrize("overrides", [{"default_port_driver": "ipvlan"},
                                       {"default_port_driver": "kuryr_libnetwork.port_driver.drivers.ipvlan"},
                                       {"default_port_driver": "kuryr_libnetwork.port_driver.drivers.nested",
                                        "binding__default_driver": "kuryr.lib.binding.drivers.ipvlan"}])
def test_ipvlan_is_chosen_by_its_name_or_upstreams_nested_with_the_ipvlan_binding(overrides: dict[str, str]) -> None:
    conf = conf_with(binding__link_iface="eth0", **overrides)
    assert nested.driver_name(conf) == "ipvlan"
    built = nested.build(conf, None)  # type: ignore[arg-type]
    assert isinstance(built, IpvlanDriver)


def test_upstreams_nested_with_the_macvlan_binding_stays_macvlan() -> None:
    conf = conf_with(default_port_driver="nested", binding__default_driver="kuryr.lib.binding.drivers.macvlan")
    assert nested.driver_name(conf) == "macvlan"


# -- wired as serve wires it: Docker's calls, a fake kernel --------------------------------------

@pytest.fixture
def wired(vm: Vm, monkeypatch: pytest.MonkeyPatch) -> Any:
    kernel = FakeKernel()
    kernel.add_nic("eth0", vm.parent.mac_address)
    FakeHost(kernel).install(monkeypatch)
    announced: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(announce, "announce_in_background", lambda key, ips, what: announced.append((key, ips)))
    host = Host(vm.neutron, "vm", default_port_driver="ipvlan", binding__link_iface="eth0",
                binding__vm_port_id=vm.parent.id)
    net = host.create_network("10.0.0.0/24")
    yield host, net, kernel, announced
    host.close()


def _endpoint(host: Host, net: Any, mac: str = "") -> tuple[str, str, dict[str, Any]]:
    address = host.call("IpamDriver.RequestAddress", {"PoolID": net.pools[0], "Address": "", "Options": {}})["Address"]
    endpoint = docker_id()
    status, answer = host.plugin.router.dispatch("NetworkDriver.CreateEndpoint", _body(
        {"NetworkID": net.docker_id, "EndpointID": endpoint, "Interface": {"Address": address, "MacAddress": mac},
         "Options": {}}))
    return endpoint, address.split("/")[0], {"status": status, **answer}


def _body(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def test_docker_is_told_no_mac_the_child_has_the_nics_and_join_announces(vm: Vm, wired: Any) -> None:
    host, net, kernel, announced = wired
    endpoint, ip, answer = _endpoint(host, net)
    assert answer == {"status": 200, "Interface": {}}  # a MAC told would be set by Docker: the kernel refuses
    (child,) = [link for link in kernel.links.values() if link["kind"] == "ipvlan"]
    assert child["address"] == vm.parent.mac_address and child["ipvlan_mode"] == links.IPVLAN_MODE_L2
    assert vm.pairs() == [{"ip_address": ip, "mac_address": vm.parent.mac_address}]
    joined = host.call("NetworkDriver.Join", {"NetworkID": net.docker_id, "EndpointID": endpoint,
                                              "SandboxKey": "/var/run/docker/netns/0123", "Options": {}})
    assert joined["InterfaceName"]["SrcName"] == child["ifname"]
    assert announced == [("/var/run/docker/netns/0123", [ip])]
    host.call("NetworkDriver.Leave", {"NetworkID": net.docker_id, "EndpointID": endpoint})
    host.call("NetworkDriver.DeleteEndpoint", {"NetworkID": net.docker_id, "EndpointID": endpoint})
    assert vm.pairs() == [] and kernel.names() == {"lo", "eth0"}


def test_a_mac_address_asked_for_is_refused_before_anything_is_made(vm: Vm, wired: Any) -> None:
    host, net, kernel, _ = wired
    _, _, answer = _endpoint(host, net, mac="02:42:0a:00:00:09")
    assert answer["status"] == 400 and "without --mac-address" in answer["Err"]
    assert vm.pairs() == [] and kernel.names() == {"lo", "eth0"}
