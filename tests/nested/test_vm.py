"""Nested mode in a real VM (tests/nested/conftest.py): containers in the VM on the Neutron
network of a plain kuryr-cnm container on this host, per port driver (vlan: trunk subports;
ipvlan: the VM port's allowed address pairs), and a crash of the VM's kuryr-cnm.

One VM for the module; the tests run in order and each leaves the VM as it found it."""
from __future__ import annotations

import shlex
import statistics

import pytest

from tests import host
from tests.nested.conftest import GUEST_DOCKER, HOST_IP, Guest, call_figures, guest_network

# the VM's boot, dockerd and kuryr-cnm under TCG come before the first test (module fixture),
# and pytest-timeout counts fixture setup in the test's time
pytestmark = pytest.mark.timeout(1800)

PARALLEL = 10
NC_PORT = 5000


def _subports(neutron, guest: Guest) -> list[dict]:
    return neutron.get(f"/trunks/{guest.trunk['id']}").json()["trunk"]["sub_ports"]


def _pairs(neutron, guest: Guest) -> list[dict]:
    return neutron.get(f"/ports/{guest.vm_port['id']}").json()["port"]["allowed_address_pairs"]


def _container_ports(neutron, guest: Guest) -> list[dict]:
    """kuryr's ports on the VM's network other than the host container's and the VM's own."""
    ports = neutron.get("/ports", params={"network_id": guest.neutron_network}).json()["ports"]
    host_ips = {HOST_IP}
    return [p for p in ports if p["id"] != guest.vm_port["id"] and p["device_owner"] != "network:distributed"
            and not {f["ip_address"] for f in p["fixed_ips"]} & host_ips]


def _talks_to_the_host(guest: Guest, container: str) -> None:
    # a subport is up once OVN has bound it; under TCG that can trail docker run by seconds
    host.eventually(lambda: guest.exec(container, "ping", "-c", "1", "-W", "2", HOST_IP, timeout=30), timeout=60,
                    interval=1)
    guest.exec(container, "ping", "-c", "3", "-W", "3", HOST_IP, timeout=60)
    # TCP: the host container serves one line, the VM's container reads it
    guest.host_docker.exec(guest.host_container, "sh", "-c",
                           f"echo hello-from-the-host | nc -l -p {NC_PORT} >/dev/null 2>&1 &")
    out = guest.exec(container, "sh", "-c", f"nc -w 10 {HOST_IP} {NC_PORT} </dev/null", timeout=60)["out"]
    assert out.strip() == "hello-from-the-host", out


def _nothing_left(neutron, guest: Guest, network: str) -> None:
    guest.docker("network", "rm", network)
    guest.networks.remove(network)
    host.eventually(lambda: _assert_clean(neutron, guest), timeout=60, interval=2)


def _assert_clean(neutron, guest: Guest) -> None:
    assert _subports(neutron, guest) == []
    assert _pairs(neutron, guest) == []
    assert _container_ports(neutron, guest) == []
    for kind in ("vlan", "ipvlan", "macvlan"):
        assert guest.links(kind) == [], f"{kind} devices left in the VM"


def _port_of(neutron, guest: Guest, container: str, network: str) -> dict:
    ip = guest.ip(container, network)
    (port,) = [p for p in _container_ports(neutron, guest) if ip in {f["ip_address"] for f in p["fixed_ips"]}]
    return port


@pytest.mark.parametrize("driver", ["vlan", "ipvlan"])
def test_containers_in_the_vm_reach_a_host_container_and_ten_start_at_once(guest, neutron, driver) -> None:
    with guest.serving(driver):
        network = guest_network(guest, f"vm{driver}")
        a, b = guest.run(f"{driver}-a", network), guest.run(f"{driver}-b", network)
        for container in (a, b):
            _talks_to_the_host(guest, container)
            # the child device in the container, renamed eth0 by Docker, still says whose it is
            port = _port_of(neutron, guest, container, network)
            assert guest.alias(container).startswith(f"kuryr-cnm kuryr@kcnmt-vm-{guest.tag} port {port['id']} ")
        if driver == "vlan":
            ids = sorted(s["segmentation_id"] for s in _subports(neutron, guest))
            assert len(ids) == 2 and len(set(ids)) == 2, ids
        else:
            ips = {guest.ip(c, network) for c in (a, b)}
            assert {p["ip_address"] for p in _pairs(neutron, guest)} == ips
            assert {p["mac_address"] for p in _pairs(neutron, guest)} == {guest.vm_port["mac_address"]}
        assert guest.links(driver) == [], f"{driver} devices left in the VM's namespace: Docker moved them"
        guest.rm(a, b)
        # ten at once
        guest.vm.sh(" ".join(f"{_guest_run(guest, f'{driver}-p{i}', network)} >/dev/null &" for i in range(PARALLEL))
                    + " wait", timeout=600)
        started = [f"kcnmt-{driver}-p{i}-{guest.tag}" for i in range(PARALLEL)]
        guest.containers.extend(started)
        running = guest.docker("ps", "--filter", f"name={driver}-p", "--format", "{{.Names}}").split()
        assert sorted(running) == sorted(started)
        ips = {guest.ip(c, network) for c in started}
        assert len(ips) == PARALLEL, "two containers got one address"
        if driver == "vlan":
            ids = [s["segmentation_id"] for s in _subports(neutron, guest)]
            assert len(ids) == PARALLEL and len(set(ids)) == PARALLEL, ids
        else:
            assert {p["ip_address"] for p in _pairs(neutron, guest)} == ips
        _talks_to_the_host(guest, started[-1])
        guest.rm(*started)
        _nothing_left(neutron, guest, network)
    _print_figures(guest, driver)


def _print_figures(guest: Guest, driver: str) -> None:
    """What the README reports per driver: each call's median time in the VM (TCG) and its
    Neutron requests, from the VM's kuryr-cnm log."""
    for method in ("IpamDriver.RequestAddress", "NetworkDriver.CreateEndpoint", "NetworkDriver.Join",
                   "NetworkDriver.DeleteEndpoint", "IpamDriver.ReleaseAddress"):
        times, requests = call_figures(guest, driver, method)
        if times:
            print(f"{driver}: {method} x{len(times)}: median {statistics.median(times):.0f} ms, "
                  f"Neutron requests median {statistics.median(requests):.0f} (max {max(requests)})")


def _guest_run(guest: Guest, name: str, network: str) -> str:
    """A shell command line of docker run -d in the VM."""
    return shlex.join([*GUEST_DOCKER, "run", "-d", "--name", f"kcnmt-{name}-{guest.tag}", "--network", network,
                       host.TEST_IMAGE, "sleep", "3600"])


def test_a_crash_of_the_vms_kuryr_cnm_leaves_its_containers_working(guest, neutron) -> None:
    """kill -9 with containers running; one of them removed while kuryr-cnm is down (Docker
    cannot tell it; the container's namespace takes the VLAN device along). After the
    restart: the running container keeps its subport, a new one starts, and the reconciler
    (every 20 s, grace 60 s here) takes the removed container's subport and port."""
    with guest.serving("vlan"):
        network = guest_network(guest, "vmcrash")
        a, gone = guest.run("crash-a", network), guest.run("crash-gone", network)
        _talks_to_the_host(guest, a)
        gone_port = _port_of(neutron, guest, gone, network)
        a_subport = [s for s in _subports(neutron, guest) if s["port_id"] != gone_port["id"]]
        guest.stop_plugin("KILL")
        _talks_to_the_host(guest, a)  # the datapath needs no plugin
        guest.docker("rm", "-f", gone, check=False, timeout=300)  # Docker retries the plugin, then gives up
        guest.containers.remove(gone)
        guest.start_plugin("vlan")
        host.eventually(lambda: _reconciled(neutron, guest, a_subport, gone_port["id"]), timeout=240, interval=5)
        b = guest.run("crash-b", network)
        _talks_to_the_host(guest, b)
        _talks_to_the_host(guest, a)
        guest.rm(a, b)
        _nothing_left(neutron, guest, network)


def _reconciled(neutron, guest: Guest, running: list[dict], gone_port_id: str) -> None:
    assert _subports(neutron, guest) == running, "the removed container's subport is still on the trunk"
    assert neutron.get(f"/ports/{gone_port_id}").status_code == 404, "the removed container's port is still there"
