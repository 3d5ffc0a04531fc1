"""Prove nested mode's two datapaths on the all-in-one stack, without kuryr-cnm or Docker.

    .venv/bin/python -m tests.nested.prove_datapath

The "VM" is this host: its NIC is a veth whose host end is plugged into br-int as a
Neutron port bound here (the parent, as Nova would plug a VM's tap), and whose other
end plays the VM's NIC (link_iface). Then:

* vlan:    a trunk on the parent, one subport (VLAN 101); a VLAN child of link_iface
           with the subport's MAC and address, moved into a namespace ("a container"),
           pings and talks TCP to a plain port plugged into br-int.
* macvlan: a port holding the container's address, the address in the parent's
           allowed_address_pairs; a macvlan child of link_iface with the port's MAC
           and address does the same.

Findings on this stack (Neutron 29, ML2/OVN, userspace OVS, kernel 6.18 without 802.1Q):
* trunk + subport: the subport gets device_owner trunk:subport, vif_type ovs and the parent's status;
  a second subport with the same VLAN id is a 409; traffic tagged 101 on link_iface reaches the
  network as the subport. The kernel has no VLAN devices (CONFIG_VLAN_8021Q unset), so the VM's
  tagging is done here by a userspace OVS bridge.
* allowed address pairs on a bound parent: a pair with the container port's own (fa:16:3e) MAC is
  refused (InvalidVirtualMACAddress: ML2/OVN takes any MAC other than the port's for a VRRP MAC and
  accepts only 00:00:5e:00:01:xx); a pair with the parent's MAC is accepted but the macvlan child,
  which cannot have its lower device's MAC, is dropped by port security. A container port with a
  VRRP-range MAC, in the pairs with that MAC, works: OVN makes it a virtual port bound to the parent.
* PUT with If-Match: revision_number=<stale> is a 412.

It prints what works and what Neutron refuses, removes everything it made, and exits
non-zero if a datapath does not work.
"""
from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable

import openstack

from kuryr_cnm.binding.nested import vlan_supported
from tests import host

CIDR_BASE = "10.231"
VLAN = 101
TCP_SERVER = ("import socket; s = socket.socket(); s.settimeout(10); s.bind(('', 7777)); s.listen(); "
              "c, _ = s.accept(); c.settimeout(5); print(c.recv(100).decode())")
TCP_CLIENT = "import socket; socket.create_connection(('%s', 7777), timeout=5).sendall(b'%s')"


class Proof:
    def __init__(self) -> None:
        self.net = openstack.connect(cloud=host.NEUTRON_CLOUD).network
        self.tag = uuid.uuid4().hex[:6]
        self.undo: list[Callable[[], object]] = []
        self.results: dict[str, str] = {}
        self.host_id = host.hostname_id()

    # -- Neutron --
    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> dict:
        resp = self.net.request(path, method, json=body, headers=headers or {}, raise_exc=False)
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:400]}")
        return resp.json() if resp.content else {}

    def port(self, name: str, **attrs: object) -> dict:
        port = self.call("POST", "/ports", {"port": {"network_id": self.network_id, "name": f"kcnm-prove-{name}",
                                                     **attrs}})["port"]
        self.undo.append(lambda: self.net.delete(f"/ports/{port['id']}"))  # 404 is fine
        return port

    # -- host --
    def plug(self, port: dict, host_end: str, other_end: str) -> None:
        """A veth into br-int as Nova/os-vif plugs a VM tap: ovn-controller claims it by iface-id."""
        host.run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", other_end])
        self.undo.append(lambda: host.run(["ip", "link", "del", host_end], check=False))
        host.run(["ip", "link", "set", other_end, "address", port["mac_address"]])
        for dev in (host_end, other_end):
            # the userspace datapath does not complete partial checksums
            host.run(["ethtool", "-K", dev, "tx", "off"], check=False)
            host.run(["ip", "link", "set", dev, "up"])
        host.run(["ovs-vsctl", "--may-exist", "add-port", "br-int", host_end, "--", "set", "Interface", host_end,
                  f"external_ids:iface-id={port['id']}", f"external_ids:attached-mac={port['mac_address']}",
                  "external_ids:iface-status=active", f"external_ids:vm-uuid=kcnm-prove-{self.tag}"])
        self.undo.append(lambda: host.run(["ovs-vsctl", "--if-exists", "del-port", "br-int", host_end]))

    def ovs_tagger(self, link_iface: str, child: str, mac: str, t: str) -> str:
        bridge = f"kpvb{t}"
        host.run(["ovs-vsctl", "add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev"])
        self.undo.append(lambda: host.run(["ovs-vsctl", "--if-exists", "del-br", bridge]))
        host.run(["ovs-vsctl", "add-port", bridge, link_iface])
        host.run(["ip", "link", "add", f"{child}h", "type", "veth", "peer", "name", child])
        self.undo.append(lambda: host.run(["ip", "link", "del", f"{child}h"], check=False))
        host.run(["ip", "link", "set", child, "address", mac])
        for dev in (f"{child}h", child):
            host.run(["ethtool", "-K", dev, "tx", "off"], check=False)
            host.run(["ip", "link", "set", dev, "up"])
        host.run(["ovs-vsctl", "add-port", bridge, f"{child}h", f"tag={VLAN}"])
        return child

    def into_netns(self, dev: str, ns: str, ip: str) -> None:
        host.netns_add(ns)
        self.undo.append(lambda: host.netns_del(ns))
        host.run(["ip", "link", "set", dev, "netns", ns])
        host.netns_exec(ns, "ip", "addr", "add", f"{ip}/24", "dev", dev)
        host.netns_exec(ns, "ip", "link", "set", dev, "up")

    def wait_active(self, port_id: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            status = self.call("GET", f"/ports/{port_id}")["port"]["status"]
            if status == "ACTIVE":
                break
            time.sleep(0.5)
        return status

    def reach(self, ns: str, peer_ns: str, peer_ip: str) -> str:
        for each in (ns, peer_ns):
            host.run(["ip", "netns", "exec", each, "ip", "neigh", "flush", "all"], check=False)
        ping = host.netns_exec(ns, "busybox", "ping", "-c", "3", "-W", "2", peer_ip, check=False)
        # TCP: a one-shot listener in the plain namespace, a line sent from ns
        import subprocess
        listener = subprocess.Popen(["ip", "netns", "exec", peer_ns, sys.executable, "-c", TCP_SERVER],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(0.5)
        host.netns_exec(ns, sys.executable, "-c", TCP_CLIENT % (peer_ip, f"hello-{ns}"), check=False)
        try:
            got = listener.communicate(timeout=12)[0]
        except subprocess.TimeoutExpired:
            listener.kill()
            got = ""
        return f"ping {'ok' if ping.returncode == 0 else 'FAILED'}, tcp {'ok' if f'hello-{ns}' in got else 'FAILED'}"

    # -- the proof --
    def run(self) -> int:
        try:
            self._run()
        finally:
            if os.environ.get("KEEP"):
                print("KEEP: resources kept for 300 s", flush=True)
                time.sleep(300)
            for action in reversed(self.undo):
                try:
                    action()
                except Exception as exc:  # keep undoing
                    print(f"cleanup: {exc}", file=sys.stderr)
        for key, value in self.results.items():
            print(f"{key:28} {value}")
        return 0 if all("FAILED" not in v for k, v in self.results.items() if k.endswith("datapath")) else 1

    def _run(self) -> None:
        t = self.tag
        cidr = f"{CIDR_BASE}.{int(t[:2], 16) % 250}.0/24"
        prefix = cidr.rsplit(".", 1)[0]
        network = self.call("POST", "/networks", {"network": {"name": f"kcnm-prove-{t}"}})["network"]
        self.network_id = network["id"]
        self.undo.append(lambda: self.call("DELETE", f"/networks/{network['id']}"))
        subnet = self.call("POST", "/subnets", {"subnet": {"network_id": network["id"], "cidr": cidr,
                                                           "ip_version": 4, "enable_dhcp": False}})["subnet"]
        bound = {"binding:host_id": self.host_id, "device_owner": "compute:nova"}
        parent = self.port("parent", fixed_ips=[{"subnet_id": subnet["id"], "ip_address": f"{prefix}.10"}],
                           device_id=f"vm-{t}", **bound)
        plain = self.port("plain", fixed_ips=[{"subnet_id": subnet["id"], "ip_address": f"{prefix}.20"}],
                          device_id=f"plain-{t}", **bound)
        self.plug(parent, f"kpvh{t}", f"kpvv{t}")  # kpvv<tag> is link_iface
        self.plug(plain, f"kpph{t}", f"kppc{t}")
        self.into_netns(f"kppc{t}", f"kcnm-prove-plain-{t}", f"{prefix}.20")
        self.results["parent port"] = self.wait_active(parent["id"])
        self.results["plain port"] = self.wait_active(plain["id"])
        self.results["revision-if-match ext"] = str("revision-if-match" in {
            e["alias"] for e in self.call("GET", "/extensions")["extensions"]})
        self._vlan(parent, subnet, prefix, t)
        self._macvlan(parent, subnet, prefix, t)

    def _vlan(self, parent: dict, subnet: dict, prefix: str, t: str) -> None:
        sub = self.port("subport", fixed_ips=[{"subnet_id": subnet["id"], "ip_address": f"{prefix}.30"}])
        trunk = self.call("POST", "/trunks", {"trunk": {"port_id": parent["id"], "name": f"kcnm-prove-{t}"}})["trunk"]
        self.undo.append(lambda: self.call("DELETE", f"/trunks/{trunk['id']}"))
        self.call("PUT", f"/trunks/{trunk['id']}/add_subports", {"sub_ports": [
            {"port_id": sub["id"], "segmentation_type": "vlan", "segmentation_id": VLAN}]})
        self.undo.append(lambda: self.call("PUT", f"/trunks/{trunk['id']}/remove_subports",
                                           {"sub_ports": [{"port_id": sub["id"]}]}))
        try:  # the same VLAN id twice: the Conflict kuryr-cnm retries on
            other = self.port("subport2", fixed_ips=[{"subnet_id": subnet["id"]}])
            self.call("PUT", f"/trunks/{trunk['id']}/add_subports", {"sub_ports": [
                {"port_id": other["id"], "segmentation_type": "vlan", "segmentation_id": VLAN}]})
            self.results["duplicate VLAN id"] = "accepted (!)"
        except RuntimeError as exc:
            self.results["duplicate VLAN id"] = str(exc).split(":", 2)[1].strip()[:40]
        child = f"kpvl{t}"
        if vlan_supported(f"kpvv{t}"):  # a dummy parent (not lo, which no kernel gives VLANs), or link_iface
            host.run(["ip", "link", "add", "link", f"kpvv{t}", "name", child, "address", sub["mac_address"],
                      "type", "vlan", "id", str(VLAN)])
            self.results["VLAN child device"] = "kernel 802.1Q"
        else:
            # This kernel has no 802.1Q (CONFIG_VLAN_8021Q unset, no modules): the VM's tagging is
            # done by a userspace OVS bridge instead, link_iface its trunk port and a veth its
            # access port for VLAN 101. The wire between the "VM" and br-int is the same.
            child = self.ovs_tagger(f"kpvv{t}", child, sub["mac_address"], t)
            self.results["VLAN child device"] = "emulated: no 802.1Q in this kernel, OVS bridge tags"
        self.into_netns(child, f"kcnm-prove-vlan-{t}", f"{prefix}.30")
        shown = self.call("GET", f"/ports/{sub['id']}")["port"]
        self.results["subport after add"] = (f"owner {shown['device_owner']}, host {shown['binding:host_id'] or '-'}, "
                                             f"vif {shown['binding:vif_type']}, status {self.wait_active(sub['id'], 10)}")
        self.results["vlan datapath"] = self.reach(f"kcnm-prove-vlan-{t}", f"kcnm-prove-plain-{t}", f"{prefix}.20")

    def _macvlan(self, parent: dict, subnet: dict, prefix: str, t: str) -> None:
        ip = f"{prefix}.40"
        cport = self.port("macvlan", fixed_ips=[{"subnet_id": subnet["id"], "ip_address": ip}])
        pairs_path = f"/ports/{parent['id']}"

        def put_pairs(pairs: list[dict], rev: int) -> None:
            self.call("PUT", pairs_path, {"port": {"allowed_address_pairs": pairs}},
                      headers={"If-Match": f"revision_number={rev}"})

        def revision() -> int:
            return self.call("GET", pairs_path)["port"]["revision_number"]
        try:
            put_pairs([{"ip_address": ip, "mac_address": cport["mac_address"]}], revision())
            self.results["pair with the port's MAC"] = "accepted"
        except RuntimeError as exc:
            self.results["pair with the port's MAC"] = "refused: " + str(exc).split('"type": "', 1)[-1][:60]
        rev = revision()
        put_pairs([{"ip_address": ip}], rev)  # the parent's MAC: accepted
        try:  # a stale revision: the 412 kuryr-cnm retries on
            put_pairs([], rev)
            self.results["stale If-Match"] = "accepted (!)"
        except RuntimeError as exc:
            self.results["stale If-Match"] = str(exc).split(":", 2)[1].strip()[:3] + " (refused)"
        # A VRRP MAC (RFC 5798, 00:00:5e:00:01:xx) is the only other MAC Neutron 29's OVN driver lets into a
        # bound port's pairs: try the container's port with one.
        put_pairs([], revision())
        self.call("DELETE", f"/ports/{cport['id']}")
        cport = self.port("macvlan-vrrp", mac_address=f"00:00:5e:00:01:{int(t[2:4], 16):02x}",
                          fixed_ips=[{"subnet_id": subnet["id"], "ip_address": ip}])
        put_pairs([{"ip_address": ip, "mac_address": cport["mac_address"]}], revision())
        mac = cport["mac_address"]
        self.undo.append(lambda: self.call("PUT", f"/ports/{parent['id']}", {"port": {"allowed_address_pairs": []}}))
        child = f"kpvm{t}"
        host.run(["ip", "link", "add", "link", f"kpvv{t}", "name", child, "address", mac,
                  "type", "macvlan", "mode", "bridge"])
        ns = f"kcnm-prove-macvlan-{t}"
        self.into_netns(child, ns, ip)
        host.netns_exec(ns, "busybox", "ping", "-c", "1", "-W", "1", f"{prefix}.20", check=False)  # ARP: binds the vport
        time.sleep(2)
        lsp = host.run(["ovn-nbctl", "--db=tcp:127.0.0.1:6641", "--columns=type,options", "list",
                        "Logical_Switch_Port", cport["id"]], check=False).stdout
        self.results["container LSP"] = " ".join(lsp.split())[:160]
        self.results["macvlan datapath"] = self.reach(ns, f"kcnm-prove-plain-{t}", f"{prefix}.20")
        self._macvlan_parent_mac_pair(parent, subnet, prefix, t, put_pairs, revision)

    def _macvlan_parent_mac_pair(self, parent: dict, subnet: dict, prefix: str, t: str, put_pairs, revision) -> None:
        """What Neutron does accept for a port's own MAC: a pair with the parent's MAC. The
        child still sends with its own MAC (a macvlan cannot take its lower device's), so the
        parent's port security drops it."""
        ip = f"{prefix}.41"
        cport = self.port("macvlan-own", fixed_ips=[{"subnet_id": subnet["id"], "ip_address": ip}])
        pairs = self.call("GET", f"/ports/{parent['id']}")["port"]["allowed_address_pairs"]
        put_pairs(pairs + [{"ip_address": ip}], revision())
        own = f"kpvo{t}"
        host.run(["ip", "link", "add", "link", f"kpvv{t}", "name", own, "address", cport["mac_address"],
                  "type", "macvlan", "mode", "bridge"])
        self.into_netns(own, f"kcnm-prove-ownmac-{t}", ip)
        self.results["macvlan, parent-MAC pair"] = self.reach(f"kcnm-prove-ownmac-{t}", f"kcnm-prove-plain-{t}",
                                                              f"{prefix}.20")


if __name__ == "__main__":
    sys.exit(Proof().run())
