"""`make bench`: kuryr-cnm against Docker's own drivers and kuryr-libnetwork 18.0.0,
on the local stack, in one interleaved run.

Contenders: `--network none`; Docker's bridge driver on a user-defined network (the
floor); kuryr-cnm without and with its port pool (two instances of the benchmark's
own, each with its own plugin name); kuryr-libnetwork 18.0.0 from PyPI in its own
venv. Each plugin reaches Neutron through its own counting proxy, so Neutron
requests are counted outside the plugins. The machine is shared and noisy: figures
are medians and ratios to baselines measured in the same run.

Writes bench/results/<YYYY-MM-DD>.json (raw samples + summary), .md (the table) and
.png (a chart), and removes everything it made, even on failure.

    .venv/bin/python bench/run.py [--rounds 30] [--parallel 50] [--lifecycles 3] [--ping-rounds 10]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import dockercli
import measure
import report
from contenders import (POOL_BATCH, POOL_MAX, POOL_MIN, LOGS, PROJECT_VENV, REPO, Contender, KuryrCnm, KuryrLibnetwork, Proxy, cpu_seconds, log,
                        rss_kib)
from neutron_api import Neutron

RESULTS = Path(__file__).resolve().parent / "results"

# Subnets of the bench's Neutron networks: far from the default pool (10.10.0.0/16) and
# from what the tests use, so a crashed run's leftovers can be found and removed by CIDR.
SUBNETS = {"kuryr-cnm": "10.239.11.0/24", "kuryr-cnm-pool": "10.239.12.0/24", "kuryr-libnetwork": "10.239.13.0/24"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=30, help="sequential docker run -d / rm -f per contender")
    p.add_argument("--parallel", type=int, default=50, help="containers started at once per contender")
    p.add_argument("--lifecycles", type=int, default=3, help="dedicated run+rm lifecycles counted per contender")
    p.add_argument("--ping-rounds", type=int, default=10, help="ACTIVE / first-ping samples per contender")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument("--report-only", type=Path, metavar="JSON",
                   help="measure nothing: redo the summary, table and chart of a saved results JSON")
    return p.parse_args(argv)


def rerender(path: Path) -> int:
    """Rebuild .md/.png (and the JSON's summary) from a results JSON's raw samples."""
    result = json.loads(path.read_text())
    result["summary"] = report.summarize(result["samples"], [c["key"] for c in result["contenders"]],
                                         result["settings"])
    result["errors"] = [e for e in result["errors"] if not e.startswith("chart:")]
    write_results(result, path.parent)
    return 0


# --- setup ----------------------------------------------------------------------------

def host_id() -> str:
    """The chassis name OVN knows this host by: kuryr-cnm binds ports to it."""
    res = subprocess.run(["ovs-vsctl", "get", "open", ".", "external_ids:system-id"], capture_output=True, text=True)
    return res.stdout.strip().strip('"') or socket.gethostname()


def preflight(neutron: Neutron) -> dict[str, Any]:
    """The stack must be up (`make bench` depends on `make up`); the default pools must exist,
    because kuryr-libnetwork refuses to start without them."""
    env: dict[str, Any] = {"hostname": socket.gethostname(), "cpus": os.cpu_count(),
                           "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    env["dockerd"] = dockercli.server_version()
    if not dockercli.has_image():
        raise RuntimeError(f"image {dockercli.IMAGE} is missing: run `make up`")
    neutron.list("networks", fields="id", limit="1")
    subprocess.run([str(PROJECT_VENV / "bin" / "python"), str(REPO / "stack" / "default_pools.py"), "--cloud", "aio"],
                   check=True, capture_output=True)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "kuryr_cnm"],
                           capture_output=True, text=True)
    env["kuryr_cnm"] = head.stdout.strip() + (" + uncommitted changes in kuryr_cnm/" if dirty.stdout.strip() else "")
    return env


def build_contenders() -> list[Contender]:
    """The contenders, nothing started yet (so cleanup knows them even if a start fails)."""
    neutron_ones = [Contender(key, label, f"kbench-{key}", SUBNETS[key], proxy=Proxy(key))
                    for key, label in (("kuryr-cnm", "kuryr-cnm"), ("kuryr-cnm-pool", "kuryr-cnm + pool"),
                                       ("kuryr-libnetwork", "kuryr-libnetwork 18"))]
    return [Contender("none", "--network none", "none"), Contender("bridge", "bridge (floor)", "kbench-bridge"),
            *neutron_ones]


def start_plugins(contenders: list[Contender], hostid: str) -> None:
    """Per Neutron contender: its proxy, then its plugin pointed at that proxy."""
    for c in contenders:
        if not c.proxy:
            continue
        c.proxy.start()
        if c.key == "kuryr-libnetwork":
            c.plugin = KuryrLibnetwork("kuryrlib", c.proxy.url)
            c.plugin.install()
        else:
            name = "kcnm-pool-bench" if c.key == "kuryr-cnm-pool" else "kcnm-bench"
            c.plugin = KuryrCnm(name, c.proxy.url, hostid, pool=c.key == "kuryr-cnm-pool")
        log(f"starting {c.label} as plugin '{c.plugin.name}' (Neutron via {c.proxy.url})")
        c.plugin.start()


def pool_configured(conf_path: Path) -> bool:
    """Whether this checkout's kuryr-cnm knows the [vif_pool] options (unknown ones are ignored)."""
    sys.path.insert(0, str(REPO))
    try:
        from kuryr_cnm import config
        return bool(config.load([str(conf_path)]).vif_pool.enabled)
    except Exception:
        return False


def remove_leftovers(neutron: Neutron) -> list[str]:
    """What a crashed earlier run left: labelled containers and networks, then Neutron objects."""
    found = []
    names = dockercli.labelled_containers()
    if names:
        dockercli.remove(*names)
        found.append(f"{len(names)} containers")
    for net in dockercli.labelled_networks():
        dockercli.docker("network", "rm", net, timeout=120)
        found.append(f"network {net}")
    for cidr in SUBNETS.values():
        found += neutron.purge_cidr(cidr)
    return found


def create_networks(contenders: list[Contender], neutron: Neutron) -> None:
    for c in contenders:
        if c.key == "none":
            continue
        args = ["network", "create", "--label", dockercli.LABEL]
        if c.plugin:
            assert c.subnet
            gateway = c.subnet.rsplit(".", 1)[0] + ".1"
            args += ["-d", c.plugin.name, "--ipam-driver", c.plugin.name, "--subnet", c.subnet, "--gateway", gateway]
        res = dockercli.docker(*args, c.network, timeout=120)
        if not res.ok:
            raise RuntimeError(f"docker network create {c.network}: {res.error()}")
        c.docker_network_id = res.stdout.strip()
        if c.plugin:
            net = neutron.network_of_docker_network(c.docker_network_id)
            if not net:
                raise RuntimeError(f"{c.label}: no Neutron network tagged for Docker network {c.network}")
            c.neutron_network_id = net["id"]
        log(f"network {c.network} created ({c.subnet or 'Docker IPAM'})")


def warm_up(contenders: list[Contender]) -> None:
    """One run + rm per contender (images, caches, first-call costs), then let every plugin
    go quiet, so a pool is full when the timed rounds start (no writes for 2 s)."""
    for c in contenders:
        name = measure.cname(c, "warm", 0)
        res = dockercli.run_detached(name, c.network)
        if not res.ok:
            raise RuntimeError(f"{c.label}: warm-up docker run failed: {res.error()}")
        dockercli.remove(name)
    measure.wait_all_quiet(contenders, writes_only=True)


def pool_ports(neutron: Neutron, c: Contender) -> int:
    if not c.neutron_network_id:
        return 0
    return len(neutron.list("ports", network_id=c.neutron_network_id, name="kuryr-pool-port", fields="id"))


# --- teardown -------------------------------------------------------------------------

def cleanup(contenders: list[Contender], neutron: Neutron) -> dict[str, Any]:
    """Containers, networks (while plugins and proxies still serve), plugins, spec files,
    proxies; then ask Neutron whether anything of the bench is left, and delete it if so."""
    done: dict[str, Any] = {"errors": [], "leftovers": []}

    def step(what: str, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:  # keep cleaning
            done["errors"].append(f"{what}: {exc}")

    names = dockercli.labelled_containers()
    for i in range(0, len(names), 25):
        step("docker rm", lambda chunk=names[i:i + 25]: dockercli.remove(*chunk, timeout=600))
    for c in contenders:
        if c.key != "none":
            step(f"docker network rm {c.network}",
                 lambda c=c: dockercli.docker("network", "rm", c.network, timeout=120))
    for c in contenders:
        if c.plugin:
            step(f"stop {c.plugin.name}", c.plugin.stop)
    for c in contenders:
        if c.subnet:
            left = neutron.leftovers(c.subnet, c.docker_network_id)
            if left:
                done["leftovers"] += left
                step(f"purge {c.subnet}", lambda c=c: neutron.purge_cidr(c.subnet))
    for c in contenders:
        if c.proxy:
            step(f"stop proxy {c.key}", c.proxy.stop)
    if dockercli.labelled_networks() or dockercli.labelled_containers():
        done["errors"].append("labelled containers or networks still in Docker after cleanup")
    done["ok"] = not done["errors"] and not done["leftovers"]
    return done


# --- the run --------------------------------------------------------------------------

def measure_all(args: argparse.Namespace, contenders: list[Contender], neutron: Neutron,
                samples: dict[str, Any]) -> None:
    seq = measure.Sequential()
    samples["sequential"] = seq.__dict__
    log(f"sequential docker run -d: {args.rounds} interleaved rounds")
    measure.sequential_runs(contenders, args.rounds, seq)
    log("sequential docker rm -f")
    measure.sequential_removes(contenders, args.rounds, seq)
    log(f"Neutron requests per lifecycle: {args.lifecycles} per contender")
    samples["lifecycle"] = measure.lifecycle_counts(contenders, args.lifecycles)
    log(f"time to ACTIVE and to first ping: {args.ping_rounds} interleaved rounds")
    samples["active_ping"] = measure.active_and_ping(contenders, args.ping_rounds, neutron)
    for c in measure.rotated(contenders, 1):
        measure.wait_all_quiet(contenders, writes_only=True)
        log(f"{args.parallel} x docker run -d in parallel: {c.label}")
        samples["parallel"][c.key] = res = measure.parallel_runs(c, args.parallel)
        log(f"  {res['wall']:.1f} s, {res['failures']} failures; rm {res['rm_wall']:.1f} s")
    measure.wait_all_quiet(contenders)


def plugin_processes(contenders: list[Contender], samples: dict[str, Any], when: str) -> None:
    for c in contenders:
        if c.plugin:
            entry = samples["processes"].setdefault(c.key, {})
            entry[f"rss_kib_{when}"] = rss_kib(c.plugin.pid)
            cpu = cpu_seconds(c.plugin.pid)
            if when == "start":
                entry["cpu_start"] = cpu
            elif cpu is not None and entry.get("cpu_start") is not None:
                entry["cpu_seconds"] = cpu - entry["cpu_start"]


def write_results(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    base = out / result["date"]
    files = {"json": f"{base}.json", "md": f"{base}.md", "png": f"{base}.png"}
    result["files"] = {k: os.path.basename(v) for k, v in files.items()}
    try:
        report.chart(result, Path(files["png"] + ".tmp"))
        os.replace(files["png"] + ".tmp", files["png"])
    except Exception as exc:
        result["errors"].append(f"chart: {exc}")
    for key, text in (("md", report.markdown(result)), ("json", json.dumps(result, indent=1, default=str))):
        Path(files[key] + ".tmp").write_text(text)
        os.replace(files[key] + ".tmp", files[key])
    log(f"results: {files['md']}, {files['json']}, {files['png']}")


def notes(contenders: list[Contender], samples: dict[str, Any], parallel: int) -> list[str]:
    pool = samples["pool"]
    out = [
        "Variants that ran: --network none, bridge, kuryr-cnm (no pool), " + (
            f"kuryr-cnm + pool ([vif_pool] enabled, min {POOL_MIN} / max {POOL_MAX} / batch {POOL_BATCH}; "
            f"{pool['ports_after_warmup']} pool "
            "ports ready after the warm-up)" if pool["configured"] else
            "kuryr-cnm 'pool' variant WITHOUT a pool: this kuryr-cnm does not know [vif_pool] (it behaves as no pool)")
        + ", kuryr-libnetwork 18.0.0 (PyPI, own venv, werkzeug dev server from `kuryr-server`).",
        "Neutron requests are counted by one reverse proxy per plugin (bench/neutron_proxy.py), outside the "
        "plugins; reads = GET, writes = POST/PUT/DELETE. Per-lifecycle counts wait until the proxy is quiet "
        "for 2 s after `docker run` and after `docker rm`, so background writes are included; the amortized "
        "row divides everything the proxy saw during the sequential runs and removes by their number.",
        "Port ACTIVE: Neutron polled every 20 ms directly on :9696 (not through a proxy) from the moment "
        "`docker run -d` returned. First ping: one `docker exec` running busybox `ping -i 0.02` to a peer "
        "container on the same network, stopped at the first reply; includes `docker inspect` and "
        "`docker exec` start-up (~0.1–0.2 s), which the bridge floor pays too.",
        "Plugin RSS: VmRSS of the plugin process and its descendants after all runs; CPU time: user+system "
        "from the warm-up to the end.",
        "kuryr-libnetwork's ovs binding script leaves TX checksum offload on the container veth; on this "
        "userspace OVS datapath TCP between its containers then fails while ping works (checked by hand: "
        "an HTTP GET between two of its containers times out, and works after `ethtool -K eth0 tx off` in "
        "both). Not patched: only ping is measured.",
        *_first_poll_notes(contenders, samples),
        f"{parallel}-parallel order: {', '.join(c.key for c in measure.rotated(contenders, 1))}, one contender at a "
        "time, after its plugins were quiet; `docker rm -f` of the same containers in parallel is timed as well.",
    ]
    return out


def _first_poll_notes(contenders: list[Contender], samples: dict[str, Any]) -> list[str]:
    out = []
    for c in contenders:
        firsts = samples["active_ping"].get(c.key, {}).get("active_at_first_poll", [])
        if firsts and any(firsts):
            out.append(f"{c.label}: the port was already ACTIVE at the first poll in {sum(firsts)} of "
                       f"{len(firsts)} samples (ACTIVE before `docker run` returned; the figure is the time "
                       "of that first look, an upper bound).")
    return out


def _interrupt(signum: int, _frame: Any) -> None:
    """SIGTERM/SIGINT/SIGHUP end the measurements the way Ctrl-C does: cleanup still runs."""
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        return rerender(args.report_only)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    started = dt.datetime.now()
    t0 = time.monotonic()
    neutron = Neutron()
    samples: dict[str, Any] = {"parallel": {}, "processes": {}, "lifecycle": {}, "active_ping": {},
                               "sequential": {"run": {}, "rm": {}, "failures": {}, "phase_counts": {}},
                               "pool": {"configured": False, "ports_after_warmup": 0}}
    result: dict[str, Any] = {"date": started.strftime("%Y-%m-%d"), "started": started.isoformat(timespec="seconds"),
                              "settings": {k: v for k, v in vars(args).items() if k not in ("out", "report_only")},
                              "errors": [],
                              "samples": samples, "contenders": []}
    contenders: list[Contender] = []
    ok = False
    try:
        LOGS.mkdir(parents=True, exist_ok=True)
        result["environment"] = env = preflight(neutron)
        contenders = build_contenders()
        log("installing kuryr-libnetwork 18.0.0 if needed, starting proxies and plugins")
        start_plugins(contenders, host_id())
        env["kuryr_libnetwork"] = KuryrLibnetwork.version()
        left = remove_leftovers(neutron)
        if left:
            log(f"removed leftovers of an earlier run: {left}")
        create_networks(contenders, neutron)
        pool_c = next(c for c in contenders if c.key == "kuryr-cnm-pool")
        assert isinstance(pool_c.plugin, KuryrCnm)
        samples["pool"]["configured"] = pool_configured(pool_c.plugin.conf_path)
        log("warm-up")
        warm_up(contenders)
        samples["pool"]["ports_after_warmup"] = pool_ports(neutron, pool_c)
        log(f"pool: {'configured' if samples['pool']['configured'] else 'NOT configured'}, "
            f"{samples['pool']['ports_after_warmup']} ready ports")
        plugin_processes(contenders, samples, "start")
        measure_all(args, contenders, neutron, samples)
        plugin_processes(contenders, samples, "end")
        ok = True
    except (Exception, KeyboardInterrupt) as exc:
        result["errors"].append(f"benchmark stopped: {exc.__class__.__name__}: {exc}")
        log(f"ERROR: {exc.__class__.__name__}: {exc}")
        traceback.print_exc()
    finally:
        log("cleaning up")
        result["cleanup"] = cleanup(contenders, neutron)
        log(f"cleanup: {'clean' if result['cleanup']['ok'] else result['cleanup']}")
    result["contenders"] = [c.describe() for c in contenders]
    result.setdefault("environment", {})["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    result["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    result["duration_s"] = time.monotonic() - t0
    if ok:
        result["summary"] = report.summarize(samples, [c.key for c in contenders], result["settings"])
        result["notes"] = notes(contenders, samples, args.parallel)
        write_results(result, args.out)
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        failed = args.out / f"{result['date']}.failed.json"
        failed.write_text(json.dumps(result, indent=1, default=str))
        log(f"benchmark failed; partial samples in {failed}")
    return 0 if ok and result["cleanup"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
