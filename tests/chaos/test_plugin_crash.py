"""kill -9 of kuryr-cnm while `docker run -d` calls are in flight, then a restart: every
container either works or can be removed, and after removal nothing is left."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import host
from tests.chaos.conftest import running, stack
from tests.scale import size

IN_FLIGHT = size(8, 20)
ROUNDS = size(1, 3)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_kill_9_with_runs_in_flight(docker, round_):
    net = docker.network("crash", "--subnet", "10.90.0.0/24")
    peer = docker.run("peer", net)
    peer_ip = docker.ip(peer, net)
    names = [f"kcnmt-c{i}-{docker.tag}" for i in range(IN_FLIGHT)]
    docker.containers.extend(names)
    started = threading.Event()

    def run(name: str) -> int:
        started.set()
        return docker("run", "-d", "--name", name, "--network", net, host.TEST_IMAGE, "sleep", "3600",
                      check=False, timeout=300).returncode
    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        results = [pool.submit(run, n) for n in names]
        started.wait(10)
        time.sleep(1.5)  # some runs are past the plugin, some in it, some not yet there
        stack("restart-plugin", "--kill")
        codes = [r.result() for r in results]

    working, broken = [], []
    for name in names:
        exists = docker("inspect", name, check=False).returncode == 0
        if exists and running(docker, name):
            working.append(name)
        elif exists:
            broken.append(name)
    print(f"{IN_FLIGHT} runs in flight at the kill: {len(working)} running, {len(broken)} created only, "
          f"{IN_FLIGHT - len(working) - len(broken)} never created; exit codes {codes}")
    for name in working:  # a container that runs has a working network
        docker.exec(name, "ping", "-c", "1", "-W", "3", peer_ip)
    # the restarted plugin serves new containers on the old network
    after = docker.run("after", net)
    docker.exec(after, "ping", "-c", "1", "-W", "3", peer_ip)
    # every one of them can be removed; the fixture's leak check waits for the reconciler
    docker("rm", "-f", *[n for n in names if docker("inspect", n, check=False).returncode == 0], after, peer)
    docker.containers.clear()
