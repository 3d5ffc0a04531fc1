"""dockerd restarted with running containers, with and without --live-restore, and Open
vSwitch restarted: the containers' Neutron ports and datapath come back, and after
removal nothing is left."""
from __future__ import annotations

from tests import host
from tests.chaos.conftest import neutron_network_of, ports_of, running, stack


def _all_active(neutron, network_id: str, count: int) -> bool:
    ports = ports_of(neutron, network_id)
    return len(ports) == count and all(p["status"] == "ACTIVE" for p in ports)


def test_dockerd_live_restore_keeps_containers_and_ports(docker, neutron):
    stack("restart-docker", "--live-restore")  # started with it, a dockerd leaves containers running when it stops
    try:
        net = docker.network("live", "--subnet", "10.96.0.0/24")
        a, b = docker.run("a", net), docker.run("b", net)
        net_id = neutron_network_of(neutron, docker, net)
        host.wait_for(lambda: _all_active(neutron, net_id, 2), timeout=60, what="ports ACTIVE")
        stack("restart-docker", "--live-restore")
        assert running(docker, a) and running(docker, b)
        assert _all_active(neutron, net_id, 2)
        docker.exec(a, "ping", "-c", "2", "-W", "3", docker.ip(b, net))
        c = docker.run("c", net)  # a new container after the restart
        docker.exec(c, "ping", "-c", "1", "-W", "3", docker.ip(a, net))
    finally:
        stack("restart-docker")  # back to the stack's flags (containers stop: the next test's case)


def test_dockerd_restart_without_live_restore_stops_and_restarts_cleanly(docker, neutron):
    net = docker.network("nolive", "--subnet", "10.97.0.0/24")
    a, b = docker.run("a", net), docker.run("b", net)
    net_id = neutron_network_of(neutron, docker, net)
    stack("restart-docker")
    assert not running(docker, a) and not running(docker, b)
    # the stopped containers' endpoints were torn down: their ports and plugs are gone
    host.wait_for(lambda: not ports_of(neutron, net_id), timeout=60, what="stopped containers' ports released")
    docker("start", a, b)
    host.wait_for(lambda: _all_active(neutron, net_id, 2), timeout=60, what="ports ACTIVE after start")
    docker.exec(a, "ping", "-c", "2", "-W", "3", docker.ip(b, net))


def test_ovs_restart_brings_ports_back(docker, neutron):
    net = docker.network("ovs", "--subnet", "10.98.0.0/24")
    a, b = docker.run("a", net), docker.run("b", net)
    net_id = neutron_network_of(neutron, docker, net)
    host.wait_for(lambda: _all_active(neutron, net_id, 2), timeout=60, what="ports ACTIVE")
    stack("restart-ovs")
    host.wait_for(lambda: _all_active(neutron, net_id, 2), timeout=90, what="ports ACTIVE after the OVS restart")
    host.eventually(lambda: docker.exec(a, "ping", "-c", "1", "-W", "2", docker.ip(b, net)), timeout=60)
    c = docker.run("c", net)  # the plugin's OVSDB connection came back too
    docker.exec(c, "ping", "-c", "1", "-W", "3", docker.ip(a, net))
