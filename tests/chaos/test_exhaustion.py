"""40 parallel `docker run` on a /27: exactly as many succeed as there are free addresses,
the rest get a clear "no free address" error, and nothing is left behind."""
from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor

from tests import host
from tests.chaos.conftest import neutron_network_of, running

RUNS = 40


def _free_addresses(neutron, network_id: str) -> int:
    subnet = neutron.get("/subnets", params={"network_id": network_id}).json()["subnets"][0]
    size = sum(int(ipaddress.ip_address(p["end"])) - int(ipaddress.ip_address(p["start"])) + 1
               for p in subnet["allocation_pools"])
    used = neutron.get("/ports", params={"fixed_ips": f"subnet_id={subnet['id']}"}).json()["ports"]
    return size - len(used)


def test_40_runs_on_a_slash_27(docker, neutron):
    net = docker.network("full", "--subnet", "10.95.0.0/27")
    free = _free_addresses(neutron, neutron_network_of(neutron, docker, net))
    assert 20 < free < RUNS
    names = [f"kcnmt-x{i}-{docker.tag}" for i in range(RUNS)]
    docker.containers.extend(names)

    def run(name: str):
        return docker("run", "-d", "--name", name, "--network", net, host.TEST_IMAGE, "sleep", "3600",
                      check=False, timeout=300)
    with ThreadPoolExecutor(max_workers=RUNS) as pool:
        results = list(pool.map(run, names))
    ok = [n for n, r in zip(names, results) if r.returncode == 0]
    refused = [r.stderr for r in results if r.returncode != 0]
    print(f"{RUNS} runs on a /27 with {free} free addresses: {len(ok)} started, {len(refused)} refused")
    assert len(ok) == free, refused[:3]
    assert all("no free address" in err for err in refused), refused[:3]
    assert all(running(docker, n) for n in ok)
    ips = {docker.ip(n, net) for n in ok}
    assert len(ips) == free
