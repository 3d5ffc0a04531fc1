"""kuryr-libnetwork 18.0.0's names and tags in Neutron, in one place.

Neutron is kuryr's only store of state, and these names and tags are the
compatibility contract (shared/reference/kuryr-libnetwork-18.md §1.5): kuryr-cnm
finds what kuryr-libnetwork made, and kuryr-libnetwork finds what kuryr-cnm makes.
Neutron tags are at most 60 characters, which is why a 64-character Docker id is
split over two tags.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

# --- ids ----------------------------------------------------------------------------
# Neutron's ids are UUIDs. Ids from outside (Docker's PoolIDs, users' neutron.net.uuid)
# go into URL paths, so only a token that names one resource there is taken for one:
# never '.' or '..', '/', '?', '%'.
_NEUTRON_ID = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.:-]{1,64}$")


def is_neutron_id(value: str) -> bool:
    return bool(_NEUTRON_ID.match(value))


# --- networks -------------------------------------------------------------------
NET_NAME_PREFIX = "kuryr-net-"
ID_LH_TAG = "kuryr.net.uuid.lh:"  # first 32 chars of a Docker id (networks AND endpoints)
ID_UH_TAG = "kuryr.net.uuid.uh:"  # chars 32..64
NET_EXISTING_TAG = "kuryr.net.existing:"  # + docker network id[:12], on adopted networks
# kuryr-cnm's: a smaller MTU Docker asked for; a network RequestPool made for a prefix carved
# from a default pool, before CreateNetwork names it after its Docker network
MTU_TAG = "kuryr-cnm.mtu:"
PENDING_TAG = "kuryr-cnm.pending"
# kuryr-cnm's: which host's Docker network a pair of lh:/uh: tags is, so that `gc --dead-host`
# can take a dead host's Docker networks off the networks they share with other hosts:
# kuryr-cnm.on:<host key>:<docker id[:12]>:<docker id[32:44]>, at most 60 characters
HOST_USER_TAG = "kuryr-cnm.on:"
HOST_KEY_MAX = 21
_TAG_SAFE = re.compile(r"[A-Za-z0-9._-]+")

# --- subnets and subnetpools ----------------------------------------------------
SUBNET_NAME_PREFIX = "kuryr-subnet-"
SUBNETPOOL_EXISTING_TAG = "kuryr.subnetpool.existing"

# --- ports ------------------------------------------------------------------------
UNBOUND_PORT_NAME = "kuryr-unbound-port"  # name of IPAM-created ports, never renamed
POOL_PORT_NAME = "kuryr-pool-port"  # kuryr-cnm: a pre-created port waiting in the pool
DEVICE_OWNER = "compute:kuryr"  # device_owner, and the tag on ports kuryr made
PORT_EXISTING_TAG = "kuryr.port.existing"  # on pre-created ports kuryr adopted
EXPOSED_PORTS_SG_SUFFIX = "-exposed_ports"

# kuryr-cnm's own mark (ignored by kuryr-libnetwork): which kuryr-cnm (plugin@host) made a
# port. The reconciler and the port pool only ever delete ports carrying it.
CNM_OWNER_TAG = "kuryr-cnm.owner:"


def id_tags(docker_id: str) -> list[str]:
    """The two tags that carry a 64-character Docker network or endpoint id."""
    return [ID_LH_TAG + docker_id[:32], ID_UH_TAG + docker_id[32:64]]


def id_from_tags(tags: list[str]) -> str | None:
    lh = next((t[len(ID_LH_TAG):] for t in tags if t.startswith(ID_LH_TAG)), None)
    uh = next((t[len(ID_UH_TAG):] for t in tags if t.startswith(ID_UH_TAG)), None)
    return lh + uh if lh is not None and uh is not None else None


def host_key(host: str) -> str:
    """The host in HOST_USER_TAG: its name, or (long, or with characters a tag in a URL path
    cannot hold) a prefix of its safe characters and a hash of it."""
    if len(host) <= HOST_KEY_MAX and _TAG_SAFE.fullmatch(host):
        return host
    safe = re.sub(r"[^A-Za-z0-9._-]", "", host)[:8]
    return safe + "~" + hashlib.sha1(host.encode()).hexdigest()[:HOST_KEY_MAX - len(safe) - 1]


def host_user_tag(host: str, docker_id: str) -> str:
    return f"{HOST_USER_TAG}{host_key(host)}:{docker_id[:12]}:{docker_id[32:44]}"


def host_users(tags: Iterable[str], host: str) -> list[tuple[str, str]]:
    """The Docker networks of `host` that use a network, as (lh prefix, uh prefix) of their ids."""
    start = f"{HOST_USER_TAG}{host_key(host)}:"
    return [tuple(t[len(start):].split(":", 1)) for t in tags  # type: ignore[misc]
            if t.startswith(start) and t.count(":") == 3]


def user_tags(tags: Iterable[str], lh_prefix: str, uh_prefix: str) -> list[str]:
    """A network's tags that belong to the Docker network whose id starts with lh_prefix and
    has uh_prefix at [32:44]: its lh:/uh: pair, its existing tag and its host tags."""
    return [t for t in tags
            if t.startswith(ID_LH_TAG + lh_prefix) or t.startswith(ID_UH_TAG + uh_prefix)
            or t == NET_EXISTING_TAG + lh_prefix
            or (t.startswith(HOST_USER_TAG) and t.endswith(f":{lh_prefix}:{uh_prefix}"))]


def network_name(docker_network_id: str) -> str:
    return NET_NAME_PREFIX + docker_network_id[:8]


def network_existing_tag(docker_network_id: str) -> str:
    return NET_EXISTING_TAG + docker_network_id[:12]


def subnet_name(cidr: str) -> str:
    return SUBNET_NAME_PREFIX + cidr


def subnetpool_name(cidr: str, prefix: str = "kuryrPool") -> str:
    return f"{prefix}-{cidr}"


def owner(host: str, plugin_name: str) -> str:
    """Who made a port: this plugin on this host. Two kuryr-cnm instances on one host
    (one per nested mode, or a test's) never take each other's ports for their own."""
    return f"{plugin_name}@{host}"


def cnm_owner_tag(owner: str) -> str:
    # 60-character tag limit: a very long host name is cut, the prefix is kept
    return (CNM_OWNER_TAG + owner)[:60]


def cnm_description(owner: str) -> str:
    """Description of the ports kuryr-cnm creates: the creator's mark from the first
    moment (Neutron stores no tags given at creation; they follow in a second write)."""
    return f"created by kuryr-cnm {owner}"


def pool_description(owner: str) -> str:
    return f"kuryr-cnm port pool of {owner}"


def exposed_sg_name(port_id: str) -> str:
    return port_id + EXPOSED_PORTS_SG_SUFFIX


# --- host devices -----------------------------------------------------------------
# A port's devices are named <prefix> + port_id[:11], as kuryr-libnetwork and os-vif name them
# (14 characters; Linux allows 15): the veth pair, and the hybrid plug's bridge and its veth.
HOST_VETH_PREFIX = "tap"  # stays on the host, attached by the binder
CONTAINER_VETH_PREFIX = "t_c"  # Docker moves it into the sandbox (nested mode: the child device)
HYBRID_PREFIXES = ("qbr", "qvb", "qvo")
PORT_ID_CHARS = 11


def device_name(prefix: str, port_id: str) -> str:
    if not port_id:
        raise ValueError("a port id is needed to name its devices")
    return prefix + port_id[:PORT_ID_CHARS]


def host_veth_name(port_id: str) -> str:
    return device_name(HOST_VETH_PREFIX, port_id)


def container_veth_name(port_id: str) -> str:
    return device_name(CONTAINER_VETH_PREFIX, port_id)
