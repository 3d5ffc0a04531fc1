"""Configuration: kuryr-libnetwork 18's kuryr.conf option names, read with oslo.config.

An operator's existing kuryr.conf keeps working: every upstream option that still
means something has the same group, name and default here. New options are few
and say so in their help. Configuration is loaded explicitly by `load()` and the
resulting `ConfigOpts` object is passed down; nothing reads options at import time
(upstream's import-time driver loading ignored kuryr.conf: its defect §4.10a).
"""
from __future__ import annotations

import socket
from collections.abc import Sequence

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from kuryr_cnm import errors, protocol

DEFAULT_SOCKET = "/run/docker/plugins/kuryr.sock"

default_opts = [
    cfg.StrOpt(
        "kuryr_uri",
        default=f"unix://{DEFAULT_SOCKET}",
        help="Where the plugin listens. unix:///run/docker/plugins/<name>.sock is found "
        "by Docker without a spec file; http://127.0.0.1:23750 (upstream's default) makes "
        "kuryr-cnm write <plugin_name>.spec into spec_dir, https://... (or enable_ssl) "
        "<plugin_name>.json with its TLSConfig.",
    ),
    cfg.StrOpt(
        "plugin_name",
        default="kuryr",
        help="(kuryr-cnm) Docker plugin name, used for the spec file of a TCP listener.",
    ),
    cfg.StrOpt(
        "spec_dir",
        default="/etc/docker/plugins",
        help="(kuryr-cnm) Where the spec file for a TCP listener is written.",
    ),
    cfg.BoolOpt(
        "bind_all_interfaces",
        default=False,
        help="(kuryr-cnm) Honour a wildcard host (0.0.0.0, ::) in a TCP kuryr_uri. Without it a "
        "TCP listener with no host or a wildcard binds loopback only: whoever reaches it drives "
        "Neutron with kuryr's credentials. Listening beyond loopback calls for TLS with ssl_ca_file.",
    ),
    cfg.BoolOpt("enable_ssl", default=False,
                help="Serve a TCP kuryr_uri over TLS 1.2+ (HTTPS) with ssl_cert_file and ssl_key_file. "
                "An https:// kuryr_uri turns it on as well. Ignored for a unix socket."),
    cfg.StrOpt("ssl_cert_file", default="/var/lib/kuryr/certs/cert.pem",
               help="PEM certificate (chain) of the TLS listener."),
    cfg.StrOpt("ssl_key_file", default="/var/lib/kuryr/certs/key.pem",
               help="Unencrypted PEM private key of ssl_cert_file; keep it readable by root only."),
    cfg.StrOpt("ssl_ca_file",
               help="(kuryr-cnm) PEM CA certificate(s): when set, the TLS listener accepts only "
               "clients presenting a certificate signed by them (Docker's TLSConfig CertFile)."),
    cfg.StrOpt("docker_tls_ca_file",
               help="(kuryr-cnm) Written as TLSConfig CAFile of the <plugin_name>.json spec: the CA "
               "Docker verifies the listener's certificate with. Defaults to ssl_ca_file; with "
               "neither, Docker does not verify the listener."),
    cfg.StrOpt("docker_tls_cert_file",
               help="(kuryr-cnm) Written as TLSConfig CertFile of the .json spec: the client "
               "certificate Docker presents. Required with ssl_ca_file."),
    cfg.StrOpt("docker_tls_key_file",
               help="(kuryr-cnm) Written as TLSConfig KeyFile of the .json spec: the key of "
               "docker_tls_cert_file."),
    cfg.StrOpt(
        "capability_scope",
        default="local",
        choices=["local", "global"],
        help="Scope reported to Docker by NetworkDriver.GetCapabilities.",
    ),
    cfg.StrOpt(
        "connectivity_scope",
        choices=["local", "global"],
        help="(kuryr-cnm) ConnectivityScope reported to Docker; defaults to capability_scope.",
    ),
    cfg.StrOpt("local_default_address_space", default="no_address_space",
               help="Local address space reported by IpamDriver.GetDefaultAddressSpaces."),
    cfg.StrOpt("global_default_address_space", default="no_address_space",
               help="Global address space reported by IpamDriver.GetDefaultAddressSpaces."),
    cfg.StrOpt("default_port_driver", default="kuryr_libnetwork.port_driver.drivers.veth",
               deprecated_name="port_driver",
               help="How a container is plugged: veth (bare metal: a veth pair bound to this host); in a "
               "VM (nested), vlan (a trunk subport of the VM's port, a VLAN child of [binding] link_iface: "
               "use it when the VM's port can be a trunk), ipvlan (an L2 ipvlan child of link_iface, its "
               "addresses in the VM port's allowed address pairs with the VM port's own MAC: ML2/OVN, or "
               "ML2/OVS with port security) or nested (alias macvlan; a macvlan child, its addresses paired "
               "with its own MAC: ML2/OVS, or Neutron older than 28.0.1; ML2/OVN from 28.0.1 on refuses such "
               "pairs); upstream's module paths (kuryr_libnetwork.port_driver.drivers.<name>) work too, and "
               "nested with [binding] default_driver = kuryr.lib.binding.drivers.ipvlan is ipvlan."),
    cfg.ListOpt("enabled_port_drivers", default=["kuryr_libnetwork.port_driver.drivers.veth"],
                help="Accepted for compatibility; default_port_driver alone chooses the driver."),
    cfg.BoolOpt("process_external_connectivity", default=True,
                help="Apply `--expose` as a per-port security group."),
    cfg.StrOpt("bindir", default="/usr/libexec/kuryr",
               help="Directory of binding scripts, one per binding:vif_type, for vif types "
               "kuryr-cnm does not bind natively."),
    cfg.StrOpt("subnetpool_name_prefix", default="kuryrPool",
               help="Name prefix of the subnetpools kuryr creates for --subnet networks."),
    cfg.StrOpt(
        "host",
        default=socket.gethostname(),
        sample_default="<hostname>",
        help="(kuryr-cnm) The name Neutron's agents know this host by; ports are bound "
        "with binding:host_id set to it. Upstream always used the hostname.",
    ),
    cfg.IntOpt("reconcile_interval", default=300, min=0,
               help="(kuryr-cnm) Seconds between reconciler passes (also one at start); 0 turns it off."),
    cfg.IntOpt("reconcile_grace", default=300, min=0,
               help="(kuryr-cnm) A port of kuryr-cnm's that nothing holds is deleted only once it is "
               "this many seconds old (Docker may be between two calls for it)."),
    cfg.BoolOpt("debug", default=False, help="Log at DEBUG level."),
    cfg.StrOpt("log_file", help="Log to this file instead of standard error."),
]

neutron_opts = [
    cfg.StrOpt("cloud", help="(kuryr-cnm) Cloud name in clouds.yaml; when set, the "
               "keystoneauth options of this group are not needed."),
    cfg.StrOpt("default_subnetpool_v4", default="kuryr",
               help="Subnetpool for networks created without --subnet (IPv4)."),
    cfg.StrOpt("default_subnetpool_v6", default="kuryr6",
               help="Subnetpool for networks created without an IPv6 --subnet."),
    cfg.StrOpt("enable_dhcp", default="True",
               help="enable_dhcp of the subnets kuryr creates (a string, as upstream)."),
    cfg.BoolOpt("vif_plugging_is_fatal", default=False,
                help="Fail CreateEndpoint when the port does not become ACTIVE in time."),
    cfg.IntOpt("vif_plugging_timeout", default=0, min=0,
               help="Seconds to wait for the port to become ACTIVE; 0 does not wait."),
    cfg.StrOpt("region_name", help="Region of the Neutron endpoint."),
    cfg.StrOpt("endpoint_type", default="public", choices=["public", "admin", "internal"],
               help="Keystone catalog interface of the Neutron endpoint."),
]

binding_opts = [
    cfg.StrOpt("veth_dst_prefix", default="eth",
               help="Name prefix Docker gives the interface inside the container."),
    cfg.StrOpt("default_driver", default="kuryr.lib.binding.drivers.veth",
               deprecated_name="driver", help="Binding driver (veth, vlan, macvlan, ipvlan); with "
               "default_port_driver = nested, ipvlan chooses the ipvlan port driver."),
    cfg.ListOpt("enabled_drivers", default=["kuryr.lib.binding.drivers.veth"],
                help="Binding drivers that may be used."),
    cfg.StrOpt("link_iface", default="",
               help="The VM's NIC in nested mode; guessed from the VM port's MAC if empty."),
    cfg.StrOpt("vm_port_id", default="",
               help="(kuryr-cnm) Nested mode: the Neutron port of the VM's NIC. If empty it is found "
               "by the MAC of link_iface."),
    cfg.StrOpt("ovsdb_connection", default="unix:/var/run/openvswitch/db.sock",
               help="(kuryr-cnm) This host's Open vSwitch database, where ports of vif type ovs are "
               "plugged into the integration bridge; e.g. unix:/var/run/<host>/openvswitch/db.sock for "
               "a second Open vSwitch on the machine, or tcp:127.0.0.1:6640."),
]


vif_pool_opts = [
    cfg.BoolOpt("enabled", default=False,
                help="(kuryr-cnm) Keep a pool of ports per network, created in bulk and already "
                "bound to this host, so that a container start makes no Neutron write."),
    cfg.IntOpt("ports_pool_min", default=5, min=0,
               help="Refill a network's pool when fewer ports than this are ready."),
    cfg.IntOpt("ports_pool_max", default=20, min=0,
               help="Never hold more ready ports than this per network (each holds an address)."),
    cfg.IntOpt("ports_pool_batch", default=10, min=1,
               help="Ports created per bulk request when refilling."),
    cfg.IntOpt("recovery_grace", default=15, min=0,
               help="Seconds after a restart before pool ports found in Neutron are handed out: "
               "Docker first releases the addresses of starts the restart cut short."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(default_opts)
    conf.register_opts(neutron_opts, group="neutron")
    conf.register_opts(binding_opts, group="binding")
    conf.register_opts(vif_pool_opts, group="vif_pool")
    # keystoneauth's session and auth options in [neutron], as kuryr-lib registers them
    ks_loading.register_session_conf_options(conf, "neutron")
    ks_loading.register_auth_conf_options(conf, "neutron")


def load(config_files: Sequence[str] = (), config_dirs: Sequence[str] = ()) -> cfg.ConfigOpts:
    """Parse kuryr.conf files into a fresh ConfigOpts (no global state)."""
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf(args=[], project="kuryr", default_config_files=list(config_files),
         default_config_dirs=list(config_dirs), validate_default_values=True)
    try:
        enable_dhcp(conf)
    except errors.BadRequest as exc:
        raise ValueError(exc.message) from None
    return conf


def enable_dhcp(conf: cfg.ConfigOpts) -> bool:
    """[neutron] enable_dhcp: a string, as upstream has it, read the way every yes/no option is."""
    return protocol.parse_bool("[neutron] enable_dhcp", conf.neutron.enable_dhcp)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """For oslo-config-generator and `kuryr-cnm sample-config`: ours, then keystoneauth's
    session options and the password plugin's (the usual choice) in [neutron]."""
    keystone = (ks_loading.get_session_conf_options() + ks_loading.get_auth_common_conf_options()
                + ks_loading.get_auth_plugin_conf_options("password"))
    seen: set[str] = set()
    keystone = [o for o in keystone if not (o.dest in seen or seen.add(o.dest))]
    return [("DEFAULT", default_opts), ("neutron", neutron_opts + keystone), ("binding", binding_opts),
            ("vif_pool", vif_pool_opts)]
