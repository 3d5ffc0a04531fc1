"""Ownership: the one rule for "may kuryr-cnm delete this?", and the one place that deletes.

Many hosts share one Neutron, and kuryr-libnetwork, other kuryr-cnm instances (another host,
another plugin name on this host) and operators make resources beside us. So:
* a **port** is deleted only if this plugin on this host made it (its mark: the description it
  writes at creation, or its owner tag) and the reason for deleting fits the port's state; or
  if it is a port kuryr-libnetwork made here and Docker on this host released its address
  (after a swap back from kuryr-libnetwork). A port another kuryr-cnm marked, a port bound to
  another host and a port kuryr adopted (`kuryr.port.existing`, reset instead) never are.
* a **network, subnet or subnet pool** is deleted only when nothing uses it any more: no Docker
  network on any host (the `kuryr.net.uuid.lh:` tags on the Neutron network name each one), and
  only if kuryr made it (its kuryr name, and no `kuryr.subnetpool.existing` tag). What an
  operator made is never deleted, only untagged.

Every path that deletes (ReleaseAddress, ReleasePool, DeleteNetwork, RevokeExternalConnectivity,
the port pool, the reconciler, gc) calls `Ownership`; nothing else in kuryr-cnm deletes a Neutron resource.
"""
from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kuryr_cnm import errors, naming
from kuryr_cnm.neutron import Network, NeutronClient, Port, Subnet, SubnetPool

LOG = logging.getLogger(__name__)

class Why(enum.Enum):
    """Why a port is to be deleted: the rule depends on it."""
    RELEASED = "Docker released its address"
    LOST = "an address no endpoint took (its answer was lost on the way to Docker)"
    UNHELD = "nothing on this host holds it"
    POOL = "an idle pool port"


@dataclass(frozen=True)
class Owner:
    """This plugin on this host: the mark on what it makes."""
    host: str
    plugin_name: str

    @property
    def mark(self) -> str:
        return naming.owner(self.host, self.plugin_name)

    def made(self, port: Port) -> bool:
        """The port carries this plugin's mark."""
        description = port.raw.get("description") or ""
        return (naming.cnm_owner_tag(self.mark) in port.tags
                or description in (naming.cnm_description(self.mark), naming.pool_description(self.mark)))

    def made_pool_port(self, port: Port) -> bool:
        """An idle port of this plugin's pool, as Neutron lists it (never handed out)."""
        return (not port.device_id and port.name == naming.POOL_PORT_NAME
                and port.raw.get("description") == naming.pool_description(self.mark))


def marked_by_another(port: Port, owner: Owner) -> bool:
    """Another kuryr-cnm's mark (another host, or another plugin name on this host)."""
    description = port.raw.get("description") or ""
    return not owner.made(port) and (
        any(t.startswith(naming.CNM_OWNER_TAG) for t in port.tags)
        or description.startswith(("created by kuryr-cnm ", "kuryr-cnm port pool of ")))


def legacy_kuryr_port(port: Port) -> bool:
    """kuryr-libnetwork's IPAM ports: tagged compute:kuryr, or (no tag support) named
    `<device_id>-port`; kuryr's names with kuryr's device_owner when the tags were lost."""
    return (naming.DEVICE_OWNER in port.tags
            or (port.name in (naming.UNBOUND_PORT_NAME, naming.POOL_PORT_NAME)
                and port.device_owner == naming.DEVICE_OWNER)
            or (bool(port.device_id) and port.name == f"{port.device_id}-port"))


def may_delete_port(port: Port, owner: Owner, why: Why, held: Collection[str] = ()) -> bool:
    """The rule. `held`: the port ids this process holds for Docker (handed out, plugged, pooled)."""
    if naming.PORT_EXISTING_TAG in port.tags:
        return False  # adopted: given back as it was, never deleted
    if port.host_id and port.host_id != owner.host:
        return False  # bound to another host: that host's to judge
    if owner.made(port):
        if why is Why.POOL:
            return owner.made_pool_port(port)
        if why is Why.RELEASED:
            return True
        if port.id in held or port.name == naming.POOL_PORT_NAME:
            return False  # the pool's own (Why.POOL), or held here
        return why is Why.UNHELD or not port.device_id  # LOST: no endpoint ever took it
    if marked_by_another(port, owner):
        return False
    # kuryr-libnetwork's port, here or unbound: only Docker on this host releasing it says it is done
    return why is Why.RELEASED and legacy_kuryr_port(port)


# --- networks, subnets, subnet pools -------------------------------------------------------

def docker_users(network: Network) -> list[str]:
    """The Docker networks (on any host, of any kuryr) that use a Neutron network: one
    `kuryr.net.uuid.lh:` tag each (its first 32 characters)."""
    return [t[len(naming.ID_LH_TAG):] for t in network.tags if t.startswith(naming.ID_LH_TAG)]


def made_network(network: Network) -> bool:
    """kuryr made it (CreateNetwork, or RequestPool's pending network): its name says so."""
    return network.name.startswith(naming.NET_NAME_PREFIX)


def made_subnet(subnet: Subnet) -> bool:
    return subnet.name.startswith(naming.SUBNET_NAME_PREFIX)


def made_subnetpool(pool: SubnetPool, name_prefix: str) -> bool:
    """A `kuryrPool-<cidr>` kuryr made, not one it adopted (`neutron.pool.*`)."""
    return pool.name.startswith(name_prefix + "-") and naming.SUBNETPOOL_EXISTING_TAG not in pool.tags


# A network whose last Docker network is leaving is claimed first, with a conditional write
# (If-Match on its revision, which every tag change moves on): of that claim and another host's
# Docker network joining it, exactly one wins. Only then do its subnets, pools and itself go.
DELETING_PREFIX = "kuryr-cnm: deleting for the last Docker network, by "
CLAIM_EXPIRES = 300.0  # seconds: the claim of a plugin that died while deleting stops counting
CLAIM_ATTEMPTS = 3


def deletion_claim(network: Network, now: float | None = None) -> str | None:
    """Who is deleting `network` (their mark), if a live claim is on it."""
    if not network.description.startswith(DELETING_PREFIX):
        return None
    who, _, since = network.description[len(DELETING_PREFIX):].rpartition(" at ")
    try:
        started = float(since)
    except ValueError:
        return who or "another kuryr-cnm"
    return who if (time.time() if now is None else now) - started < CLAIM_EXPIRES else None


def tags_without_user(tags: Iterable[str], docker_id: str) -> list[str]:
    """A network's tags once Docker network `docker_id` no longer uses it (on any host)."""
    mine = set(naming.id_tags(docker_id)) | {naming.network_existing_tag(docker_id)}
    suffix = f":{docker_id[:12]}:{docker_id[32:44]}"
    return [t for t in tags if t not in mine and not (t.startswith(naming.HOST_USER_TAG) and t.endswith(suffix))]


def lh_first(tags: Iterable[str]) -> list[str]:
    """Tags in the order they come off a network: the lh: tag, which makes a user, first."""
    return sorted(tags, key=lambda t: not t.startswith(naming.ID_LH_TAG))


@dataclass
class DeadHostReport:
    """What `forget_dead_host` did (or, in a dry run, would do)."""
    host: str
    dry_run: bool
    ports: list[str] = dataclasses.field(default_factory=list)  # deleted
    left_networks: list[str] = dataclasses.field(default_factory=list)  # its Docker networks taken off
    deleted_networks: list[str] = dataclasses.field(default_factory=list)  # no user left: deleted

    def summary(self) -> str:
        verb = "would" if self.dry_run else "did"
        return (f"gc --dead-host {self.host} ({verb}): delete {len(self.ports)} ports {self.ports}; take its Docker "
                f"networks off {len(self.left_networks)} Neutron networks {self.left_networks}; delete "
                f"{len(self.deleted_networks)} networks no host uses any more {self.deleted_networks}")


class Ownership:
    """Deletes on behalf of every path, after asking the rule."""

    def __init__(self, client: NeutronClient, owner: Owner, subnetpool_prefix: str,
                 held: Callable[[], Collection[str]] = frozenset) -> None:
        """`held()`: the port ids this process holds for Docker (handed out, plugged, pooled)."""
        self._client = client
        self.owner = owner
        self._pool_prefix = subnetpool_prefix
        self._held = held

    # -- ports --
    def may_delete(self, port: Port, why: Why, held: Collection[str] = ()) -> bool:
        return may_delete_port(port, self.owner, why, held)

    def delete_port(self, port: Port, why: Why, held: Collection[str] = ()) -> bool:
        """Delete `port` if the rule allows; True if it was deleted (or already gone)."""
        if not may_delete_port(port, self.owner, why, held):
            return False
        self._client.delete_port(port.id)
        return True

    def delete_lost_addresses(self, ports: Iterable[Port], call: str) -> list[Port]:
        """For ReleasePool and DeleteNetwork, which Docker sends once no endpoint is left: delete
        our ports that no endpoint took; return the other ports."""
        remaining = []
        held = self._held()
        for port in ports:
            if may_delete_port(port, self.owner, Why.LOST, held):
                LOG.info("%s: deleting port %s of network %s, %s", call, port.id, port.network_id, Why.LOST.value)
                self._client.delete_port(port.id)
            else:
                remaining.append(port)
        return remaining

    # -- security groups (docker run --expose) --
    def delete_exposure_group(self, group: Mapping[str, Any], port: Port, call: str) -> bool:
        """Delete the `--expose` group of `port` once its endpoint goes (or its making failed):
        only a group named for that port (`<port id>-exposed_ports`, as kuryr-libnetwork names
        it too) of a port not bound to another host. A group an operator attached elsewhere
        meanwhile (Neutron: 409 in use) is kept and said. True if deleted (or already gone)."""
        if group.get("name") != naming.exposed_sg_name(port.id) or (port.host_id and port.host_id != self.owner.host):
            return False
        try:
            self._client.delete_security_group(group["id"])
        except errors.NeutronConflict as exc:
            LOG.warning("%s: security group %s of port %s is in use by other ports: %s; kept, delete it "
                        "when they no longer need it", call, group["id"], port.id, exc.message)
            return False
        return True

    # -- the users of a network (Docker networks on any host, one pair of tags each) --
    def join_network(self, network: Network, tags: Iterable[str], call: str) -> Network:
        """Add a Docker network's tags to `network`, one atomic request per tag (a PUT of the
        whole list would drop a tag another host added meanwhile), its `lh:` tag last: that one
        makes it a user (`docker_users`), so a join cut short leaves no user behind. Conflict
        if another plugin claimed the network for deletion: then nothing of ours stays on it."""
        if who := deletion_claim(network):
            raise self._being_deleted(network, who)
        added = sorted((t for t in dict.fromkeys(tags) if t not in network.tags),
                       key=lambda t: t.startswith(naming.ID_LH_TAG))
        for tag in added:
            self._client.add_tag("networks", network.id, tag)
        now = self._client.get_network(network.id)
        if who := deletion_claim(now):  # it claimed between our read and our tags: it wins
            for tag in lh_first(added):
                self._client.remove_tag("networks", network.id, tag)
            raise self._being_deleted(network, who)
        return now

    @staticmethod
    def _being_deleted(network: Network, who: str) -> errors.Conflict:
        return errors.Conflict(f"Neutron network {network.id} is being deleted by {who} (its last Docker network "
                               "was removed); create the Docker network again once it is gone, or on another "
                               "Neutron network")

    def leave_network(self, network: Network, docker_id: str) -> None:
        """Remove a Docker network's tags from `network`, one atomic request per tag, `lh:` first."""
        mine = set(network.tags) - set(tags_without_user(network.tags, docker_id))
        for tag in lh_first(mine):
            self._client.remove_tag("networks", network.id, tag)

    def claim_if_last(self, network: Network, call: str, leaving: str | None = None,
                      others: int | None = None) -> Network | None:
        """Claim `network` for deletion if no other Docker network uses it: Docker network
        `leaving` (DeleteNetwork), or the one Docker network on it, if only one is (ReleasePool,
        which does not know which). The claim is a write conditional on the network's revision,
        so that a Docker network joining meanwhile (another host) either lands first (we read
        it again and see it) or sees the claim and backs out. The network as claimed (its
        description the one to give back), or None if another Docker network uses it."""
        allowed = others if others is not None else (0 if leaving else 1)
        for _ in range(CLAIM_ATTEMPTS):
            users = docker_users(network)
            if len([u for u in users if leaving is None or u != leaving[:32]]) > allowed:
                return None
            if deletion_claim(network) == self.owner.mark:
                return dataclasses.replace(network, description="")  # ours still (ReleasePool, then DeleteNetwork)
            claim = f"{DELETING_PREFIX}{self.owner.mark} at {time.time():.0f}"
            try:
                claimed = self._client.update_network_if_revision(network.id, network.revision, description=claim)
                # a claim left by a plugin that died while deleting is nothing to give back
                before = "" if network.description.startswith(DELETING_PREFIX) else network.description
                return dataclasses.replace(claimed, description=before)
            except errors.NeutronPreconditionFailed:
                LOG.info("%s: network %s changed while claiming it for deletion; reading it again", call, network.id)
                network = self._client.get_network(network.id)
        raise errors.Conflict(f"Neutron network {network.id} kept changing while {call} tried to delete it; "
                              "'docker network rm' again")

    def unclaim(self, network: Network) -> None:
        """The deletion did not happen (ports remain, or an operator's network): its description
        back. If Neutron cannot take it now, the claim expires by itself (CLAIM_EXPIRES)."""
        try:
            self._client.update_network(network.id, description=network.description)
        except errors.NeutronError as exc:
            LOG.warning("could not take the deletion claim off network %s (%s); it expires in %.0f s",
                        network.id, exc.message, CLAIM_EXPIRES)

    # -- a host that died --
    def forget_dead_host(self, dead_host: str, dry_run: bool = False) -> DeadHostReport:
        """What kuryr-cnm (this plugin name) on `dead_host` left in Neutron, once that host's chassis
        is dead: its ports, its Docker networks' tags on the networks they shared, and the networks
        kuryr made that no Docker network (any host) uses any more. Nothing uses them: the host
        that did is gone. Refused (Conflict) while Neutron sees the host's chassis alive."""
        alive = [a for a in self._client.list_agents(host=dead_host) if a.get("alive")]
        if alive:
            kinds = ", ".join(str(a.get("agent_type")) for a in alive)
            raise errors.Conflict(
                f"{dead_host} is alive: Neutron lists its agent(s) {kinds} "
                f"as alive; stop kuryr-cnm, Docker and ovn-controller there (or wait until Neutron's agent_down_time "
                f"has passed since it died), then run 'kuryr-cnm gc --dead-host {dead_host}' again")
        report = DeadHostReport(dead_host, dry_run)
        self._forget_dead_ports(Owner(dead_host, self.owner.plugin_name), report)
        for network in self._client.list_networks():
            if naming.host_users(network.tags, dead_host):
                self._forget_dead_users(network, dead_host, report)
        return report

    def _forget_dead_ports(self, dead: Owner, report: DeadHostReport) -> None:
        ports = {p.id: p for p in self._client.list_ports(**{"binding:host_id": dead.host})}
        ports.update({p.id: p for p in self._client.list_ports(description=naming.pool_description(dead.mark))})
        for port in ports.values():
            why = Why.POOL if dead.made_pool_port(port) else Why.UNHELD
            if may_delete_port(port, dead, why):
                report.ports.append(port.id)
                if not report.dry_run:
                    self._client.delete_port(port.id)

    def _forget_dead_users(self, network: Network, dead_host: str, report: DeadHostReport) -> None:
        call = f"gc --dead-host {dead_host}"
        theirs = {t for lh, uh in naming.host_users(network.tags, dead_host)
                  for t in naming.user_tags(network.tags, lh, uh)}
        report.left_networks.append(network.id)
        remaining = [t for t in network.tags if t not in theirs]
        if report.dry_run:
            if not docker_users(dataclasses.replace(network, tags=tuple(remaining))) and made_network(network):
                report.deleted_networks.append(network.id)
            return
        for tag in lh_first(theirs):
            self._client.remove_tag("networks", network.id, tag)
        claimed = self.claim_if_last(self._client.get_network(network.id), call, others=0)
        if claimed is None:
            return  # another host's Docker network still uses it
        try:
            self.release_subnets(claimed, call)
            deleted = self.delete_network_if_unused(claimed, call)
        except Exception:
            self.unclaim(claimed)
            raise
        if deleted:
            report.deleted_networks.append(network.id)
        else:
            self.unclaim(claimed)  # an operator's network

    # -- subnet pools --
    def release_subnetpool_if_unused(self, pool: SubnetPool) -> bool:
        """Once no subnet is allocated from `pool` or tagged with its id (any Docker network's,
        on any host): delete it if kuryr made it, or drop kuryr's adoption tag from an
        operator's pool. True if it was deleted."""
        adopted = naming.SUBNETPOOL_EXISTING_TAG in pool.tags
        if not adopted and not made_subnetpool(pool, self._pool_prefix):
            return False  # an operator's or a default pool (kuryr, kuryr6): nothing of ours to undo
        if self._client.list_subnets(subnetpool_id=pool.id) or self._client.list_subnets(tags=pool.id):
            return False
        if adopted:
            self._client.remove_tag("subnetpools", pool.id, naming.SUBNETPOOL_EXISTING_TAG)
            return False
        try:
            self._client.delete_subnetpool(pool.id)
        except (errors.NeutronConflict, errors.NeutronBadRequest) as exc:  # Neutron 29: 400 SubnetPoolDeleteError
            LOG.info("subnetpool %s is in use again (a subnet was allocated from it meanwhile): %s; kept",
                     pool.id, exc.message)
            return False
        return True

    def _release_pools_of(self, pool_ids: Iterable[str | None]) -> None:
        for pool_id in {p for p in pool_ids if p and naming.is_neutron_id(p)}:
            pool = self._client.get_subnetpool(pool_id)
            if pool is not None:
                self.release_subnetpool_if_unused(pool)

    # -- subnets and networks (only once no Docker network uses the network) --
    def release_subnets(self, network: Network, call: str) -> None:
        """The last Docker network has left `network` (the caller checked `docker_users` of the
        network as it will be tagged). Delete the subnets kuryr made on it (when a delete meets
        ports, our lost addresses in it go and the delete is tried again; Conflict if ports
        remain), untag an operator's subnets, then release the subnet pools they named."""
        for subnet in self._client.list_subnets(network_id=network.id):
            self.release_subnet(subnet, call)

    def release_subnet(self, subnet: Subnet, call: str) -> None:
        """No Docker network uses `subnet` any more: delete it if kuryr made it (Conflict if
        ports other than our lost addresses remain), or drop kuryr's pool tags from an
        operator's; then release the subnet pools it named."""
        if made_subnet(subnet):
            self._delete_subnet(subnet, call)
            self._release_pools_of([subnet.subnetpool_id, *subnet.tags])
            return
        pool_tags = [t for t in subnet.tags if naming.is_neutron_id(t) and self._client.get_subnetpool(t) is not None]
        for tag in pool_tags:
            self._client.remove_tag("subnets", subnet.id, tag)
        self._release_pools_of(pool_tags)

    def _delete_subnet(self, subnet: Subnet, call: str) -> None:
        try:
            self._client.delete_subnet(subnet.id)
            return
        except errors.NeutronConflict:
            ports = self._client.list_ports(fixed_ips=f"subnet_id={subnet.id}")
            left = self.delete_lost_addresses(ports, call)
        try:
            if len(left) < len(ports):
                self._client.delete_subnet(subnet.id)
                return
        except errors.NeutronConflict:
            left = self._client.list_ports(fixed_ips=f"subnet_id={subnet.id}")
        raise errors.Conflict(f"subnet {subnet.id} ({subnet.cidr}) still has ports "
                              f"({', '.join(p.id for p in left[:5])}); remove the containers or ports using "
                              "it, then 'docker network rm' again")

    def delete_network_if_unused(self, network: Network, call: str) -> bool:
        """Delete a network kuryr made once no Docker network uses it (after `release_subnets`);
        our lost addresses on it go first if the delete meets ports; Conflict if others remain."""
        if docker_users(network) or not made_network(network):
            return False
        try:
            self._client.delete_network(network.id)
            return True
        except errors.NeutronConflict:
            ports = self.delete_lost_addresses(self._client.list_ports(network_id=network.id), call)
            if ports:
                raise errors.Conflict(
                    f"Neutron network {network.id} still has {len(ports)} port(s) "
                    f"({', '.join(p.id for p in ports[:5])}); remove the containers using it, or delete "
                    "ports kuryr did not make, then 'docker network rm' again") from None
        self._client.delete_network(network.id)
        return True
