"""The Neutron API stopped for 30 s in the middle of container starts and stops.

Docker gets a clear error within a bound (a stopped Neutron refuses connections, so a
call fails in well under a second; FAIL_WITHIN allows for a loaded machine), running
containers keep their network, stops succeed (their ports are deleted by the background
retries once Neutron is back), and afterwards the next runs work and nothing leaked."""
from __future__ import annotations

import time

from tests.chaos.conftest import stack

OUTAGE = 30  # seconds, as the issue asks
FAIL_WITHIN = 10  # seconds for a docker run to fail while Neutron is down


def test_neutron_down_for_30_s(docker):
    net = docker.network("outage", "--subnet", "10.91.0.0/24")
    a, b = docker.run("a", net), docker.run("b", net)
    ip_a = docker.ip(a, net)
    stack("stop-neutron")
    down_at = time.monotonic()
    try:
        started = time.monotonic()
        failed = docker("run", "-d", "--name", f"kcnmt-c-{docker.tag}", "--network", net,
                        "kuryr-test/busybox:latest", "sleep", "3600", check=False)
        took = time.monotonic() - started
        docker.containers.append(f"kcnmt-c-{docker.tag}")
        assert failed.returncode != 0, "a container started while Neutron was down"
        assert "Neutron is unreachable" in failed.stderr, failed.stderr
        assert took < FAIL_WITHIN, f"docker run took {took:.1f} s to fail"
        docker("rm", "-f", b)  # teardown needs no Neutron answer; the port goes when it is back
        docker.containers.remove(b)
        docker.exec(a, "ip", "addr")  # the running container is untouched
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
    finally:
        stack("start-neutron")
    d = docker.run("d", net)
    docker.exec(d, "ping", "-c", "2", "-W", "3", ip_a)
    # the fixture removes a, c, d and the network, then waits for nothing to be left
