"""Networks that span the main host and the simulated hypervisors host2 and host3: containers on
every host on one L2 segment and one subnet, isolation between networks, --expose, bursts."""
from __future__ import annotations

import concurrent.futures
import ipaddress

from tests import host
from tests.e2e.conftest import tcp_exchange
from tests.multihost.conftest import ALL, MAIN, container_ports, settled_container_ports

BUSYBOX_NC_PORT = 5000


def _tcp(cluster, server: tuple[str, str], client: tuple[str, str], address: str, port: int = BUSYBOX_NC_PORT) -> str:
    """A line over TCP from the client container to the server's (each: engine, name)."""
    return tcp_exchange((cluster[server[0]], server[1]), (cluster[client[0]], client[1]), address, port,
                        line="hello across hosts")


def _ping(cluster, engine: str, container: str, address: str, *args: str) -> None:
    # the first packet over a tunnel may go while OVS resolves its neighbour: one retry allowed
    cluster[engine].exec(container, "ping", "-c", "3", "-W", "2", *args, address, timeout=30)


def test_containers_on_three_hosts_talk_icmp_tcp_at_the_neutron_mtu(cluster, neutron):
    net = cluster.span("span", "10.93.0.0/24", neutron)
    mtu = neutron.get(f"/networks/{net.neutron_id}").json()["network"]["mtu"]
    containers = {engine: cluster[engine].run(f"c-{engine}", net.name) for engine in ALL}
    ips = {engine: cluster[engine].ip(c, net.name) for engine, c in containers.items()}
    assert len(set(ips.values())) == 3 and all(ipaddress.ip_address(i) in ipaddress.ip_network(net.subnet)
                                               for i in ips.values())
    ports = settled_container_ports(neutron, net.neutron_id, 3)
    assert sorted(p["binding:host_id"] for p in ports) == sorted([host.hostname_id(), "host2", "host3"])
    # One cloud, one kuryr user: every host's ports in one project, so one default security group
    # (ingress from itself only) lets them reach each other. Hosts with other credentials, e.g. the
    # main one through Keystone and the others not, lose every ping between them.
    projects = {p["binding:host_id"]: (p["project_id"], tuple(p["security_groups"])) for p in ports}
    assert len(set(projects.values())) == 1, f"hosts' ports in different projects or groups: {projects}"
    for engine, container in containers.items():
        assert cluster[engine].exec(container, "cat", "/sys/class/net/eth0/mtu").stdout.strip() == str(mtu)
    for src in ALL:
        for dst in ALL:
            if src != dst:
                _ping(cluster, src, containers[src], ips[dst])
    # a packet as large as the MTU allows crosses the tunnel whole (ICMP payload: MTU - 28)
    _ping(cluster, "host2", containers["host2"], ips["host3"], "-s", str(mtu - 28))
    _ping(cluster, MAIN, containers[MAIN], ips["host2"], "-s", str(mtu - 28))
    assert _tcp(cluster, ("host3", containers["host3"]), ("host2", containers["host2"]), ips["host3"]) == \
        "hello across hosts"
    assert _tcp(cluster, (MAIN, containers[MAIN]), ("host3", containers["host3"]), ips[MAIN],
                BUSYBOX_NC_PORT + 1) == "hello across hosts"


def test_two_networks_that_span_the_hosts_are_isolated(cluster, neutron):
    """A container that sends on-link to the other network's subnet finds nobody: the two
    networks are two L2 segments across every host, not one."""
    red = cluster.span("red", "10.94.0.0/24", neutron)
    blue = cluster.span("blue", "10.95.0.0/24", neutron)
    r2 = cluster["host2"].run("r2", red.name, "--cap-add", "NET_ADMIN")
    r3 = cluster["host3"].run("r3", red.name)
    b3 = cluster["host3"].run("b3", blue.name)
    ip_r3, ip_b3 = cluster["host3"].ip(r3, red.name), cluster["host3"].ip(b3, blue.name)
    _ping(cluster, "host2", r2, ip_r3)  # the red network works across hosts
    cluster["host2"].exec(r2, "ip", "route", "add", blue.subnet, "dev", "eth0")  # blue as if on-link
    lost = cluster["host2"].exec(r2, "ping", "-c", "3", "-W", "1", ip_b3, check=False)
    assert lost.returncode != 0 and "0 packets received" in lost.stdout, lost.stdout
    neigh = cluster["host2"].exec(r2, "ip", "neigh", "show", ip_b3).stdout
    assert "lladdr" not in neigh, f"a blue container answered ARP on the red network: {neigh}"


def test_expose_applies_to_a_container_reached_from_another_host(cluster, neutron):
    net = cluster.span("expose", "10.96.0.0/24", neutron, ("host3", "host2"))
    server = cluster["host3"].run("srv", net.name, "--expose", "8080")
    client = cluster["host2"].run("cli", net.name)
    ip_server = cluster["host3"].ip(server, net.name)
    (port,) = [p for p in settled_container_ports(neutron, net.neutron_id, 2) if p["binding:host_id"] == "host3"]
    groups = neutron.get("/security-groups", params={"name": f"{port['id']}-exposed_ports"}).json()["security_groups"]
    assert len(groups) == 1 and groups[0]["id"] in port["security_groups"]
    assert [(r["protocol"], r["port_range_min"], r["port_range_max"]) for r in groups[0]["security_group_rules"]
            if r["direction"] == "ingress"] == [("tcp", 8080, 8080)]
    assert _tcp(cluster, ("host3", server), ("host2", client), ip_server, 8080) == "hello across hosts"


def test_twenty_parallel_runs_on_each_of_three_hosts_at_once(cluster, neutron):
    net = cluster.span("burst", "10.97.0.0/24", neutron)
    jobs = [(engine, i) for i in range(20) for engine in ALL]

    def start(job: tuple[str, int]) -> tuple[str, str]:
        engine, i = job
        return engine, cluster[engine].run(f"b{i}", net.name)
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        started = list(pool.map(start, jobs))
    ips = {(engine, name): cluster[engine].ip(name, net.name) for engine, name in started}
    assert len(set(ips.values())) == 60, "two containers got one address"

    def all_active() -> bool:
        ports = container_ports(neutron, net.neutron_id)
        return len(ports) == 60 and all(p["status"] == "ACTIVE" for p in ports)
    host.wait_for(all_active, timeout=120, interval=1, what="60 ports ACTIVE")
    by_engine = {engine: name for engine, name in started}  # one sample per host
    for src in ALL:
        dst = ALL[(ALL.index(src) + 1) % 3]
        _ping(cluster, src, by_engine[src], ips[dst, by_engine[dst]])
