"""The nested tier: one real VM (tests/nested/vm.py) on a Neutron network that a plain kuryr-cnm
container on this host also uses, with dockerd 20.10 and kuryr-cnm inside it.

The module-scoped `guest` fixture makes everything Nova would (the VM's port bound to this host,
its trunk, the tap plugged into br-int), boots the VM, starts dockerd in it, and removes it all
afterwards, pass or fail: the VM is killed, and nothing new is left in Neutron, OVS or /tmp.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import host
from tests.e2e.conftest import Docker
from tests.leaks import Snapshot, assert_nothing_left
from tests.nested.vm import NEUTRON_IN_GUEST, NEUTRON_PORT, Vm

SUBNET = "10.78.0.0/24"
HOST_IP = "10.78.0.250"  # the plain container on this host
GUEST_DOCKER = ["/usr/bin/docker", "-H", "unix:///run/kcnm-docker.sock"]
GUEST_CONTAINERD = "/run/kcnm-containerd/containerd.sock"
PLUGIN_SOCK = "/run/docker/plugins/kuryr.sock"
KURYR_CNM = os.path.join(os.path.dirname(sys.executable), "kuryr-cnm")  # the project's venv, visible in the guest


@dataclass
class Guest:
    """The VM, its Neutron side, and what runs in it."""
    vm: Vm
    neutron_network: str
    vm_port: dict
    trunk: dict
    host_docker: Docker
    host_container: str
    tag: str
    nic: str = ""
    plugin_pid: int = 0
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)

    def docker(self, *args: str, check: bool = True, timeout: float = 180) -> str:
        return self.vm.run(*GUEST_DOCKER, *args, check=check, timeout=timeout)["out"]

    def start_plugin(self, driver: str) -> None:
        """kuryr-cnm in the guest with `driver` (vlan, ipvlan), serving once Plugin.Activate answers."""
        workdir = self.vm.workdir
        (workdir / "clouds.yaml").write_text(json.dumps({"clouds": {"vm": {
            "auth_type": "none", "auth": {"endpoint": f"http://{NEUTRON_IN_GUEST}:{NEUTRON_PORT}"},
            "network_endpoint_override": f"http://{NEUTRON_IN_GUEST}:{NEUTRON_PORT}/", "region_name": "RegionOne"}}}))
        (workdir / "kuryr.conf").write_text(f"""[DEFAULT]
kuryr_uri = unix://{PLUGIN_SOCK}
host = kcnmt-vm-{self.tag}
default_port_driver = {driver}
reconcile_interval = 20
reconcile_grace = 60

[binding]
vm_port_id = {self.vm_port['id']}

[neutron]
cloud = vm
default_subnetpool_v4 = kuryr
default_subnetpool_v6 = kuryr6
""")
        self.plugin_pid = self.vm.spawn(KURYR_CNM, "serve", "--config-file", str(workdir / "kuryr.conf"),
                                        log=str(workdir / f"kuryr-cnm-{driver}.log"),
                                        env={"OS_CLIENT_CONFIG_FILE": str(workdir / "clouds.yaml")})
        # Python's imports over the VM's 9p root take 1 to 4 minutes under TCG (4 min 20 s once,
        # with the host busy); a start that does not answer is killed, so that it cannot read
        # the next test's kuryr.conf and take its socket (seen: the ipvlan plugin, still
        # importing when its wait ran out, served the crash test with the vlan config)
        try:
            host.wait_for(lambda: self._plugin_answers(driver), timeout=600, interval=3,
                          what=f"kuryr-cnm ({driver}) in the VM to answer")
        except BaseException:
            self.stop_plugin("KILL")
            raise

    def _plugin_answers(self, driver: str) -> bool:
        if self.vm.run("kill", "-0", str(self.plugin_pid), check=False)["rc"] != 0:
            log = (self.vm.workdir / f"kuryr-cnm-{driver}.log").read_text(errors="replace")
            raise AssertionError(f"kuryr-cnm ({driver}) exited in the VM:\n{log[-3000:]}")
        out = self.vm.run("curl", "-sf", "--unix-socket", PLUGIN_SOCK, "-X", "POST", "http://plugin/Plugin.Activate",
                          check=False)
        return out["rc"] == 0 and "NetworkDriver" in out["out"]

    @contextmanager
    def serving(self, driver: str) -> Iterator[None]:
        """kuryr-cnm (`driver`) in the VM for a test; afterwards the test's containers and
        networks removed while it still runs, then it stops. A failed clean-up after a failed
        test is printed, not raised: the test's own error is the one to read."""
        self.start_plugin(driver)  # stops what it started if it fails
        try:
            yield
        except BaseException:
            try:
                self.clear()
            except Exception as exc:  # noqa: BLE001 - the test's failure comes first
                print(f"clean-up after the failure failed too: {exc}")
            self.stop_plugin()
            raise
        self.clear()
        self.stop_plugin()

    def alias(self, container: str) -> str:
        """The alias of the container's eth0: kuryr-cnm's record of its port and endpoint."""
        return self.exec(container, "cat", "/sys/class/net/eth0/ifalias")["out"].strip()

    def stop_plugin(self, signal: str = "TERM") -> None:
        """`signal`, then SIGKILL if it has not ended within 20 s; gone either way."""
        if self.plugin_pid:
            pid = self.plugin_pid
            self.vm.sh(f"kill -{signal} {pid}; for i in $(seq 1 100); do [ -d /proc/{pid} ] || exit 0; sleep 0.2; "
                       f"done; kill -KILL {pid}; for i in $(seq 1 50); do [ -d /proc/{pid} ] || exit 0; sleep 0.2; "
                       "done; exit 1")
            self.plugin_pid = 0

    def run(self, name: str, network: str, *args: str) -> str:
        full = f"kcnmt-{name}-{self.tag}"
        self.docker("run", "-d", "--name", full, "--network", network, *args, host.TEST_IMAGE, "sleep", "3600",
                    timeout=240)
        self.containers.append(full)
        return full

    def rm(self, *names: str) -> None:
        if names:
            self.docker("rm", "-f", *names, timeout=240)
        for name in names:
            self.containers.remove(name)

    def clear(self) -> None:
        """Remove the containers and networks the tests made in the VM (while its plugin runs)."""
        if self.containers:
            self.rm(*self.containers)
        for network in list(self.networks):
            self.docker("network", "rm", network)
            self.networks.remove(network)

    def ip(self, container: str, network: str) -> str:
        fmt = "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % network
        return self.docker("inspect", "-f", fmt, container).strip()

    def exec(self, container: str, *cmd: str, check: bool = True, timeout: float = 60) -> dict:
        return self.vm.run(*GUEST_DOCKER, "exec", container, *cmd, check=check, timeout=timeout)

    def links(self, kind: str) -> list[str]:
        """The guest's devices of a link kind (vlan, ipvlan, macvlan)."""
        out = self.vm.run("ip", "-o", "-d", "link", "show", "type", kind, check=False)["out"]
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.strip()]


def _plug_tap(tap: str, port: dict, mtu: int) -> None:
    host.run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"])
    host.run(["ip", "link", "set", tap, "mtu", str(mtu), "up"])
    host.run(["ovs-vsctl", "--may-exist", "add-port", "br-int", tap, "--", "set", "Interface", tap,
              f"external_ids:iface-id={port['id']}", f"external_ids:attached-mac={port['mac_address']}",
              "external_ids:iface-status=active", f"external_ids:vm-uuid={port['device_id']}"])


def _unplug_tap(tap: str) -> None:
    host.run(["ovs-vsctl", "--if-exists", "del-port", "br-int", tap], check=False)
    host.run(["ip", "link", "del", tap], check=False)


def _guest_setup(guest: Guest, mtu: int) -> None:
    """What a VM image and cloud-init would do: the NIC configured, modules, dockerd, the image."""
    vm = guest.vm
    guest.nic = vm.sh(f"grep -il {guest.vm_port['mac_address']} /sys/class/net/*/address | cut -d/ -f5").strip()
    assert guest.nic, "the VM has no NIC with its Neutron port's MAC"
    vm_ip = guest.vm_port["fixed_ips"][0]["ip_address"]
    vm.sh(f"modprobe -a 8021q ipvlan macvlan overlay && ip link set {guest.nic} mtu {mtu} up && "
          f"ip addr add {vm_ip}/24 dev {guest.nic} && "
          "mkdir -p /var/lib/kcnm-docker /run/docker/plugins && mount -t tmpfs -o size=2g tmpfs /var/lib/kcnm-docker")
    # containerd first, on its own: dockerd 20.10 gives the containerd it starts itself a fixed
    # few seconds, which TCG emulation on a busy host overran ("timeout waiting for containerd")
    vm.spawn("/usr/bin/containerd", "--root", "/var/lib/kcnm-docker/containerd", "--state", "/run/kcnm-containerd",
             "--address", GUEST_CONTAINERD, log=str(vm.workdir / "containerd.log"))
    host.wait_for(lambda: vm.run("ctr", "--address", GUEST_CONTAINERD, "version", check=False)["rc"] == 0,
                  timeout=180, interval=2, what="containerd in the VM")
    vm.spawn("/usr/sbin/dockerd", "--containerd", GUEST_CONTAINERD,
             "--data-root", "/var/lib/kcnm-docker", "--exec-root", "/run/kcnm-docker-exec",
             "--host", "unix:///run/kcnm-docker.sock", "--pidfile", "/run/kcnm-docker.pid",
             "--storage-driver", "overlay2", "--bridge=none", "--iptables=false", "--ip6tables=false",
             "--ip-masq=false", "--ip-forward=false", "--userland-proxy=false",
             log=str(vm.workdir / "dockerd.log"))
    host.wait_for(lambda: vm.run(*GUEST_DOCKER, "version", check=False)["rc"] == 0, timeout=120, interval=2,
                  what="dockerd in the VM")
    image = vm.workdir / "image.tar"
    host.docker("docker20", "save", "-o", str(image), host.TEST_IMAGE)
    guest.docker("load", "-i", str(image), timeout=240)


@pytest.fixture(scope="module")
def guest(neutron) -> Iterator[Guest]:
    tag = uuid.uuid4().hex[:6]
    before = Snapshot.take(neutron)
    host_docker = Docker("docker20", tag)
    tap = f"tapkcnm{tag}"
    vm: Vm | None = None
    made: list[tuple[str, str]] = []  # (Neutron path, id), deleted last-in first-out
    try:
        network = host_docker.network("nested", "--subnet", SUBNET)
        docker_id = host_docker.inspect(network, "{{.Id}}")
        (net,) = neutron.get("/networks", params={"tags": f"kuryr.net.uuid.lh:{docker_id[:32]}"}).json()["networks"]
        host_container = host_docker.run("hostc", network, "--ip", HOST_IP)
        port = neutron.post("/ports", json={"port": {
            "network_id": net["id"], "name": f"kcnmt-vm-{tag}", "device_owner": "compute:nova",
            "device_id": f"kcnmt-vm-{tag}", "binding:host_id": host.hostname_id()}}).json()["port"]
        made.append(("/ports", port["id"]))
        trunk = neutron.post("/trunks", json={"trunk": {"port_id": port["id"],
                                                        "name": f"kcnmt-vm-{tag}"}}).json()["trunk"]
        made.append(("/trunks", trunk["id"]))
        _plug_tap(tap, port, net["mtu"])
        host.wait_for(lambda: neutron.get(f"/ports/{port['id']}").json()["port"]["status"] == "ACTIVE", timeout=60,
                      interval=1, what="the VM's port to be ACTIVE")
        vm = Vm(tag, tap, port["mac_address"])
        vm.start()
        g = Guest(vm, net["id"], port, trunk, host_docker, host_container, tag)
        _guest_setup(g, net["mtu"])
        yield g
        g.clear()
        g.stop_plugin()
    finally:
        if vm is not None:
            vm.stop()
            print(f"\nVM {tag} ({'KVM' if vm.kvm else 'TCG'}): console tail\n{vm.tail(10)}")
            _keep_logs(vm)
            vm.remove()
        _unplug_tap(tap)
        for path, ident in reversed(made):
            neutron.delete(f"{path}/{ident}")
        host_docker.cleanup()
    assert_nothing_left(neutron, before, settle=30)
    assert not host.link_exists(tap)


LOG_KEPT = Path("/opt/kuryr-cnm/log/nested-vm")


def _keep_logs(vm: Vm) -> None:
    """The last VM's logs (kuryr-cnm per driver, dockerd, containerd, console) outlive it."""
    shutil.rmtree(LOG_KEPT, ignore_errors=True)
    LOG_KEPT.mkdir(parents=True, exist_ok=True)
    for log in vm.workdir.glob("*.log"):
        shutil.copy(log, LOG_KEPT / log.name)


CALL_LINE = re.compile(r"kuryr_cnm\.calls (\S+) .* -> ok \((\d+) ms\) \[neutron: (.*)\]$")


def call_figures(guest: Guest, driver: str, method: str) -> tuple[list[int], list[int]]:
    """From the VM's kuryr-cnm log for `driver`: each successful `method` call's time (ms) and
    its number of Neutron requests."""
    times, requests = [], []
    for line in (guest.vm.workdir / f"kuryr-cnm-{driver}.log").read_text(errors="replace").splitlines():
        m = CALL_LINE.search(line)
        if m and m.group(1) == method:
            times.append(int(m.group(2)))
            requests.append(0 if m.group(3) == "none" else m.group(3).count(";") + 1)
    return times, requests


def guest_network(guest: Guest, name: str) -> str:
    """A Docker network in the VM on the VM's Neutron network (nested mode adopts it)."""
    full = f"kcnmt-{name}-{guest.tag}"
    guest.docker("network", "create", "-d", "kuryr", "--ipam-driver", "kuryr", "--subnet", SUBNET, full)
    guest.networks.append(full)
    return full

