"""The reconciler against FakeNeutron: what it deletes, and that no failure stops it."""
from __future__ import annotations

from unittest.mock import MagicMock

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from kuryr_cnm import naming, reconcile
from kuryr_cnm.ownership import Owner, Ownership
from kuryr_cnm.plugging import HostPlugging
from kuryr_cnm.reconcile import Reconciler
from tests.unit.fake_neutron import FakeNeutron


@pytest.fixture
def neutron() -> FakeNeutron:
    return FakeNeutron()


def _reconciler(neutron: FakeNeutron, held: set[str] | None = None) -> Reconciler:
    plugger = MagicMock()  # Open vSwitch's side: nothing plugged
    plugger.list_kuryr_ports.return_value = []
    owned = Ownership(neutron, Owner("vm", "kuryr"), "kuryrPool")
    return Reconciler(neutron, HostPlugging(neutron, plugger, "vm"), owned, grace=0, in_use=lambda: held or set())


def test_a_failing_pass_is_logged_and_the_next_one_runs(neutron, monkeypatch, caplog):
    """A NetlinkError (or a bug) escaped run(): the reconciler thread died for good."""
    calls = []

    def flaky(prefix: str) -> list[str]:
        calls.append(prefix)
        if len(calls) == 1:
            raise NetlinkError(16, "Device or resource busy")
        return []
    monkeypatch.setattr(reconcile.veth, "list_veths", flaky)
    rec = _reconciler(neutron)
    first = rec.run()
    assert first.errors and "NetlinkError" in first.errors[0]
    assert rec.last_good_pass is None and rec.last_report is first
    assert "Traceback" in caplog.text
    second = rec.run()
    assert not second.errors and rec.last_good_pass is not None and rec.last_report is second


def test_only_this_plugins_unheld_ports_here_are_deleted(neutron, monkeypatch):
    monkeypatch.setattr(reconcile.veth, "list_veths", lambda prefix: [])
    net = neutron.make_network("n")
    neutron.make_subnet(net.id, "10.50.0.0/24")

    def port(description: str, host: str = "vm", **attrs) -> str:
        return neutron.create_port(network_id=net.id, name=naming.UNBOUND_PORT_NAME, device_owner=naming.DEVICE_OWNER,
                                   description=description, **{"binding:host_id": host}, **attrs).id
    mine = port(naming.cnm_description("kuryr@vm"))
    held = port(naming.cnm_description("kuryr@vm"))
    other_plugin = port(naming.cnm_description("kcnm2@vm"))
    other_host = port(naming.cnm_description("kuryr@host2"), host="host2")
    legacy = port("")  # kuryr-libnetwork's: no mark of ours
    report = _reconciler(neutron, held={held}).run()
    assert report.deleted == [mine]
    assert {p.id for p in neutron.ports()} == {held, other_plugin, other_host, legacy}


def test_a_port_with_background_writes_queued_is_left_to_them(neutron, monkeypatch):
    """The reconciler repaired plugged ports whose own tag writes were still queued: the same
    writes twice, on a Neutron already behind (seen: 7 repairs during 50 parallel starts)."""
    monkeypatch.setattr(reconcile.veth, "list_veths", lambda prefix: [])
    net = neutron.make_network("n")
    neutron.make_subnet(net.id, "10.51.0.0/24")
    port = neutron.create_port(network_id=net.id, name=naming.UNBOUND_PORT_NAME, device_owner=naming.DEVICE_OWNER,
                               description=naming.cnm_description("kuryr@vm"), **{"binding:host_id": "vm"}).id
    rec = _reconciler(neutron)
    rec._busy = lambda: {port}
    report = rec.run()
    assert report.deleted == [] and report.kept == 1 and neutron.get_port(port) is not None


class RecordingPlugging:
    """What the host has plugged, as HostPlugging reports it, and what the reconciler unplugs."""

    def __init__(self, plugged: list) -> None:
        self._plugged = plugged
        self.unplugged: list[str] = []

    def plugged(self) -> list:
        return [p for p in self._plugged if p.device not in self.unplugged]

    def unplug_orphan(self, item) -> None:
        self.unplugged.append(item.device)

    def own_ports_filter(self) -> dict[str, str]:
        return {"binding:host_id": "vm"}

    def detach(self, port) -> None:
        pass


def test_an_ovs_port_whose_device_is_gone_is_unplugged_and_its_port_deleted(neutron, monkeypatch):
    """A host that lost power: Open vSwitch kept the OVS port of a container (its database is on
    disk), the veth went with the kernel. The reconciler counted the port as plugged ("in use")
    for ever, so its Neutron port was never deleted (seen on a simulated host after host-kill)."""
    from kuryr_cnm.plugging import Plugged
    monkeypatch.setattr(reconcile.veth, "list_veths", lambda prefix: [])
    net = neutron.make_network("n")
    neutron.make_subnet(net.id, "10.52.0.0/24")

    def port() -> str:
        return neutron.create_port(network_id=net.id, name=naming.UNBOUND_PORT_NAME, device_owner=naming.DEVICE_OWNER,
                                   device_id="e" * 64, description=naming.cnm_description("kuryr@vm"),
                                   **{"binding:host_id": "vm"}).id
    dead, live = port(), port()
    plugging = RecordingPlugging([
        Plugged(dead, "e" * 64, naming.host_veth_name(dead), "fa:16:3e:00:00:01", present=False),
        Plugged(live, "e" * 64, naming.host_veth_name(live), "fa:16:3e:00:00:02", present=True)])
    owned = Ownership(neutron, Owner("vm", "kuryr"), "kuryrPool")
    report = Reconciler(neutron, plugging, owned, grace=0, in_use=set).run()
    assert plugging.unplugged == [naming.host_veth_name(dead)]
    assert report.deleted == [dead] and neutron.get_port(live) is not None


# -- nested mode: the child devices are the record, in the VM's namespace or the containers' ----

class NestedVm:
    """A VM's port (a trunk parent) on the in-memory Neutron, its NIC on a fake kernel with
    container namespaces, and this VM's kuryr-cnm (`kuryr@vm1`) with the vlan or ipvlan driver."""

    MARK = "kuryr@vm1"

    def __init__(self, monkeypatch: pytest.MonkeyPatch, driver_name: str) -> None:
        from kuryr_cnm.nested.base import VmPort
        from kuryr_cnm.nested.ipvlan import IpvlanDriver
        from kuryr_cnm.nested.vlan import VlanDriver
        from kuryr_cnm.plugging import NestedPlugging
        from tests.unit.binding.fake_netlink import FakeHost, FakeKernel
        monkeypatch.setattr(reconcile.veth, "list_veths", lambda prefix: [])
        self.neutron = FakeNeutron()
        self.network = self.neutron.make_network("vm-net")
        self.neutron.make_subnet(self.network.id, "10.60.0.0/24")
        self.parent = self.neutron.make_port(self.network.id, **{"binding:host_id": "vm"})
        self.trunk = self.neutron.make_trunk(self.parent.id)
        kernel = FakeKernel()
        kernel.add_nic("eth0", self.parent.mac_address)
        self.host = FakeHost(kernel)
        self.host.install(monkeypatch)
        cls = VlanDriver if driver_name == "vlan" else IpvlanDriver
        self.driver = cls(self.neutron, VmPort(self.neutron, "eth0", self.parent.id))
        self.plugging = NestedPlugging(self.neutron, self.driver, self.MARK)
        self.owned = Ownership(self.neutron, Owner("vm1", "kuryr"), "kuryrPool")

    def port(self, mark: str = MARK) -> str:
        """A port as RequestAddress makes it in nested mode: unbound, marked in its description."""
        return self.neutron.create_port(network_id=self.network.id, name=naming.UNBOUND_PORT_NAME,
                                        device_owner=naming.DEVICE_OWNER,
                                        description=naming.cnm_description(mark)).id

    def plug(self, port_id: str, endpoint_id: str, sandbox: str = "") -> None:
        """CreateEndpoint, and with `sandbox` Docker's move of the device into the container at Join."""
        port = self.neutron.get_port(port_id)
        self.plugging.plug(port, endpoint_id, 1450)
        if sandbox:
            self.host.move_into_sandbox(naming.container_veth_name(port_id), sandbox)

    def attached(self, port_id: str) -> bool:
        """A subport of the VM's trunk, or its address in the VM port's pairs."""
        parent = self.neutron.raw("ports", self.parent.id)
        subports = self.neutron.get_trunk(self.trunk)["sub_ports"]
        port = self.neutron.raw("ports", port_id) if self.neutron.get_port(port_id) else None
        ips = {f["ip_address"] for f in port["fixed_ips"]} if port else set()
        return (any(s["port_id"] == port_id for s in subports)
                or bool(ips & {p["ip_address"] for p in parent["allowed_address_pairs"]}))

    def reconciler(self, grace: float = 0, held: set[str] | None = None) -> Reconciler:
        return Reconciler(self.neutron, self.plugging, self.owned, grace=grace, in_use=lambda: held or set())


DRIVERS = ["vlan", "ipvlan"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_nested_a_port_whose_container_died_meanwhile_is_detached_and_deleted(monkeypatch, driver):
    """The VM's kuryr-cnm was down when a container died: its namespace took the child device
    along, its subport or pair and its port stayed. Before, nested mode reconciled nothing."""
    vm = NestedVm(monkeypatch, driver)
    running, died = vm.port(), vm.port()
    vm.plug(running, "a" * 64, sandbox="/run/docker/netns/running")
    vm.plug(died, "b" * 64, sandbox="/run/docker/netns/died")
    others = vm.port("kcnm2@vm1")  # another plugin name in this VM: never ours to judge
    vm.host.remove_sandbox("/run/docker/netns/died")
    report = vm.reconciler().run()
    assert report.errors == [] and report.deleted == [died]
    assert vm.neutron.get_port(died) is None and not vm.attached(died)
    assert vm.neutron.get_port(running) is not None and vm.attached(running)
    assert vm.neutron.get_port(others) is not None
    assert vm.host.others["/run/docker/netns/running"].by_name("eth0") is not None


@pytest.mark.parametrize("driver", DRIVERS)
def test_nested_a_child_docker_never_joined_is_removed_after_the_grace(monkeypatch, driver):
    """CreateEndpoint made the child, then the plugin (or Docker) died before Join: the device
    stays in the VM's namespace, where no container uses it."""
    vm = NestedVm(monkeypatch, driver)
    port = vm.port()
    vm.plug(port, "c" * 64)
    name = naming.container_veth_name(port)
    assert vm.reconciler(grace=3600).run().unplugged == []  # Docker may be between its calls
    assert vm.reconciler(held={port}).run().unplugged == []  # this process handed it to Docker
    report = vm.reconciler().run()
    assert report.unplugged == [name] and report.deleted == [port]
    assert vm.host.own.by_name(name) is None and vm.neutron.get_port(port) is None and not vm.attached(port)


def test_nested_a_containers_device_whose_port_is_gone_is_removed_in_its_namespace(monkeypatch):
    vm = NestedVm(monkeypatch, "vlan")
    port = vm.port()
    vm.plug(port, "d" * 64, sandbox="/run/docker/netns/c1")
    vm.neutron.remove_subport(vm.trunk, port)  # an operator deleted the port
    vm.neutron.delete_port(port)
    report = vm.reconciler().run()
    assert report.unplugged == ["eth0 in /run/docker/netns/c1"]
    assert vm.host.others["/run/docker/netns/c1"].by_name("eth0") is None


def test_nested_a_plugged_port_whose_tags_never_landed_is_repaired_from_the_device(monkeypatch):
    """The device's alias names its endpoint: device_id and the endpoint's tags come back."""
    vm = NestedVm(monkeypatch, "vlan")
    port = vm.port()
    vm.plug(port, "e" * 64, sandbox="/run/docker/netns/c1")
    report = vm.reconciler().run()
    assert report.repaired == [port] and report.deleted == []
    repaired = vm.neutron.get_port(port)
    assert repaired.device_id == "e" * 64 and set(naming.id_tags("e" * 64)) <= set(repaired.tags)
    assert naming.cnm_owner_tag(NestedVm.MARK) in repaired.tags


def test_nested_another_plugins_devices_are_not_this_ones(monkeypatch):
    from kuryr_cnm.binding import nested as links
    vm = NestedVm(monkeypatch, "vlan")
    port = vm.port()
    vm.plug(port, "f" * 64, sandbox="/run/docker/netns/c1")
    found = links.children(NestedVm.MARK)
    assert [(c.port_id, c.endpoint_id, c.name, c.netns) for c in found] == [
        (port, "f" * 64, "eth0", "/run/docker/netns/c1")]
    assert links.children("kcnm2@vm1") == []


def test_nested_a_namespace_it_cannot_read_stops_the_pass_before_it_deletes(monkeypatch):
    vm = NestedVm(monkeypatch, "vlan")
    port = vm.port()
    vm.plug(port, "a" * 64, sandbox="/run/docker/netns/c1")
    vm.host.unreadable["/run/docker/netns/c1"] = PermissionError(1, "Operation not permitted")
    report = vm.reconciler().run()
    assert report.errors and "run it as root" in report.errors[0] and report.deleted == []
    assert vm.neutron.get_port(port) is not None and vm.attached(port)


def test_nested_a_device_seen_on_the_second_look_keeps_its_port(monkeypatch):
    """Docker moved the device between the VM's namespace and the container's while the first
    look read them: it was in neither. Plugged is read again before anything is deleted."""
    vm = NestedVm(monkeypatch, "vlan")
    port = vm.port()
    vm.plug(port, "a" * 64, sandbox="/run/docker/netns/c1")
    real = vm.plugging.plugged
    looks = []

    def plugged():
        looks.append(1)
        return [] if len(looks) == 1 else real()
    monkeypatch.setattr(vm.plugging, "plugged", plugged)
    report = vm.reconciler().run()
    assert len(looks) == 2 and report.deleted == [] and report.kept == 1
    assert vm.neutron.get_port(port) is not None and vm.attached(port)
