"""A simulated host that loses power (aio.sh host-kill: kill -9 of every process of it, its devices
gone): the other hosts carry on; it cleans up by itself when it comes back; or, gone for good,
`kuryr-cnm gc --dead-host` run on another host removes what it left in Neutron."""
from __future__ import annotations

import os
import sys

from tests import host
from tests.multihost.conftest import (MAIN, aio, container_ports, ensure_host, neutron_network_of,
                                      settled_container_ports)

VICTIM = "host3"


def _ports(neutron, network_id: str, binding_host: str, settled: int | None = None) -> dict[str, tuple[str, str]]:
    """The containers' ports bound to a host: id -> (status, mac); with `settled`, once there are that many."""
    ports = (container_ports(neutron, network_id, binding_host) if settled is None
             else settled_container_ports(neutron, network_id, settled, binding_host))
    return {p["id"]: (p["status"], p["mac_address"]) for p in ports}


def _alive(neutron, name: str) -> bool:
    agents = neutron.get("/agents", params={"host": name}).json()["agents"]
    return any(a["alive"] for a in agents)


def _gc_dead_host(name: str):
    exe = os.path.join(os.path.dirname(sys.executable), "kuryr-cnm")
    return host.run([exe, "gc", "--dead-host", name, "--config-file", host.KURYR_CONF], check=False, timeout=120)


def _survivors_talk(cluster, net, containers: dict[str, str]) -> None:
    ip2 = cluster["host2"].ip(containers["host2"], net.name)
    ip_main = cluster[MAIN].ip(containers[MAIN], net.name)
    cluster[MAIN].exec(containers[MAIN], "ping", "-c", "3", "-W", "2", ip2, timeout=30)
    cluster["host2"].exec(containers["host2"], "ping", "-c", "3", "-W", "2", ip_main, timeout=30)


def test_a_host_that_loses_power_and_comes_back_cleans_up_and_its_containers_work(cluster, neutron):
    net = cluster.span("power", "10.88.0.0/24", neutron)
    containers = {e: cluster[e].run(f"p-{e}", net.name, "--restart", "always") for e in (MAIN, "host2", VICTIM)}
    survivors = {h: _ports(neutron, net.neutron_id, h, settled=1) for h in (host.hostname_id(), "host2")}
    old = set(_ports(neutron, net.neutron_id, VICTIM, settled=1))
    try:
        aio("host-kill", VICTIM)
        _survivors_talk(cluster, net, containers)
        assert {h: _ports(neutron, net.neutron_id, h) for h in survivors} == survivors, \
            "the other hosts' ports changed when host3 died"
    finally:
        aio("host-up", VICTIM)
    # its container restarts (--restart always) on a new port; the old one goes by itself
    host.wait_for(lambda: cluster[VICTIM].inspect(containers[VICTIM], "{{.State.Running}}") == "true",
                  timeout=60, what="host3's container to restart")
    ip3 = cluster[VICTIM].ip(containers[VICTIM], net.name)
    cluster[MAIN].exec(containers[MAIN], "ping", "-c", "3", "-W", "2", ip3, timeout=30)
    host.wait_for(lambda: not (old & set(_ports(neutron, net.neutron_id, VICTIM))), timeout=120, interval=2,
                  what="the port host3 had before it died to be deleted")
    assert len(_ports(neutron, net.neutron_id, VICTIM)) == 1


def test_gc_of_a_dead_host_removes_its_share_and_keeps_the_others(cluster, neutron):
    shared = cluster.span("dead", "10.87.0.0/24", neutron)
    own = cluster[VICTIM].network("own", "--subnet", "10.86.0.0/24")
    own_id = neutron_network_of(cluster[VICTIM], own, neutron)
    containers = {e: cluster[e].run(f"g-{e}", shared.name) for e in (MAIN, "host2", VICTIM)}
    cluster[VICTIM].run("g-own", own)
    survivors = {h: _ports(neutron, shared.neutron_id, h, settled=1) for h in (host.hostname_id(), "host2")}
    try:
        aio("host-kill", VICTIM)
        refused = _gc_dead_host(VICTIM)
        assert refused.returncode == 1 and "host3 is alive" in refused.stderr, refused
        host.wait_for(lambda: not _alive(neutron, VICTIM), timeout=150, interval=3,
                      what="Neutron to see host3's chassis dead (agent_down_time)")
        done = _gc_dead_host(VICTIM)
        assert done.returncode == 0, done.stderr
        print(done.stdout.strip())
        assert _ports(neutron, shared.neutron_id, VICTIM) == {}
        assert {h: _ports(neutron, shared.neutron_id, h) for h in survivors} == survivors
        tags = neutron.get(f"/networks/{shared.neutron_id}").json()["network"]["tags"]
        assert not [t for t in tags if t.startswith("kuryr-cnm.on:host3:")]
        assert len([t for t in tags if t.startswith("kuryr.net.uuid.lh:")]) == 2
        assert neutron.get(f"/networks/{own_id}").status_code == 404, "host3's own network was left"
        _survivors_talk(cluster, shared, containers)
    finally:
        aio("host-up", VICTIM)
        ensure_host(VICTIM)
    # back after all: its Docker still has the networks gc took off Neutron; removing them is clean
    for name in list(cluster[VICTIM].containers):
        cluster[VICTIM]("rm", "-f", name)
        cluster[VICTIM].containers.remove(name)
    for name in list(cluster[VICTIM].networks):
        cluster[VICTIM]("network", "rm", name)
        cluster[VICTIM].networks.remove(name)
