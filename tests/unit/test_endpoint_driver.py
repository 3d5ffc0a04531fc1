"""EndpointDriver: CreateEndpoint .. Leave against a fake client, the ledger and a fake plugger."""
from __future__ import annotations

from unittest.mock import MagicMock

import pytest

from kuryr_cnm import config, errors
from kuryr_cnm.directory import DockerNetwork
from kuryr_cnm.endpoint_driver import EndpointDriver
from kuryr_cnm.ipam_driver import IpamDriver
from kuryr_cnm.neutron import FixedIP, Network, Port, Subnet
from kuryr_cnm.ownership import Owner, Ownership
from kuryr_cnm.plugging import HostPlugging
from kuryr_cnm.pools import PoolMap
from kuryr_cnm.ports import Endpoint, PortLedger


def _ownership(conf, client) -> Ownership:
    return Ownership(client, Owner(conf.host, conf.plugin_name), conf.subnetpool_name_prefix)


def _driver_with_endpoint(ledger: PortLedger | None = None) -> tuple[EndpointDriver, MagicMock, dict]:
    """An EndpointDriver whose endpoint `ep1` holds the port of 10.0.0.5 on network `net`."""
    conf = config.load()
    network = Network("net", "kuryr-net-x", 1500, False, (), ("sub",), "proj")
    docker_net = DockerNetwork("d" * 64, network, ())
    port = Port("port1", "kuryr-unbound-port", "net", "fa:16:3e:00:00:01", (FixedIP("sub", "10.0.0.5"),), (),
                "compute:kuryr", "e" * 64, conf.host, "ovs", {}, "ACTIVE", "proj")
    directory = MagicMock()
    directory.require_docker_network.return_value = docker_net
    client = MagicMock()
    client.list_ports.return_value = [port]  # found by address, as for a RequestAddress of another process
    plugger = MagicMock()
    ledger = PortLedger() if ledger is None else ledger
    ledger.plug(Endpoint("e" * 64, docker_net, port, "tapport1", "t_cport1", False))
    driver = EndpointDriver(conf, client, directory, ledger,
                            HostPlugging(client, plugger, conf.host), MagicMock(), MagicMock(),
                            Owner(conf.host, conf.plugin_name))
    body = {"NetworkID": "d" * 64, "EndpointID": "f" * 64, "Interface": {"Address": "10.0.0.5/24"}}
    return driver, plugger, body


def test_second_endpoint_on_a_plugged_address_is_refused():
    """It re-plugged the port (deleting the first endpoint's veth as 'stale') and answered 200."""
    driver, plugger, body = _driver_with_endpoint()
    with pytest.raises(errors.Conflict, match="already the address of endpoint eeeeeeeeeeee"):
        driver.create_endpoint(body)
    plugger.plug.assert_not_called()
    # Docker retrying the first endpoint's own CreateEndpoint still gets its answer
    assert driver.create_endpoint(dict(body, EndpointID="e" * 64)) == {"Interface": {"MacAddress": "fa:16:3e:00:00:01"}}


def test_delete_endpoint_does_not_shadow_a_newer_allocation_of_its_address():
    """DeleteEndpoint put its port back among the allocations even when its address had been
    released and handed out again (a new port): the next CreateEndpoint for that address got
    the deleted port and failed 404 (or would plug a dead port)."""
    ledger = PortLedger()
    newer = Port("port2", "kuryr-unbound-port", "net", "fa:16:3e:00:00:02", (FixedIP("sub", "10.0.0.5"),), (),
                 "compute:kuryr", "", "host", "ovs", {}, "DOWN", "proj")
    driver, plugger, body = _driver_with_endpoint(ledger)
    ledger.allocate(newer)
    driver.delete_endpoint({"NetworkID": body["NetworkID"], "EndpointID": "e" * 64})
    plugger.unplug.assert_called_once()
    assert ledger.address("net", "10.0.0.5").id == "port2"


def test_an_address_released_before_its_delete_endpoint_does_not_come_back():
    """ReleaseAddress before DeleteEndpoint (out of Docker's order) deleted the endpoint's port;
    a new port then took the address and a second endpoint. The first endpoint's DeleteEndpoint
    put its dead port back among the allocations, so the last ReleaseAddress deleted the dead
    port again (404) and the live one leaked, with its network, subnet and pool."""
    ledger = PortLedger()
    driver, _, body = _driver_with_endpoint(ledger)
    subnet = Subnet("sub", "kuryr-subnet-10.0.0.0/24", "net", "10.0.0.0/24", 4, None, None, (), ())
    directory, client, deferred = MagicMock(), MagicMock(), MagicMock()
    directory.cached_pool.return_value = (subnet,)
    # as Neutron lists it before the endpoint's background write: no device_id yet
    first = Port("port1", "kuryr-unbound-port", "net", "fa:16:3e:00:00:01", (FixedIP("sub", "10.0.0.5"),), (),
                 "compute:kuryr", "", "host", "ovs", {}, "ACTIVE", "proj")
    client.list_ports.return_value = [first]
    ipam = IpamDriver(config.load(), client, directory, ledger, deferred, MagicMock(),
                      _ownership(config.load(), client), {"binding:host_id": config.load().host},
                      PoolMap(config.load(), client, directory,
                              _ownership(config.load(), client)))
    release = {"PoolID": "0f372d2b-7a2a-43e2-869c-7419a195dfb1", "Address": "10.0.0.5"}

    ipam.release_address(release)  # the first endpoint still stands
    assert "port1" in deferred.submit.call_args.args[1]
    deferred.submit.call_args.args[2]()  # the background delete lands
    deferred.submit.call_args.kwargs["done"]()
    second = Port("port2", "kuryr-unbound-port", "net", "fa:16:3e:00:00:02", (FixedIP("sub", "10.0.0.5"),), (),
                  "compute:kuryr", "f" * 64, "host", "ovs", {}, "ACTIVE", "proj")
    ledger.allocate(second)  # RequestAddress made it ...
    later = Endpoint("f" * 64, DockerNetwork("d" * 64, Network("net", "kuryr-net-x", 1500, False, (), ("sub",),
                                                              "proj"), ()), second, "tapport2", "t_cport2", False)
    ledger.plug(later)  # ... and its CreateEndpoint took it
    driver.delete_endpoint({"NetworkID": body["NetworkID"], "EndpointID": "e" * 64})
    assert ledger.address("net", "10.0.0.5") is None
    ledger.unplug(later)  # the second endpoint's DeleteEndpoint

    ipam.release_address(release)
    assert "port2" in deferred.submit.call_args.args[1]
