"""Fixtures shared by the integration and e2e tiers (the unit tier uses none of them)."""
from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator

import openstack
import pytest

from tests import host, residue


_SWEPT: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SWEPT:
        terminalreporter.section("leftovers of an interrupted test run, swept before this one (tests/residue.py)")
        for line in _SWEPT:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def neutron() -> "openstack.network.v2._proxy.Proxy":
    """openstacksdk's network proxy on the stack's Neutron (cloud 'aio' in clouds.yaml)."""
    conn = openstack.connect(cloud=host.NEUTRON_CLOUD)
    # gunicorn may close an idle keep-alive connection just as it is reused: retry those
    conn.network.connect_retries = 2
    conn.network.get("/extensions")  # fail here, clearly, if Neutron is down
    _SWEPT.extend(residue.sweep(conn.network))  # reported at the end of the run
    return conn.network


@pytest.fixture(scope="session")
def host_id() -> str:
    return host.hostname_id()


@pytest.fixture
def unique() -> str:
    """A short random suffix for names of resources a test makes."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def cleanup() -> Iterator[Callable[[Callable[[], object]], None]]:
    """Register undo actions; they run last-in first-out even when the test fails."""
    actions: list[Callable[[], object]] = []
    yield actions.append
    errors = []
    for action in reversed(actions):
        try:
            action()
        except Exception as exc:  # keep undoing the rest
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def netns(cleanup: Callable[[Callable[[], object]], None], unique: str) -> Callable[[str], str]:
    """Factory: netns(tag) makes a throw-away network namespace and returns its name."""
    def make(tag: str) -> str:
        name = f"kcnmt-{tag}-{unique}"
        host.netns_add(name)
        cleanup(lambda: host.netns_del(name))
        return name
    return make


@pytest.fixture
def extra_plugin(tmp_path):
    """Factory: start another kuryr-cnm with its own kuryr.conf (host.KURYR_CONF, plus overrides)
    as plugin `name`; stopped at the end of the test. Returns the log path."""
    import configparser
    import os
    import subprocess
    import sys
    import time

    procs: list[subprocess.Popen] = []

    def start(name: str, overrides: dict[str, dict[str, str]]) -> str:
        conf = configparser.ConfigParser()
        conf.read(host.KURYR_CONF)
        conf.setdefault("DEFAULT", {})
        conf["DEFAULT"]["kuryr_uri"] = f"unix:///run/docker/plugins/{name}.sock"
        conf["DEFAULT"]["plugin_name"] = name
        for section, values in overrides.items():
            if section != "DEFAULT" and not conf.has_section(section):
                conf.add_section(section)
            for key, value in values.items():
                conf[section][key] = value
        path = tmp_path / f"{name}.conf"
        with open(path, "w") as f:
            conf.write(f)
        log = tmp_path / f"{name}.log"
        exe = os.path.join(os.path.dirname(sys.executable), "kuryr-cnm")
        proc = subprocess.Popen([exe, "serve", "--config-file", str(path)], stdout=open(log, "w"),
                                stderr=subprocess.STDOUT)
        procs.append(proc)
        host.wait_for(lambda: "serving plugin" in log.read_text() or proc.poll() is not None, timeout=30,
                      what=f"kuryr-cnm {name} to start")
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
        return str(log)

    def stop(kill: bool = False) -> None:
        for proc in procs:
            proc.kill() if kill else proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        procs.clear()

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    stop()
