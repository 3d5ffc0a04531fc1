"""Operator scenarios with real docker: adoption of existing Neutron objects, --mac-address,
parallel starts, and kuryr-cnm restarted (or killed) while containers run."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import host

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def restart_plugin(kill: bool = False) -> None:
    host.run(["bash", os.path.join(REPO, "stack", "aio.sh"), "restart-plugin", *(["--kill"] if kill else [])],
             timeout=120)


def test_existing_neutron_network_and_port_are_adopted(docker, neutron, cleanup):
    net = neutron.post("/networks", json={"network": {"name": f"kcnmt-adopt-{docker.tag}"}}).json()["network"]
    cleanup(lambda: neutron.delete(f"/networks/{net['id']}"))
    sub = neutron.post("/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.71.0.0/24",
                                                    "ip_version": 4}}).json()["subnet"]
    # made by an operator in another project (make test-keystone: kuryr's is `service`), so its
    # default security group would drop kuryr's containers: port security off on this one
    pre = neutron.post("/ports", json={"port": {"network_id": net["id"], "name": f"kcnmt-pre-{docker.tag}",
                                                "port_security_enabled": False,
                                                "fixed_ips": [{"subnet_id": sub["id"], "ip_address": "10.71.0.33"}]}}
                       ).json()["port"]
    cleanup(lambda: neutron.delete(f"/ports/{pre['id']}"))
    dnet = docker.network("adopt", "--subnet", "10.71.0.0/24", "-o", f"neutron.net.uuid={net['id']}")
    a = docker.run("a", dnet, "--ip", "10.71.0.33")
    b = docker.run("b", dnet)
    assert docker.exec(a, "cat", "/sys/class/net/eth0/address").stdout.strip() == pre["mac_address"]
    docker.exec(b, "ping", "-c", "2", "-W", "2", "10.71.0.33")
    docker("rm", "-f", a, b)
    docker.containers.clear()

    def reset() -> None:  # the release lands in the background
        port = neutron.get(f"/ports/{pre['id']}").json()["port"]
        assert port["binding:host_id"] == "" and "kuryr.port.existing" not in port["tags"]
    host.eventually(reset)
    docker("network", "rm", dnet)
    docker.networks.clear()
    assert neutron.get(f"/networks/{net['id']}").status_code == 200


def test_mac_address_is_applied_to_the_neutron_port(docker, neutron):
    net = docker.network("mac", "--subnet", "10.72.0.0/24")
    a = docker.run("a", net, "--mac-address", "02:42:0a:48:00:99")
    assert docker.exec(a, "cat", "/sys/class/net/eth0/address").stdout.strip() == "02:42:0a:48:00:99"
    ports = neutron.get("/ports", params={"mac_address": "02:42:0a:48:00:99"}).json()["ports"]
    assert len(ports) == 1 and ports[0]["binding:vif_type"] == "ovs"
    b = docker.run("b", net)
    docker.exec(b, "ping", "-c", "2", "-W", "2", docker.ip(a, net))


def test_parallel_runs_get_distinct_addresses(docker):
    net = docker.network("par", "--subnet", "10.73.0.0/24")
    names = [f"p{i}" for i in range(10)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda n: docker.run(n, net), names))
    ips = [docker.ip(f"kcnmt-{n}-{docker.tag}", net) for n in names]
    assert len(set(ips)) == 10
    docker.exec(f"kcnmt-p0-{docker.tag}", "ping", "-c", "1", "-W", "2", ips[-1])


@pytest.mark.parametrize("kill", [False, True], ids=["restart", "kill-9"])
def test_containers_survive_a_plugin_restart(docker, kill):
    net = docker.network("rst", "--subnet", "10.74.0.0/24")
    a, b = docker.run("a", net), docker.run("b", net)
    ip_b = docker.ip(b, net)
    restart_plugin(kill=kill)
    docker.exec(a, "ping", "-c", "2", "-W", "2", ip_b)
    c = docker.run("c", net)  # the restarted plugin serves new containers on the old network
    docker.exec(c, "ping", "-c", "1", "-W", "2", ip_b)
    docker("rm", "-f", a, b, c)  # teardown served by the new process: nothing may be left (fixture)
    docker.containers.clear()
