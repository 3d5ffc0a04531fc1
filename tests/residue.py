"""Sweep what an interrupted test run left on the shared stack, before a run starts.

A test session that is killed (a developer's session ends, CI times out) leaves its
Docker containers and networks, its plugins' Neutron networks, subnets, subnetpools and
ports. Tests compare snapshots, so old residue rarely fails them, but it piles up run
after run, takes addresses from the test ranges, and makes the stack hard to read.

Only test-made things go, and only while no other pytest runs on this host:
* Docker containers and networks named kcnmt-* (networks only when their driver answers);
* Neutron networks named kcnmt-*, and networks kuryr made (kuryr-net-*; never an adopted
  one) whose Docker network exists on no engine, with their ports, subnets and
  kuryrPool-* subnetpools;
* kuryrPool-* subnetpools no subnet uses;
* ports a test plugin (kcnm*) made whose plugin process is gone;
* the nested tier's VMs (tests/nested/vm.py: QEMU processes of /tmp/kcnm-vm-* and those
  folders), their taps (tapkcnm*) and their trunks (kcnmt-vm-*), so that their ports can go.
Anything younger than AGE_S is left alone: it may be mid-creation.
"""
from __future__ import annotations

import datetime
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from tests import host

AGE_S = 120
ID_LH_TAG = "kuryr.net.uuid.lh:"
ID_UH_TAG = "kuryr.net.uuid.uh:"
OWNER_MARKS = ("created by kuryr-cnm ", "kuryr-cnm port pool of ")


def _other_pytest_running(procs: dict[int, host.Process]) -> bool:
    ours, pid = set(), os.getpid()
    while pid in procs and pid not in ours:
        ours.add(pid)
        pid = procs[pid].ppid
    return any(pid not in ours and any(a.endswith("pytest") or a == "pytest" for a in p.argv[:3])
               for pid, p in procs.items())


def _live_plugins(procs: dict[int, host.Process]) -> set[str]:
    """Names of the kuryr-cnm plugins running here (a test plugin's config is <name>.conf)."""
    names = set()
    for p in procs.values():
        if any("kuryr-cnm" in a or "kuryr_cnm" in a for a in p.argv[:3]):
            names.update(Path(a).stem for a in p.argv if a.endswith(".conf"))
    return names


def _old(item: dict[str, Any], now: datetime.datetime) -> bool:
    created = datetime.datetime.fromisoformat(str(item["created_at"]).replace("Z", "+00:00"))
    return (now - created).total_seconds() >= AGE_S


BUILTIN_DRIVERS = ("bridge", "host", "null", "overlay", "macvlan", "ipvlan")


def _docker_sweep(swept: list[str]) -> set[str] | None:
    """Remove kcnmt-* containers and networks; return the ids of every Docker network left,
    or None when an engine does not answer (then no network can be judged gone)."""
    network_ids: set[str] = set()
    for engine in host.all_engines():
        names = host.docker(engine, "ps", "-a", "--format", "{{.Names}}", check=False).stdout.split()
        for name in (n for n in names if n.startswith("kcnmt-")):
            host.docker(engine, "rm", "-f", name, check=False)
            swept.append(f"{engine} container {name}")
        listing = host.docker(engine, "network", "ls", "--no-trunc", "--format", "{{.ID}} {{.Name}} {{.Driver}}",
                              check=False)
        if listing.returncode != 0:
            return None
        for line in listing.stdout.splitlines():
            net_id, name, driver = line.split()
            # a network whose plugin is gone would make Docker wait for it
            answers = driver in BUILTIN_DRIVERS or host.plugin_socket(engine, driver).exists()
            if name.startswith("kcnmt-") and answers and host.docker(
                    engine, "network", "rm", name, check=False).returncode == 0:
                swept.append(f"{engine} network {name}")
                continue
            network_ids.add(net_id)
    return network_ids


def _is_leftover_network(net: dict[str, Any], docker_ids: set[str] | None) -> bool:
    name, tags = net.get("name") or "", net.get("tags") or []
    if name.startswith("kcnmt-"):
        return True
    if docker_ids is None or not name.startswith("kuryr-net-"):
        return False  # an adopted network keeps its own name, and is never kuryr's to delete
    lh = [t[len(ID_LH_TAG):] for t in tags if t.startswith(ID_LH_TAG)]
    uh = [t[len(ID_UH_TAG):] for t in tags if t.startswith(ID_UH_TAG)]
    if lh and uh:
        return lh[0] + uh[0] not in docker_ids
    # kuryr's name for a Docker network whose tags never landed (killed mid-CreateNetwork)
    return not any(i.startswith(name[len("kuryr-net-"):]) for i in docker_ids)


def _vm_sweep(neutron: Any, procs: dict[int, host.Process], now: datetime.datetime, swept: list[str]) -> None:
    for pid, proc in procs.items():
        if any(a.startswith("/tmp/kcnm-vm-") or ",ifname=tapkcnm" in a or a == "kcnm-kvm-probe" for a in proc.argv):
            try:
                os.kill(pid, signal.SIGKILL)
                swept.append(f"VM process {pid}")
            except ProcessLookupError:
                pass
    for folder in Path("/tmp").glob("kcnm-vm-*"):
        shutil.rmtree(folder, ignore_errors=True)
    for tap in (n for n in host.host_links() if n.startswith("tapkcnm")):
        host.run(["ovs-vsctl", "--if-exists", "del-port", "br-int", tap], check=False)
        host.run(["ip", "link", "del", tap], check=False)
        swept.append(f"tap {tap}")
    for trunk in neutron.get("/trunks").json()["trunks"]:
        if (trunk.get("name") or "").startswith("kcnmt-vm-") and _old(trunk, now):
            _delete(neutron, "trunks", trunk, swept)


def _delete(neutron: Any, path: str, item: dict[str, Any], swept: list[str]) -> None:
    if neutron.delete(f"/{path}/{item['id']}").status_code in (204, 404):
        swept.append(f"{path} {item.get('name') or ''} {item['id']}".replace("  ", " "))


def sweep(neutron: Any) -> list[str]:
    """Remove an interrupted run's residue (see the module's docstring); returns what went."""
    procs = {pid: p for pid, p in host.processes().items() if p.state != "Z"}
    if _other_pytest_running(procs):
        return []
    swept: list[str] = []
    now = datetime.datetime.now(datetime.timezone.utc)
    _vm_sweep(neutron, procs, now, swept)
    docker_ids = _docker_sweep(swept)
    live = _live_plugins(procs)
    get = lambda path, key: neutron.get(path).json()[key]  # noqa: E731
    networks = {n["id"] for n in get("/networks", "networks")
                if _old(n, now) and _is_leftover_network(n, docker_ids)}
    for port in get("/ports", "ports"):
        description = port.get("description") or ""
        owner = next((description[len(m):] for m in OWNER_MARKS if description.startswith(m)), "")
        plugin = owner.split("@", 1)[0]
        dead_test_plugin = plugin.startswith("kcnm") and plugin not in live
        if (port["network_id"] in networks and not (port.get("device_owner") or "").startswith("network:")) \
                or (dead_test_plugin and _old(port, now)):
            _delete(neutron, "ports", port, swept)
    for subnet in get("/subnets", "subnets"):
        if subnet["network_id"] in networks:
            _delete(neutron, "subnets", subnet, swept)
    for net in get("/networks", "networks"):
        if net["id"] in networks:
            _delete(neutron, "networks", net, swept)
    used = {s.get("subnetpool_id") for s in get("/subnets", "subnets")}
    for pool in get("/subnetpools", "subnetpools"):
        if pool["name"].startswith("kuryrPool-") and pool["id"] not in used and _old(pool, now):
            _delete(neutron, "subnetpools", pool, swept)
    return swept
