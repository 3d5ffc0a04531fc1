"""Credentials never reach Docker's error messages, the plugin's log or its output.

A second kuryr-cnm runs with keystoneauth password options whose password is a distinctive
random secret, at debug level, against a Keystone that cannot be reached (a closed loopback
port) or that refuses the password (the stack's Keystone, when `make test-keystone` runs it).
Every call that needs Neutron then fails; the test scans everything the plugin said.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests import host
from tests.integration.conftest import docker_id
from tests.plugin_client import PluginClient

KEYSTONE_URL = "http://127.0.0.1:5000/v3/"
KEYSTONE_LOG = "/opt/kuryr-cnm/log/keystone.log"
EXE = os.path.join(os.path.dirname(sys.executable), "kuryr-cnm")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


def _keystone_answers() -> bool:
    try:
        with urllib.request.urlopen(KEYSTONE_URL, timeout=3):
            return True
    except OSError:
        return False


@pytest.fixture(params=["keystone-down", "password-refused"])
def keystone(request) -> tuple[str, str]:
    """(auth_url, what a failed call must say)."""
    if request.param == "keystone-down":
        return f"http://127.0.0.1:{_closed_port()}/v3/", "unreachable"
    if not _keystone_answers():
        pytest.skip(f"no Keystone answers on {KEYSTONE_URL} (`make test-keystone` starts one)")
    return KEYSTONE_URL, "401"


def _auth(auth_url: str, password: str) -> dict[str, str]:
    return {"cloud": "", "auth_type": "password", "auth_url": auth_url, "username": "kuryr",
            "password": password, "project_name": "service", "user_domain_name": "Default",
            "project_domain_name": "Default", "region_name": "RegionOne", "timeout": "5"}


def _calls_that_need_neutron(client: PluginClient) -> list[tuple[int, dict]]:
    net = docker_id()
    v4 = [{"AddressSpace": "no_address_space", "Pool": "10.231.7.0/24", "Gateway": "10.231.7.1/24"}]
    calls = [
        ("IpamDriver.RequestPool", {"AddressSpace": "no_address_space", "Pool": "10.231.7.0/24",
                                    "SubPool": "", "Options": {}, "V6": False}),
        ("IpamDriver.RequestPool", {"AddressSpace": "no_address_space", "Pool": "", "SubPool": "",
                                    "Options": {}, "V6": False}),
        ("NetworkDriver.CreateNetwork", {"NetworkID": net, "Options": {}, "IPv4Data": v4, "IPv6Data": []}),
        ("IpamDriver.RequestAddress", {"PoolID": str(uuid.uuid4()), "Address": "", "Options": None}),
        ("NetworkDriver.CreateEndpoint", {"NetworkID": net, "EndpointID": docker_id(),
                                          "Interface": {"Address": "10.231.7.5/24"}, "Options": {}}),
        ("NetworkDriver.DeleteNetwork", {"NetworkID": net}),
    ]
    return [client.call(method, body) for method, body in calls]


def test_the_password_reaches_no_error_log_or_output(extra_plugin, keystone, unique):
    auth_url, cause = keystone
    secret = f"kcnm-canary-{uuid.uuid4().hex}"
    keystone_log_start = os.path.getsize(KEYSTONE_LOG) if os.path.exists(KEYSTONE_LOG) else 0
    name = f"kcnmcred{unique}"
    log = Path(extra_plugin(name, {"DEFAULT": {"debug": "true"}, "neutron": _auth(auth_url, secret)}))
    client = PluginClient(f"/run/docker/plugins/{name}.sock", timeout=60)
    answers = _calls_that_need_neutron(client)
    client.close()
    errs = [answer.get("Err", "") for status, answer in answers if status != 200]
    # the first RequestPool needs Neutron whatever else happens: it must fail, and say why
    assert answers[0][0] != 200 and cause in answers[0][1]["Err"], answers
    assert not any(secret in json.dumps(answer) for _, answer in answers), errs
    # the background pass (pool recovery, reconciler) meets the same failure and logs it
    host.wait_for(lambda: "reconcile" in log.read_text(), timeout=30, what="the reconciler's first pass")
    extra_plugin.stop()
    text = log.read_text()
    assert cause in text and secret not in text
    gc = subprocess.run([EXE, "gc", "--dry-run", "--config-file", str(log.with_suffix(".conf"))],
                        capture_output=True, text=True, timeout=60)
    assert cause in gc.stdout + gc.stderr and secret not in gc.stdout + gc.stderr
    helps = [subprocess.run([EXE, *args], capture_output=True, text=True, timeout=30)
             for args in (["--help"], ["serve", "--help"], ["sample-config"])]
    assert all(p.returncode == 0 and secret not in p.stdout + p.stderr for p in helps)
    if os.path.exists(KEYSTONE_LOG):  # the refusal, as Keystone logged it
        with open(KEYSTONE_LOG, encoding="utf-8", errors="replace") as f:
            f.seek(keystone_log_start)
            assert secret not in f.read()


def test_a_dollar_in_the_password_is_refused_without_quoting_it(tmp_path):
    """oslo.config reads '$name' as a reference to another option and its error quotes the
    name: the part of the password after the '$'."""
    head, tail = f"kcnm-canary-{uuid.uuid4().hex}", f"tail{uuid.uuid4().hex}"
    conf = tmp_path / "kuryr.conf"
    auth = _auth(f"http://127.0.0.1:{_closed_port()}/v3/", f"{head}${tail}")
    conf.write_text("[DEFAULT]\nkuryr_uri = unix:///run/docker/plugins/kcnmdollar.sock\n[neutron]\n"
                    + "".join(f"{k} = {v}\n" for k, v in auth.items() if v))
    proc = subprocess.run([EXE, "serve", "--config-file", str(conf)], capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "'$$'" in out, out
    assert head not in out and tail not in out
