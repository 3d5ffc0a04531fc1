"""`kuryr-cnm gc` (one reconciler pass) against the real Neutron, OVS and kernel: it removes
what kuryr-cnm left behind on this host, repairs what an endpoint still owns, and never
touches what it did not make."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests import host

pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.fixture
def gc(tmp_path):
    """Run `kuryr-cnm gc` with the stack's kuryr.conf (host.KURYR_CONF) and reconcile_grace = 0."""
    conf = tmp_path / "gc.conf"
    conf.write_text("[DEFAULT]\nreconcile_grace = 0\n")

    def run(*args: str) -> str:
        exe = os.path.join(os.path.dirname(sys.executable), "kuryr-cnm")
        proc = subprocess.run([exe, "gc", "--config-file", host.KURYR_CONF,
                               "--config-file", str(conf), *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout
    return run


def _port_of(neutron, ep: dict) -> dict:
    ip = ep["address"].split("/")[0]
    ports = neutron.get("/ports", params={"fixed_ips": f"ip_address={ip}", "device_owner": "compute:kuryr"}
                        ).json()["ports"]
    return next(p for p in ports if p["binding:host_id"] == host.hostname_id())


def test_unplugs_what_lost_its_neutron_port(docker_like, neutron, gc):
    net = docker_like.create_network("10.62.0.0/24")
    ep = docker_like.start(net)
    port = _port_of(neutron, ep)
    tap = "tap" + port["id"][:11]
    neutron.delete(f"/ports/{port['id']}")  # behind kuryr-cnm's back
    # the stack's own plugin reconciles every 20 s as well: it may unplug it first
    assert tap in gc("--dry-run") or not host.link_exists(tap)
    gc()
    assert not host.link_exists(tap) and tap not in host.ovs_ports()
    docker_like.stop(ep)  # Docker's teardown still succeeds
    docker_like.delete_network(net)


def test_deletes_an_allocation_nothing_holds_and_repairs_lost_tags(docker_like, neutron, gc):
    net = docker_like.create_network("10.62.1.0/24")
    ep = docker_like.start(net)
    plugged = _port_of(neutron, ep)
    host.wait_for(lambda: neutron.get(f"/ports/{plugged['id']}").json()["port"]["device_id"] == ep["id"],
                  timeout=15, what="background write")
    neutron.put(f"/ports/{plugged['id']}/tags", json={"tags": []})  # as if the write had been lost
    neutron.put(f"/ports/{plugged['id']}", json={"port": {"device_id": ""}})
    # an address Docker asked for and never used (a start cut short)
    orphan = docker_like.ok("IpamDriver.RequestAddress", {"PoolID": net["pools"][0], "Address": "", "Options": None})
    orphan_ip = orphan["Address"].split("/")[0]
    orphan_id = neutron.get("/ports", params={"fixed_ips": f"ip_address={orphan_ip}",
                                              "network_id": plugged["network_id"]}).json()["ports"][0]["id"]
    # the running plugin holds that allocation in memory; gc (another process) does not
    out = gc()
    repaired, deleted = out.split("repair")[1].split("delete")
    assert plugged["id"] in repaired and orphan_id in deleted, out
    fixed = neutron.get(f"/ports/{plugged['id']}").json()["port"]
    assert fixed["device_id"] == ep["id"] and f"kuryr.net.uuid.lh:{ep['id'][:32]}" in fixed["tags"]
    assert not neutron.get("/ports", params={"fixed_ips": f"ip_address={orphan_ip}",
                                             "network_id": plugged["network_id"]}).json()["ports"]
    docker_like.ok("IpamDriver.ReleaseAddress", {"PoolID": net["pools"][0], "Address": orphan_ip})
    docker_like.stop(ep)
    docker_like.delete_network(net)


def test_never_touches_what_kuryr_cnm_did_not_make(neutron, cleanup, unique, host_id, gc):
    net = neutron.post("/networks", json={"network": {"name": f"kcnmt-foreign-{unique}"}}).json()["network"]
    cleanup(lambda: neutron.delete(f"/networks/{net['id']}"))
    sub = neutron.post("/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.62.2.0/24",
                                                    "ip_version": 4}}).json()["subnet"]
    # kuryr-libnetwork's and an operator's ports bound to this host: same owner and name, no kuryr-cnm mark
    foreign = [neutron.post("/ports", json={"port": {
        "network_id": net["id"], "name": "kuryr-unbound-port", "device_owner": "compute:kuryr",
        "binding:host_id": host_id, "fixed_ips": [{"subnet_id": sub["id"]}]}}).json()["port"] for _ in range(2)]
    # another kuryr-cnm on this host (another plugin name): its mark, not ours
    foreign.append(neutron.post("/ports", json={"port": {
        "network_id": net["id"], "name": "kuryr-unbound-port", "device_owner": "compute:kuryr",
        "description": f"created by kuryr-cnm kcnmother@{host_id}",
        "binding:host_id": host_id, "fixed_ips": [{"subnet_id": sub["id"]}]}}).json()["port"])
    for p in foreign:
        cleanup(lambda p=p: neutron.delete(f"/ports/{p['id']}"))
    # a veth of another tool named like ours, attached to nothing, for a port bound here
    live = "tap" + foreign[0]["id"][:11]
    host.run(["ip", "link", "add", live, "type", "veth", "peer", "name", "kcp" + uuid.uuid4().hex[:8]])
    cleanup(lambda: host.run(["ip", "link", "del", live], check=False))
    out = gc()
    for p in foreign:
        assert p["id"] not in out
    for p in foreign:
        assert neutron.get(f"/ports/{p['id']}").status_code == 200
    assert host.link_exists(live)


def test_removes_a_stray_veth_of_a_plug_cut_short(gc):
    stray = "tap" + uuid.uuid4().hex[:8] + "-ab"
    host.run(["ip", "link", "add", stray, "type", "veth", "peer", "name", "t_c" + stray[3:]])
    try:
        gc()
        assert not host.link_exists(stray)
    finally:
        host.run(["ip", "link", "del", stray], check=False)
