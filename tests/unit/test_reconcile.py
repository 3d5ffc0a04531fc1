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
