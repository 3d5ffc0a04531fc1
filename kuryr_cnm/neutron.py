"""The gateway to Neutron: the only module that talks to it.

Every request goes through `NeutronClient._request`, one HTTP round trip each
(openstacksdk's keystoneauth adapter, so one session and token for the process),
and is counted: the handler's log line lists the Neutron calls it made. Results
come back as small typed records, not openstacksdk resources, whose `find_*`
helpers would cost two requests where one does.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import openstack
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from kuryr_cnm import errors, naming, redact

LOG = logging.getLogger(__name__)

# Requests in flight to Neutron at once. Neutron serves one API request at a time per worker:
# fifty container starts at once used to open fifty connections, and the last ones timed out
# (30 s) in Neutron's listen queue before Neutron read them. Queued here instead, each request's
# timeout covers only Neutron's own work. Ten is also urllib3's connection pool size.
MAX_IN_FLIGHT = 10

# The Neutron calls made on behalf of the Docker call being served in this thread.
_CALLS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("neutron_calls", default=None)


def start_call_log() -> list[str]:
    calls: list[str] = []
    _CALLS.set(calls)
    return calls


# --- typed records ------------------------------------------------------------------

@dataclass(frozen=True)
class Network:
    id: str
    name: str
    mtu: int
    shared: bool
    tags: tuple[str, ...]
    subnet_ids: tuple[str, ...]
    project_id: str
    description: str = ""
    revision: int = 0  # revision_number: moves on every change, tags included

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> "Network":
        return cls(d["id"], d.get("name") or "", int(d.get("mtu") or 1500), bool(d.get("shared")),
                   tuple(d.get("tags") or ()), tuple(d.get("subnets") or ()), d.get("project_id") or "",
                   d.get("description") or "", int(d.get("revision_number") or 0))


@dataclass(frozen=True)
class Subnet:
    id: str
    name: str
    network_id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    subnetpool_id: str | None
    host_routes: tuple[tuple[str, str], ...]  # (destination, nexthop)
    tags: tuple[str, ...]

    @property
    def prefixlen(self) -> int:
        return int(self.cidr.split("/")[1])

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> "Subnet":
        routes = tuple((r["destination"], r["nexthop"]) for r in d.get("host_routes") or ())
        return cls(d["id"], d.get("name") or "", d["network_id"], d["cidr"], int(d["ip_version"]),
                   d.get("gateway_ip"), d.get("subnetpool_id"), routes, tuple(d.get("tags") or ()))


@dataclass(frozen=True)
class SubnetPool:
    id: str
    name: str
    prefixes: tuple[str, ...]
    ip_version: int
    default_prefixlen: int
    shared: bool
    tags: tuple[str, ...]

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> "SubnetPool":
        return cls(d["id"], d.get("name") or "", tuple(d.get("prefixes") or ()), int(d["ip_version"]),
                   int(d.get("default_prefixlen") or 0), bool(d.get("shared")), tuple(d.get("tags") or ()))


@dataclass(frozen=True)
class FixedIP:
    subnet_id: str
    ip_address: str


@dataclass(frozen=True)
class Port:
    id: str
    name: str
    network_id: str
    mac_address: str
    fixed_ips: tuple[FixedIP, ...]
    tags: tuple[str, ...]
    device_owner: str
    device_id: str
    host_id: str
    vif_type: str
    vif_details: Mapping[str, Any]
    status: str
    project_id: str
    security_groups: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def ip_in(self, subnet_id: str) -> str | None:
        return next((f.ip_address for f in self.fixed_ips if f.subnet_id == subnet_id), None)

    def has_ip(self, ip: str) -> bool:
        return any(f.ip_address == ip for f in self.fixed_ips)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> "Port":
        return cls(
            id=d["id"], name=d.get("name") or "", network_id=d["network_id"],
            mac_address=(d.get("mac_address") or "").lower(),
            fixed_ips=tuple(FixedIP(f["subnet_id"], f["ip_address"]) for f in d.get("fixed_ips") or ()),
            tags=tuple(d.get("tags") or ()), device_owner=d.get("device_owner") or "",
            device_id=d.get("device_id") or "", host_id=d.get("binding:host_id") or "",
            vif_type=d.get("binding:vif_type") or "unbound", vif_details=d.get("binding:vif_details") or {},
            status=d.get("status") or "", project_id=d.get("project_id") or d.get("tenant_id") or "",
            security_groups=tuple(d.get("security_groups") or ()), raw=d)


# --- the client -----------------------------------------------------------------------

def connect(conf: cfg.ConfigOpts) -> openstack.connection.Connection:
    """An openstacksdk connection from kuryr.conf: `[neutron] cloud` (clouds.yaml) or keystoneauth options."""
    if conf.neutron.cloud:
        return openstack.connect(cloud=conf.neutron.cloud)
    try:
        auth = ks_loading.load_auth_from_conf_options(conf, "neutron")
    except (cfg.TemplateSubstitutionError, cfg.NoSuchOptError):
        # oslo.config reads '$name' in a value as another option; its error would quote
        # the rest of the value, i.e. part of a password
        raise ValueError("[neutron]: a value holds a '$' that oslo.config reads as a reference to "
                         "another option; write '$$' for a literal '$' (in a password, say)") from None
    if auth is None:
        raise cfg.RequiredOptError("auth_type", cfg.OptGroup("neutron"))
    redact.register(_secret_values(conf, "neutron"))
    session = ks_loading.load_session_from_conf_options(conf, "neutron", auth=auth)
    return openstack.connection.Connection(
        session=session, region_name=conf.neutron.region_name,
        network_interface=conf.neutron.endpoint_type)


def _secret_values(conf: cfg.ConfigOpts, group: str) -> list[str]:
    """The values of the auth plugin's secret options (password, token, ...): never to be shown."""
    opts = ks_loading.get_auth_plugin_conf_options(conf[group].auth_type)
    return [conf[group][o.dest] for o in opts if o.secret and conf[group][o.dest]]


class NeutronClient:
    """Neutron's REST API, one counted round trip per method call."""

    def __init__(self, conn: openstack.connection.Connection, timeout: float = 30) -> None:
        self._conn = conn
        self._adapter: Any = None
        self._timeout = timeout
        self._in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)

    def _network(self) -> Any:
        """openstacksdk's network proxy, made on first use: with keystoneauth options it needs a
        token and the catalog, and Keystone may well be down or refuse us when the plugin starts
        (it must start anyway, and say why each call fails)."""
        if self._adapter is None:
            self._adapter = self._conn.network
        return self._adapter

    # -- plumbing --
    def _request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                 body: Mapping[str, Any] | None = None, ok: Iterable[int] = (200, 201, 204),
                 headers: Mapping[str, str] | None = None) -> Any:
        label = f"{method} {path.split('?')[0][:120]}"
        if not _ids_in_path_ok(path):
            if 404 in ok:
                return None  # a DELETE of what cannot exist
            raise errors.NeutronNotFound(label, f"{path.split('/')[2][:60]!r} is not a Neutron id: no "
                                         f"{path.split('/')[1]} has it")
        started = time.monotonic()
        try:
            resp = self._send(method, path, params, body, headers or {})
        except ks_exc.SSLError:
            # before ConnectionError, its base: a bad certificate is no timeout, and retrying won't help
            raise errors.NeutronUnavailable(label, "TLS with Neutron (or Keystone) failed: its certificate could "
                                            "not be verified, or the endpoint does not speak TLS; for a private "
                                            "CA set [neutron] cafile to the CA certificate", status=0) from None
        except ks_exc.ConnectFailure as exc:
            # keystoneauth raises the same for Keystone (a token, the catalog) as for Neutron
            raise errors.NeutronUnavailable(label, f"Neutron is unreachable ({exc.__class__.__name__}); check "
                                            "that neutron-server runs (and Keystone, with keystoneauth options) "
                                            "and [neutron] points at it, then retry", status=0) from None
        except (ks_exc.ConnectionError, ks_exc.RequestTimeout) as exc:
            raise errors.NeutronUnavailable(label, f"Neutron did not answer {label} in time "
                                            f"({exc.__class__.__name__}); retry when Neutron is healthy",
                                            status=0) from None
        except ks_exc.ClientException as exc:  # auth failures and the like
            raise errors.NeutronUnauthorized(label, redact.scrub(str(exc))) from None
        ms = (time.monotonic() - started) * 1000
        calls = _CALLS.get()
        if calls is not None:
            calls.append(f"{label} {resp.status_code} {ms:.0f}ms")
        if resp.status_code not in ok:
            raise _error_for(resp.status_code, label, *_neutron_message(resp))
        return resp.json() if resp.content else None

    def _send(self, method: str, path: str, params: Mapping[str, Any] | None,
              body: Mapping[str, Any] | None, headers: Mapping[str, str]) -> Any:
        def send() -> Any:
            with self._in_flight:  # the timeout runs from when the request is sent, not queued
                return self._network().request(path, method, params=params, json=body, timeout=self._timeout,
                                             raise_exc=False, headers={"Accept": "application/json", **headers})
        try:
            return send()
        except ks_exc.ConnectFailure:
            # A keep-alive connection the server closed just as we reused it fails like this too.
            # GET, PUT and DELETE are idempotent in Neutron: one more try on a fresh connection.
            # A POST is not retried: it may have been applied.
            if method == "POST":
                raise
            return send()

    def _list(self, collection: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        # the URL says security-groups, the body security_groups
        return self._request("GET", f"/{collection}", params=params)[collection.replace("-", "_")]

    # -- networks --
    def list_networks(self, **filters: Any) -> list[Network]:
        return [Network.from_api(d) for d in self._list("networks", filters)]

    def get_network(self, network_id: str) -> Network:
        return Network.from_api(self._request("GET", f"/networks/{network_id}")["network"])

    def create_network(self, **attrs: Any) -> Network:
        return Network.from_api(self._request("POST", "/networks", body={"network": attrs})["network"])

    def update_network(self, network_id: str, **attrs: Any) -> Network:
        return Network.from_api(self._request("PUT", f"/networks/{network_id}", body={"network": attrs})["network"])

    def update_network_if_revision(self, network_id: str, revision: int, **attrs: Any) -> Network:
        """PUT only if the network is still at `revision`: PreconditionFailed (412) if it moved on."""
        return Network.from_api(self._request("PUT", f"/networks/{network_id}", body={"network": attrs},
                                              headers={"If-Match": f"revision_number={revision}"})["network"])

    def delete_network(self, network_id: str) -> None:
        self._request("DELETE", f"/networks/{network_id}", ok=(204, 404))

    # -- subnets --
    def list_subnets(self, **filters: Any) -> list[Subnet]:
        return [Subnet.from_api(d) for d in self._list("subnets", filters)]

    def get_subnet(self, subnet_id: str) -> Subnet | None:
        try:
            return Subnet.from_api(self._request("GET", f"/subnets/{subnet_id}")["subnet"])
        except errors.NeutronNotFound:
            return None

    def create_subnet(self, **attrs: Any) -> Subnet:
        return Subnet.from_api(self._request("POST", "/subnets", body={"subnet": attrs})["subnet"])

    def update_subnet(self, subnet_id: str, **attrs: Any) -> Subnet:
        return Subnet.from_api(self._request("PUT", f"/subnets/{subnet_id}", body={"subnet": attrs})["subnet"])

    def delete_subnet(self, subnet_id: str) -> None:
        self._request("DELETE", f"/subnets/{subnet_id}", ok=(204, 404))

    # -- subnetpools --
    def list_subnetpools(self, **filters: Any) -> list[SubnetPool]:
        return [SubnetPool.from_api(d) for d in self._list("subnetpools", filters)]

    def get_subnetpool(self, pool_id: str) -> SubnetPool | None:
        try:
            return SubnetPool.from_api(self._request("GET", f"/subnetpools/{pool_id}")["subnetpool"])
        except errors.NeutronNotFound:
            return None

    def create_subnetpool(self, **attrs: Any) -> SubnetPool:
        return SubnetPool.from_api(self._request("POST", "/subnetpools", body={"subnetpool": attrs})["subnetpool"])

    def delete_subnetpool(self, pool_id: str) -> None:
        self._request("DELETE", f"/subnetpools/{pool_id}", ok=(204, 404))

    # -- ports --
    def list_ports(self, **filters: Any) -> list[Port]:
        return [Port.from_api(d) for d in self._list("ports", filters)]

    def get_port(self, port_id: str) -> Port | None:
        try:
            return Port.from_api(self._request("GET", f"/ports/{port_id}")["port"])
        except errors.NeutronNotFound:
            return None

    def create_port(self, **attrs: Any) -> Port:
        return Port.from_api(self._request("POST", "/ports", body={"port": attrs})["port"])

    def create_ports(self, ports: list[dict[str, Any]]) -> list[Port]:
        """Bulk create: one request, all or nothing."""
        return [Port.from_api(d) for d in self._request("POST", "/ports", body={"ports": ports})["ports"]]

    def update_port(self, port_id: str, **attrs: Any) -> Port:
        return Port.from_api(self._request("PUT", f"/ports/{port_id}", body={"port": attrs})["port"])

    def delete_port(self, port_id: str) -> None:
        self._request("DELETE", f"/ports/{port_id}", ok=(204, 404))

    def update_port_if_revision(self, port_id: str, revision: int, **attrs: Any) -> Port:
        """PUT only if the port is still at `revision` (revision-if-match extension): a read-modify-write
        that cannot drop a concurrent writer's change. PreconditionFailed (412) if it moved on."""
        return Port.from_api(self._request("PUT", f"/ports/{port_id}", body={"port": attrs},
                                           headers={"If-Match": f"revision_number={revision}"})["port"])

    # -- trunks (nested vlan mode) --
    def get_trunk(self, trunk_id: str) -> dict[str, Any]:
        return self._request("GET", f"/trunks/{trunk_id}")["trunk"]

    def add_subport(self, trunk_id: str, port_id: str, segmentation_id: int) -> None:
        """One subport, VLAN-tagged: Conflict (409) if the VLAN id or the port is taken on the trunk."""
        body = {"sub_ports": [{"port_id": port_id, "segmentation_type": "vlan",
                               "segmentation_id": segmentation_id}]}
        self._request("PUT", f"/trunks/{trunk_id}/add_subports", body=body)

    def remove_subport(self, trunk_id: str, port_id: str) -> None:
        """NotFound if the port is no subport of the trunk (any more)."""
        self._request("PUT", f"/trunks/{trunk_id}/remove_subports", body={"sub_ports": [{"port_id": port_id}]})

    # -- tags (networks, subnets and subnetpools cannot take tags at creation) --
    def set_tags(self, collection: str, resource_id: str, tags: Iterable[str]) -> None:
        """Replace all tags of a resource: one request."""
        with self._gone_if_missing(collection, resource_id):
            self._request("PUT", f"/{collection}/{resource_id}/tags", body={"tags": sorted(set(tags))})

    def add_tag(self, collection: str, resource_id: str, tag: str) -> None:
        with self._gone_if_missing(collection, resource_id):
            self._request("PUT", f"/{collection}/{resource_id}/tags/{tag}", ok=(200, 201, 204))

    @contextlib.contextmanager
    def _gone_if_missing(self, collection: str, resource_id: str) -> Iterator[None]:
        """Neutron 29 answers a tag write on a resource that is gone (deleted meanwhile, by another
        host for example) with a 500 "internal server error": say what happened instead."""
        try:
            yield
        except errors.NeutronServerError as exc:
            try:
                self._request("GET", f"/{collection}/{resource_id}")
            except errors.NeutronNotFound:
                raise errors.NeutronNotFound(
                    exc.request, f"the {collection[:-1]} {resource_id} was deleted meanwhile (another host may have "
                    "removed the last Docker network using it); try again") from None
            raise

    def remove_tag(self, collection: str, resource_id: str, tag: str) -> None:
        """Done if the tag, or the whole resource, is gone (deleted meanwhile: nothing to remove)."""
        try:
            with self._gone_if_missing(collection, resource_id):
                self._request("DELETE", f"/{collection}/{resource_id}/tags/{tag}", ok=(204, 404))
        except errors.NeutronNotFound:
            pass

    # -- security groups --
    def create_security_group(self, name: str, description: str = "") -> str:
        body = {"security_group": {"name": name, "description": description}}
        return self._request("POST", "/security-groups", body=body)["security_group"]["id"]

    def create_security_group_rule(self, **attrs: Any) -> None:
        self._request("POST", "/security-group-rules", body={"security_group_rule": attrs})

    def list_security_groups(self, **filters: Any) -> list[dict[str, Any]]:
        return self._list("security-groups", filters)

    def delete_security_group(self, sg_id: str) -> None:
        self._request("DELETE", f"/security-groups/{sg_id}", ok=(204, 404))

    # -- service --
    def list_agents(self, **filters: Any) -> list[dict[str, Any]]:
        """Neutron's agents (under ML2/OVN, one "OVN Controller agent" per chassis, `alive` while
        its ovn-controller answers Neutron's heartbeat)."""
        return self._list("agents", filters)

    def extensions(self) -> set[str]:
        return {e["alias"] for e in self._request("GET", "/extensions")["extensions"]}


def _ids_in_path_ok(path: str) -> bool:
    """The id in /<collection>/<id>[/...] can only name that one resource. Ids come from Docker
    (a PoolID) and from users' options (neutron.net.uuid): '..' or '../ports' would name another
    URL, whose answer lacks the expected key."""
    parts = path.split("/")
    return len(parts) < 3 or naming.is_neutron_id(parts[2])


def _neutron_message(resp: Any) -> tuple[str, str]:
    """(Neutron's message, its error type) from an error answer."""
    try:
        err = resp.json().get("NeutronError") or {}
        return err.get("message") or resp.text[:300], err.get("type") or ""
    except (ValueError, AttributeError):
        return resp.text[:300], ""


def _error_for(status: int, label: str, message: str, kind: str = "") -> errors.NeutronError:
    return errors.neutron_error(status, label, message, kind)
