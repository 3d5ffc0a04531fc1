"""Docker's endpoints and sandboxes (NetworkDriver's CreateEndpoint .. Leave) on Neutron ports.

The container's port already exists when CreateEndpoint arrives (RequestAddress made it,
bound to this host); CreateEndpoint plugs it in through the process's Plugging and hands the
rest of Neutron's bookkeeping (device_id, endpoint tags) to the background writer. Join and
EndpointOperInfo answer from memory. Teardown mirrors it: DeleteEndpoint unplugs,
ReleaseAddress deletes (or resets) the port.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from oslo_config import cfg

from kuryr_cnm import errors, naming
from kuryr_cnm.binding import BindingError, interface_names
from kuryr_cnm.deferred import DeferredWrites
from kuryr_cnm.directory import Directory, DockerNetwork
from kuryr_cnm.exposure import Exposure
from kuryr_cnm.neutron import NeutronClient, Port, Subnet
from kuryr_cnm.ownership import Owner
from kuryr_cnm.plugging import Plugged, Plugging
from kuryr_cnm.ports import Endpoint, PortLedger
from kuryr_cnm.protocol import CreateEndpointRequest, EndpointRequest, JoinResponse, StaticRoute

LOG = logging.getLogger(__name__)


def _ip(cidr: str) -> str:
    return cidr.split("/")[0]


class EndpointDriver:
    def __init__(self, conf: cfg.ConfigOpts, client: NeutronClient, directory: Directory,
                 ledger: PortLedger, plugging: Plugging,
                 deferred: DeferredWrites, exposure: Exposure, owner: Owner) -> None:
        self._conf = conf
        self._client = client
        self._dir = directory
        self._ledger = ledger
        self._plugging = plugging
        self._deferred = deferred
        self._exposure = exposure
        self._owner = owner  # the mark on the ports it records

    def create_endpoint(self, body: Any) -> dict[str, Any]:
        req = CreateEndpointRequest.parse(body)
        existing = self._ledger.endpoint(req.endpoint_id)
        if existing is not None:
            return self._interface_answer(req, existing.port)  # Docker retried
        network = self._dir.require_docker_network(req.network_id)
        port = self._port_for(network, req)
        holder = self._ledger.endpoint_holding(port.id)
        if holder is not None:  # plugging it again would pull the veth out of holder's container
            raise errors.Conflict(f"{req.interface.address or req.interface.address_ipv6} (port {port.id}) is "
                                  f"already the address of endpoint {holder.endpoint_id[:12]}; every endpoint "
                                  "needs its own RequestAddress")
        adopted = naming.PORT_EXISTING_TAG in port.tags
        mac = req.interface.mac_address if req.interface.mac_address != port.mac_address else ""
        # the port as plugged: a --mac-address or a binding changed it
        port, iface = self._plugging.plug(port, req.endpoint_id, network.mtu, mac)
        endpoint = Endpoint(req.endpoint_id, network, port, iface.host_name, iface.container_name, adopted)
        self._ledger.plug(endpoint)
        self._record_endpoint(port, req.endpoint_id, adopted)
        if self._conf.neutron.vif_plugging_timeout:
            self._wait_active(endpoint)
        return self._interface_answer(req, port)

    def _interface_answer(self, req: CreateEndpointRequest, port: Port) -> dict[str, Any]:
        # Docker rejects an answer that changes a value it supplied: send only the MAC, only when it gave none
        # (and none for an interface whose MAC is not the port's: Docker would try to set it, nested ipvlan)
        mac = self._plugging.container_mac(port)
        return {"Interface": {"MacAddress": mac} if mac and not req.interface.mac_address else {}}

    def _port_for(self, network: DockerNetwork, req: CreateEndpointRequest) -> Port:
        addresses = [_ip(a) for a in (req.interface.address, req.interface.address_ipv6) if a]
        port = self._ledger.address(network.network.id, addresses[0])
        if port is None:  # RequestAddress was served by another process, or before a restart
            ports = self._client.list_ports(network_id=network.network.id,
                                            fixed_ips=f"ip_address={addresses[0]}")
            port = ports[0] if ports else None
        if port is None:
            raise errors.NotFound(f"no Neutron port holds {addresses[0]} on network {network.network.id}; "
                                  "use kuryr as the IPAM driver (--ipam-driver kuryr)")
        missing = [a for a in addresses if not port.has_ip(a)]
        if missing:
            raise errors.Conflict(f"port {port.id} does not hold {', '.join(missing)}; Docker's addresses for "
                                  "this endpoint belong to different ports: retry the container start")
        return port

    def _record_endpoint(self, port: Port, endpoint_id: str, adopted: bool) -> None:
        """device_id and the endpoint tags, off Docker's hot path."""
        # Neutron's POST answer may not list the tags it was given: name them all here.
        owner_tag = naming.cnm_owner_tag(self._owner.mark)
        base = [naming.PORT_EXISTING_TAG] if adopted else [naming.DEVICE_OWNER, owner_tag]
        tags = list(port.tags) + base + naming.id_tags(endpoint_id)

        def write() -> None:
            attrs = {} if port.device_id else {"device_id": endpoint_id}
            if port.name == naming.POOL_PORT_NAME:
                attrs["name"] = naming.UNBOUND_PORT_NAME  # out of the pool: named as upstream names it
            if attrs:
                self._client.update_port(port.id, **attrs)
            self._client.set_tags("ports", port.id, tags)
        self._deferred.submit(port.id, f"record endpoint {endpoint_id[:12]} on port {port.id}", write)

    def _wait_active(self, endpoint: Endpoint) -> None:
        timeout = self._conf.neutron.vif_plugging_timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self._client.get_port(endpoint.port.id)
            if port is not None and port.status == "ACTIVE":
                return
            time.sleep(0.2)
        message = f"port {endpoint.port.id} did not become ACTIVE within {timeout} s"
        if self._conf.neutron.vif_plugging_is_fatal:
            self._teardown(endpoint)
            raise errors.BackendError(message + "; check ovn-controller on this host (vif_plugging_is_fatal)")
        LOG.warning("%s; going on (vif_plugging_is_fatal is off)", message)

    def endpoint_oper_info(self, body: Any) -> dict[str, Any]:
        req = EndpointRequest.parse(body, "NetworkDriver.EndpointOperInfo")
        endpoint = self._ledger.endpoint(req.endpoint_id) or self._recover(req)
        port = endpoint.port
        return {"Value": {"port_id": port.id, "mac_address": port.mac_address,
                          "host_interface": endpoint.host_ifname}}

    def delete_endpoint(self, body: Any) -> dict[str, Any]:
        req = EndpointRequest.parse(body, "NetworkDriver.DeleteEndpoint")
        endpoint = self._ledger.endpoint(req.endpoint_id)
        if endpoint is None:
            try:
                endpoint = self._recover(req)
            except errors.NotFound:
                self._unplug_orphan(req.endpoint_id)
                return {}  # already deleted: Docker repeats teardown calls
        self._teardown(endpoint)
        return {}

    def _teardown(self, endpoint: Endpoint) -> None:
        self._plugging.unplug(endpoint.port, endpoint.endpoint_id, endpoint.network.mtu)
        # ReleaseAddress comes next: it needs no lookup. Not over a newer allocation of the same
        # address: after an early ReleaseAddress, or a recovered endpoint, this port may be gone.
        self._ledger.unplug(endpoint)

    def _recover(self, req: EndpointRequest) -> Endpoint:
        """Rebuild an endpoint this process does not hold (it restarted) from Neutron's tags,
        or, while those are still being written, from what the host recorded when it plugged it."""
        network = self._dir.require_docker_network(req.network_id)
        port = self._port_of_endpoint(network, req.endpoint_id)
        if port is None:
            raise errors.NotFound(f"endpoint {req.endpoint_id[:12]} has no Neutron port; it was removed already")
        names = interface_names(port.id)
        endpoint = Endpoint(req.endpoint_id, network, port, names.host_name, names.container_name,
                            naming.PORT_EXISTING_TAG in port.tags,
                            recovered=True)
        self._ledger.plug(endpoint)
        return endpoint

    def _port_of_endpoint(self, network: DockerNetwork, endpoint_id: str) -> Port | None:
        ports = self._client.list_ports(network_id=network.network.id, tags=",".join(naming.id_tags(endpoint_id)))
        if ports:
            return ports[0]
        plugged = self._plugged_for(endpoint_id)
        return self._client.get_port(plugged.port_id) if plugged else None

    def _plugged_for(self, endpoint_id: str) -> Plugged | None:
        try:
            return next((p for p in self._plugging.plugged() if p.endpoint_id == endpoint_id), None)
        except (BindingError, errors.BackendError) as exc:
            LOG.warning("cannot read what is plugged here to find endpoint %s: %s", endpoint_id[:12], exc)
            return None

    def _unplug_orphan(self, endpoint_id: str) -> None:
        """DeleteEndpoint after the Neutron port vanished: the host still names what to remove."""
        plugged = self._plugged_for(endpoint_id)
        if plugged is not None:
            self._plugging.unplug_orphan(plugged)

    # -- sandboxes --
    def join(self, body: Any) -> dict[str, Any]:
        req = EndpointRequest.parse(body, "NetworkDriver.Join")
        endpoint = self._ledger.endpoint(req.endpoint_id) or self._recover(req)
        gateways: dict[int, str] = {}
        routes: list[StaticRoute] = []
        for subnet in self._current_subnets(endpoint):
            if subnet.gateway_ip:
                gateways[subnet.ip_version] = subnet.gateway_ip
            routes += [StaticRoute(dest, hop) for dest, hop in subnet.host_routes]
        answer = JoinResponse(src_name=endpoint.container_ifname, dst_prefix=self._conf.binding.veth_dst_prefix,
                              gateway=gateways.get(4, ""), gateway_ipv6=gateways.get(6, ""),
                              static_routes=tuple(routes)).to_json()
        self._plugging.joined(endpoint.port, req.sandbox_key)
        return answer

    def _current_subnets(self, endpoint: Endpoint) -> list[Subnet]:
        """The endpoint's subnets as Neutron has them now (gateway and host routes may have
        changed since the network was created): at most one read per network and second.
        If Neutron cannot answer, what the plugin holds still lets the container start."""
        ids = [f.subnet_id for f in endpoint.port.fixed_ips]
        try:
            return [s for s in self._dir.current_subnets(endpoint.port.network_id) if s.id in ids]
        except (errors.NeutronUnavailable, errors.NeutronServerError) as exc:
            LOG.warning("Join of %s: Neutron did not answer (%s); using the subnets held in memory",
                        endpoint.endpoint_id[:12], exc.message)
            return [s for s in endpoint.network.subnets if s.id in ids]

    def leave(self, body: Any) -> dict[str, Any]:
        EndpointRequest.parse(body, "NetworkDriver.Leave")
        return {}  # the veth goes in DeleteEndpoint, the mirror of CreateEndpoint

    def program_external_connectivity(self, body: Any) -> dict[str, Any]:
        req = EndpointRequest.parse(body, "NetworkDriver.ProgramExternalConnectivity")
        if not self._conf.process_external_connectivity:
            return {}
        endpoint = self._ledger.endpoint(req.endpoint_id) or self._recover(req)
        self._exposure.expose(endpoint.port, req.options)
        return {}

    def revoke_external_connectivity(self, body: Any) -> dict[str, Any]:
        req = EndpointRequest.parse(body, "NetworkDriver.RevokeExternalConnectivity")
        if not self._conf.process_external_connectivity:
            return {}
        endpoint = self._ledger.endpoint(req.endpoint_id)
        if endpoint is not None and (endpoint.recovered or self._exposure.exposed(endpoint.port.id)):
            self._exposure.revoke(endpoint.port)
        return {}
