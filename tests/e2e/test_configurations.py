"""kuryr-cnm under other kuryr.conf settings, each as a second plugin beside the stack's."""
from __future__ import annotations

import os

from tests import host


def _cleanup_first(docker) -> None:
    """Remove containers and networks while the extra plugin still runs (its fixture stops first)."""
    docker.cleanup()
    docker.containers.clear()
    docker.networks.clear()


def _network(docker, driver: str, name: str, *args: str) -> str:
    full = f"kcnmt-{name}-{docker.tag}"
    docker("network", "create", "-d", driver, "--ipam-driver", driver, *args, full)
    docker.networks.append(full)
    return full


def test_tcp_listener_with_spec_file(docker, extra_plugin):
    name = f"kcnmtcp{docker.tag}"
    extra_plugin(name, {"DEFAULT": {"kuryr_uri": "http://127.0.0.1:23761"}})
    spec = f"/etc/docker/plugins/{name}.spec"
    assert open(spec).read().strip() == "tcp://127.0.0.1:23761"
    try:
        net = _network(docker, name, "tcp", "--subnet", "10.75.0.0/24")
        a, b = docker.run("a", net), docker.run("b", net)
        docker.exec(a, "ping", "-c", "1", "-W", "2", docker.ip(b, net))
    finally:
        _cleanup_first(docker)


def test_wait_for_active_port(docker, extra_plugin, neutron):
    name = f"kcnmwait{docker.tag}"
    log = extra_plugin(name, {"neutron": {"vif_plugging_timeout": "20", "vif_plugging_is_fatal": "true"}})
    try:
        net = _network(docker, name, "wait", "--subnet", "10.76.0.0/24")
        a = docker.run("a", net)
        ip = docker.ip(a, net)
        port = neutron.get("/ports", params={"fixed_ips": f"ip_address={ip}",
                                             "device_owner": "compute:kuryr"}).json()["ports"]
        assert [p["status"] for p in port] == ["ACTIVE"]
        assert "GET /ports/" in open(log).read()  # CreateEndpoint polled the port
    finally:
        _cleanup_first(docker)


def test_upstream_uri_default_is_not_needed(tmp_path):
    """kuryr-cnm's default kuryr_uri is the plugin socket Docker looks for, no spec file."""
    from kuryr_cnm import config
    conf = config.load()
    assert conf.kuryr_uri == "unix:///run/docker/plugins/kuryr.sock"
    assert not os.path.exists("/etc/docker/plugins/kuryr.spec")
    assert host.PLUGIN_SOCKET == "/run/docker/plugins/kuryr.sock"
