"""NetworkDriver's CreateNetwork and DeleteNetwork on FakeNeutron."""
from __future__ import annotations

import json

from tests.unit.fake_neutron import FakeNeutron
from tests.unit.wiring import Host


def test_delete_network_keeps_an_address_waiting_for_its_create_endpoint():
    """DeleteNetwork's orphan sweep deleted the port of a RequestAddress whose CreateEndpoint had
    not come yet (ReleasePool's sweep already kept those): that CreateEndpoint then failed 404."""
    neutron = FakeNeutron()
    host = Host(neutron, "vm")
    try:
        net = host.create_network("10.40.0.0/24")
        host.call("IpamDriver.RequestAddress", {"PoolID": net.pools[0], "Address": "", "Options": {}})
        status, answer = host.plugin.router.dispatch(
            "NetworkDriver.DeleteNetwork", json.dumps({"NetworkID": net.docker_id}).encode())
        assert status == 409 and "still has ports" in answer["Err"]
        assert len(neutron.ports()) == 1
    finally:
        host.close()
