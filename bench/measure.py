"""The measurements, one function per figure of the issue.

Sequential figures are taken in interleaved rounds (round i runs every contender
once, in an order rotated by i), so the drift of a shared, noisy machine hits all
contenders alike and no contender always follows the same neighbour.
"""
from __future__ import annotations

import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import dockercli
from contenders import Contender, log
from neutron_api import Neutron


def rotated(items: list[Contender], i: int) -> list[Contender]:
    k = i % len(items)
    return items[k:] + items[:k]


def wait_all_quiet(contenders: list[Contender], quiet: float = 2.0, timeout: float = 60,
                   writes_only: bool = False) -> None:
    """Let background work (deferred writes, pool refills) finish before the next phase."""
    for c in contenders:
        if c.proxy:
            res = c.proxy.wait_quiet(quiet, timeout, writes_only)
            if res.get("quiet_timed_out"):
                log(f"  {c.key}: proxy not quiet after {timeout} s, going on")


def cname(c: Contender, phase: str, i: int) -> str:
    return f"kbench-{c.key}-{phase}-{i}"


# --- docker run -d / docker rm -f, sequential ----------------------------------------

@dataclass
class Sequential:
    run: dict[str, list[float]] = field(default_factory=dict)
    rm: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)
    phase_counts: dict[str, dict[str, Any]] = field(default_factory=dict)


def sequential_runs(contenders: list[Contender], rounds: int, out: Sequential) -> None:
    """`docker run -d` timed `rounds` times per contender; the containers stay up for the rm phase."""
    for c in contenders:
        out.run[c.key] = []
        out.failures.setdefault(c.key, [])
        if c.proxy:
            c.proxy.reset()
    for i in range(rounds):
        for c in rotated(contenders, i):
            res = dockercli.run_detached(cname(c, "seq", i), c.network)
            if res.ok:
                out.run[c.key].append(res.seconds)
            else:
                out.failures[c.key].append(f"run {i}: {res.error()}")
        if (i + 1) % 10 == 0:
            log(f"  docker run: {i + 1}/{rounds} rounds")
    _phase_counts(contenders, out, "run", rounds)


def sequential_removes(contenders: list[Contender], rounds: int, out: Sequential) -> None:
    """`docker rm -f` of the containers of `sequential_runs`, timed, in the same interleaving."""
    for c in contenders:
        out.rm[c.key] = []
        if c.proxy:
            c.proxy.reset()
    for i in range(rounds):
        for c in rotated(contenders, i):
            res = dockercli.remove(cname(c, "seq", i))
            if res.ok:
                out.rm[c.key].append(res.seconds)
            elif "No such container" not in res.stderr:
                out.failures[c.key].append(f"rm {i}: {res.error()}")
    _phase_counts(contenders, out, "rm", rounds)


def _phase_counts(contenders: list[Contender], out: Sequential, phase: str, n: int) -> None:
    """Neutron requests of a whole phase, once the proxies are quiet: amortized per container,
    so a pool's background refills are charged to the containers that caused them."""
    wait_all_quiet(contenders)
    for c in contenders:
        if c.proxy:
            counts = c.proxy.counts()
            counts["containers"] = n
            out.phase_counts.setdefault(c.key, {})[phase] = counts


# --- Neutron requests per container lifecycle ----------------------------------------

def lifecycle_counts(contenders: list[Contender], lifecycles: int) -> dict[str, list[dict[str, Any]]]:
    """Per contender: reset its proxy, `docker run -d` + wait quiet (count), `docker rm -f` + wait
    quiet (count). The Neutron contenders run side by side (each counted by its own proxy)."""
    neutron_ones = [c for c in contenders if c.proxy]
    results: dict[str, list[dict[str, Any]]] = {c.key: [] for c in neutron_ones}

    def one(c: Contender) -> None:
        assert c.proxy
        for i in range(lifecycles):
            name = cname(c, "life", i)
            c.proxy.wait_quiet()
            c.proxy.reset()
            run = dockercli.run_detached(name, c.network)
            after_run = c.proxy.wait_quiet()
            c.proxy.reset()
            rm = dockercli.remove(name)
            after_rm = c.proxy.wait_quiet()
            results[c.key].append({"run_ok": run.ok, "rm_ok": rm.ok, "run_error": None if run.ok else run.error(),
                                   "run": _brief(after_run), "rm": _brief(after_rm)})

    with ThreadPoolExecutor(len(neutron_ones)) as ex:
        list(ex.map(one, neutron_ones))
    return results


def _brief(counts: dict[str, Any]) -> dict[str, Any]:
    keep = ("total", "reads", "writes", "by_pattern", "errors", "seconds", "quiet_timed_out")
    return {k: counts[k] for k in keep if k in counts}


# --- time to ACTIVE and to the first ping --------------------------------------------

def _poll_active(neutron: Neutron, network_id: str, ip: str, t0: float, timeout: float,
                 interval: float = 0.02) -> tuple[float | None, int]:
    """Seconds from `t0` until Neutron says the port of `ip` is ACTIVE (polled every 20 ms),
    and how many polls that took (1: already ACTIVE at the first look, an upper bound)."""
    deadline = t0 + timeout
    polls = 0
    while time.monotonic() < deadline:
        polls += 1
        if neutron.port_status(network_id, ip) == "ACTIVE":
            return time.monotonic() - t0, polls
        time.sleep(interval)
    return None, polls


def _first_ping(container: str, peer_ip: str, t0: float, timeout: int) -> float | None:
    """Seconds from `t0` until a ping from `container` to `peer_ip` is answered.

    One `docker exec` runs busybox ping every 20 ms and stops at the first reply (grep -m1),
    instead of a loop of `ping -c1 -W1`, whose failed tries would quantize the figure to 1 s."""
    cmd = [*dockercli.DOCKER, "exec", container, "sh", "-c",
           f"ping -i 0.02 -w {timeout} {peer_ip} | grep -m1 'bytes from'"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout
    line = proc.stdout.readline()
    got = time.monotonic() - t0 if "bytes from" in line else None
    proc.wait(timeout=timeout + 30)
    return got


def active_and_ping(contenders: list[Contender], rounds: int, neutron: Neutron,
                    timeout: int = 60) -> dict[str, dict[str, list[float | None]]]:
    """Per round and contender: start a container next to a running peer; from the moment
    `docker run` returns, time its port to ACTIVE (Neutron contenders) and its first ping
    to the peer (every contender with a network). The `docker run` time itself is kept too:
    a plugin that binds early and returns late looks better "after return" than it is."""
    subjects = [c for c in contenders if c.pingable]
    out: dict[str, dict[str, list[Any]]] = {
        c.key: {"run": [], "active": [], "ping": [], "active_at_first_poll": []} for c in subjects}
    peers: dict[str, str] = {}
    for c in subjects:
        peer = cname(c, "peer", 0)
        res = dockercli.run_detached(peer, c.network)
        if not res.ok:
            raise RuntimeError(f"{c.key}: peer container did not start: {res.error()}")
        peers[c.key] = dockercli.container_ip(peer, c.network)
        if c.neutron_network_id:
            _poll_active(neutron, c.neutron_network_id, peers[c.key], time.monotonic(), timeout)
    wait_all_quiet(subjects)
    for i in range(rounds):
        for c in rotated(subjects, i):
            name = cname(c, "ping", i)
            res = dockercli.run_detached(name, c.network)
            t0 = time.monotonic()
            if not res.ok:
                out[c.key]["ping"].append(None)
                continue
            out[c.key]["run"].append(res.seconds)
            ip = dockercli.container_ip(name, c.network)
            active: list[tuple[float | None, int]] = []
            poller = None
            if c.neutron_network_id:
                nid = c.neutron_network_id
                poller = threading.Thread(target=lambda: active.append(_poll_active(neutron, nid, ip, t0, timeout)))
                poller.start()
            out[c.key]["ping"].append(_first_ping(name, peers[c.key], t0, timeout))
            if poller:
                poller.join()
                out[c.key]["active"].append(active[0][0])
                out[c.key]["active_at_first_poll"].append(active[0][1] == 1)
            dockercli.remove(name)
    for c in subjects:
        dockercli.remove(cname(c, "peer", 0))
    return out


# --- 50 in parallel -------------------------------------------------------------------

def parallel_runs(c: Contender, n: int) -> dict[str, Any]:
    """`n` `docker run -d` at once (threads released together by a barrier): wall time
    to the last one, failures; then the `n` removed at once (also timed)."""
    barrier = threading.Barrier(n)

    def go(fn: Callable[[], dockercli.Result]) -> dockercli.Result:
        barrier.wait()
        return fn()

    names = [cname(c, "par", i) for i in range(n)]
    if c.proxy:
        c.proxy.reset()
    with ThreadPoolExecutor(n) as ex:
        t0 = time.monotonic()
        runs = list(ex.map(lambda nm: go(lambda: dockercli.run_detached(nm, c.network, timeout=600)), names))
        wall = time.monotonic() - t0
    # what Neutron saw while the n started (background writes still running are not all in)
    neutron = _brief(c.proxy.counts()) if c.proxy else None
    with ThreadPoolExecutor(n) as ex:
        t1 = time.monotonic()
        rms = list(ex.map(lambda nm: go(lambda: dockercli.remove(nm, timeout=600)), names))
        rm_wall = time.monotonic() - t1
    errors = sorted({r.error() for r in runs if not r.ok})
    return {"wall": wall, "failures": sum(not r.ok for r in runs), "errors": errors,
            "latencies": [r.seconds for r in runs if r.ok], "rm_wall": rm_wall, "neutron_during_runs": neutron,
            "rm_failures": sum(not r.ok and "No such container" not in r.stderr for r in rms)}
