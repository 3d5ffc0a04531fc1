import pytest

from kuryr_cnm import errors, naming
from kuryr_cnm.exposure import Exposure, port_ranges
from kuryr_cnm.ownership import Owner, Ownership
from tests.unit.fake_neutron import FakeNeutron


def test_consecutive_ports_merge_per_protocol():
    exposed = [{"Proto": 6, "Port": 80}, {"Proto": 6, "Port": 81}, {"Proto": 6, "Port": 443},
               {"Proto": 17, "Port": 53}, {"Proto": 1, "Port": 0}, {"Proto": 99, "Port": 1}]
    assert port_ranges(exposed) == [("icmp", 0, 0), ("tcp", 80, 81), ("tcp", 443, 443), ("udp", 53, 53)]


def test_nothing_exposed():
    assert port_ranges([]) == []


# --- Exposure over the in-memory Neutron ---------------------------------------------------

EXPOSE_80 = {"com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}]}


def _exposure(neutron: FakeNeutron, host: str = "here") -> Exposure:
    return Exposure(neutron, Ownership(neutron, Owner(host, "kuryr"), "kuryrPool"))


def _groups(neutron: FakeNeutron, port_id: str) -> list[dict]:
    return [g for g in neutron.security_groups() if g["name"] == naming.exposed_sg_name(port_id)]


def test_expose_then_revoke_leaves_the_port_as_it_was():
    neutron = FakeNeutron()
    port = neutron.make_port(neutron.make_network("n").id)
    before = neutron.get_port(port.id).security_groups
    exposure = _exposure(neutron)
    exposure.expose(port, EXPOSE_80)
    (group,) = _groups(neutron, port.id)
    assert group["id"] in neutron.get_port(port.id).security_groups and exposure.exposed(port.id)
    exposure.revoke(neutron.get_port(port.id))
    assert neutron.get_port(port.id).security_groups == before
    assert _groups(neutron, port.id) == [] and not exposure.exposed(port.id)


def test_revoke_keeps_a_group_an_operator_also_put_on_another_port():
    neutron = FakeNeutron()
    net = neutron.make_network("n")
    port, other = neutron.make_port(net.id), neutron.make_port(net.id)
    exposure = _exposure(neutron)
    exposure.expose(port, EXPOSE_80)
    (group,) = _groups(neutron, port.id)
    neutron.update_port(other.id, security_groups=[*other.security_groups, group["id"]])
    exposure.revoke(neutron.get_port(port.id))  # no error reaches Docker: the group is in use
    assert group["id"] not in neutron.get_port(port.id).security_groups
    assert _groups(neutron, port.id) and group["id"] in neutron.get_port(other.id).security_groups


def test_a_failed_expose_removes_the_group_it_made():
    neutron = FakeNeutron()
    port = neutron.make_port(neutron.make_network("n").id)
    neutron.fail_next("update_port", errors.NeutronUnavailable("PUT /ports", "Neutron is down"))
    with pytest.raises(errors.NeutronError):
        _exposure(neutron).expose(port, EXPOSE_80)
    assert _groups(neutron, port.id) == []


def test_the_rule_never_deletes_a_group_not_named_for_the_port():
    neutron = FakeNeutron()
    port = neutron.make_port(neutron.make_network("n").id)
    sg_id = neutron.create_security_group("operators-web", "")
    owned = Ownership(neutron, Owner("here", "kuryr"), "kuryrPool")
    assert not owned.delete_exposure_group({"id": sg_id, "name": "operators-web"}, port, "test")
    assert any(g["id"] == sg_id for g in neutron.security_groups())
