"""The reconciler against FakeNeutron: what it deletes, and that no failure stops it."""
from __future__ import annotations

from unittest.mock import MagicMock

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from kuryr_cnm import naming, reconcile
from kuryr_cnm.ownership import Owner, Ownership
from kuryr_cnm.reconcile import Reconciler
from tests.unit.fake_neutron import FakeNeutron


@pytest.fixture
def neutron() -> FakeNeutron:
    return FakeNeutron()


def _reconciler(neutron: FakeNeutron, held: set[str] | None = None) -> Reconciler:
    plugger = MagicMock()
    plugger.list_kuryr_ports.return_value = []
    owned = Ownership(neutron, Owner("vm", "kuryr"), "kuryrPool")
    return Reconciler(neutron, plugger, owned, grace=0, in_use=lambda: held or set())


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
