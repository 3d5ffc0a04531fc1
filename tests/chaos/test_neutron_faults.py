"""Neutron answering 500, 409 and slowly (a fault-injecting proxy in front of it), under
real docker runs and removals: Docker gets a clear error, nothing hangs past the plugin's
Neutron timeout (4 s here), the next run works, and nothing is left behind."""
from __future__ import annotations

import time

import pytest

from tests import host
from tests.chaos.conftest import neutron_network_of, ports_of
from tests.chaos.faultproxy import Fault

TIMEOUT = 4  # [neutron] timeout of the proxied plugin (conftest.proxied_plugin)


def _run(docker, net: str, name: str):
    started = time.monotonic()
    full = f"kcnmt-{name}-{docker.tag}"
    docker.containers.append(full)
    proc = docker("run", "-d", "--name", full, "--network", net, host.TEST_IMAGE, "sleep", "3600", check=False)
    return proc, time.monotonic() - started, full


@pytest.mark.parametrize("fault,message", [
    (Fault("POST", r"^/v2\.0/ports", status=500), "injected fault 500"),
    (Fault("POST", r"^/v2\.0/ports", status=409), "injected fault 409"),
    # Neutron applies the write but answers after the plugin gave up: an orphan port
    (Fault("POST", r"^/v2\.0/ports", delay=TIMEOUT + 3), "did not answer"),
], ids=["500", "409", "slow-write"])
# the plugin before docker: torn down after docker has removed its containers and networks
def test_a_failed_address_request(proxy, proxied_plugin, docker, neutron, fault, message):
    name, _ = proxied_plugin
    net = docker.network("fault", "--subnet", "10.92.0.0/24", driver=name)
    peer = docker.run("peer", net)
    proxy.arm(fault)
    failed, took, _ = _run(docker, net, "hit")
    assert failed.returncode != 0 and message in failed.stderr, failed.stderr
    assert took < 2 * TIMEOUT + 10, f"docker run took {took:.1f} s to fail"
    after = docker.run("after", net)
    docker.exec(after, "ping", "-c", "1", "-W", "3", docker.ip(peer, net))
    if fault.delay:
        # the orphan the slow write left: the reconciler deletes it (grace 10 s, every 5 s)
        net_id = neutron_network_of(neutron, docker, net)
        host.wait_for(lambda: len(ports_of(neutron, net_id)) == 2, timeout=60, what="the orphan port deleted")


def test_a_failed_release_is_retried_until_neutron_takes_it(proxy, proxied_plugin, docker, neutron):
    name, log = proxied_plugin
    net = docker.network("relfault", "--subnet", "10.93.0.0/24", driver=name)
    a = docker.run("a", net)
    net_id = neutron_network_of(neutron, docker, net)
    proxy.arm(Fault("DELETE", r"^/v2\.0/ports/", status=500, times=2))
    proxy.arm(Fault("DELETE", r"^/v2\.0/ports/", status=503, times=1))
    docker("rm", "-f", a)
    docker.containers.remove(a)
    host.wait_for(lambda: not ports_of(neutron, net_id), timeout=60, what="the port deleted after three failures")
    assert sum("DELETE /v2.0/ports/" in line and "(injected)" in line for line in proxy.log) == 3
    assert "trying again" in open(log).read()


def test_a_slow_neutron_read_only_slows_the_run(proxy, proxied_plugin, docker):
    name, _ = proxied_plugin
    net = docker.network("slowread", "--subnet", "10.94.0.0/24", driver=name)
    proxy.arm(Fault("GET", r"^/v2\.0/", delay=TIMEOUT - 2, times=3))
    proc, took, full = _run(docker, net, "slow")
    assert proc.returncode == 0, proc.stderr
    assert docker.inspect(full, "{{.State.Running}}") == "true"
