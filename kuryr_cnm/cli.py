"""The one entry point, `kuryr-cnm`: serve the plugin, or print a sample kuryr.conf."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socketserver
import ssl
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from oslo_config import cfg

from kuryr_cnm import app, config, errors, nested, redact, server

LOG = logging.getLogger("kuryr_cnm")

DEFAULT_CONFIG_FILE = "/etc/kuryr/kuryr.conf"
# How long a stop may take: background Neutron writes get 30 s to land (DeferredWrites.drain),
# the OVSDB connection 10 s to close, and a margin. Past it, the process exits anyway.
SHUTDOWN_WAIT = 45.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kuryr-cnm",
        description="Docker libnetwork network + IPAM plugin for OpenStack Neutron, "
        "a drop-in replacement for kuryr-libnetwork 18 (same kuryr.conf, names and tags).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="serve Docker's plugin calls",
        description="Serve Docker's NetworkDriver and IpamDriver calls on kuryr_uri "
        f"(default unix://{config.DEFAULT_SOCKET}). Reads kuryr.conf; with a TCP "
        "kuryr_uri it writes the spec file Docker discovers the plugin by.",
    )
    _add_config_args(serve)

    gc = sub.add_parser(
        "gc", help="remove what kuryr-cnm left behind on this host",
        description="One reconciler pass: unplug OVS ports and veths whose Neutron port is gone, repair "
        "ports whose endpoint tags never landed, delete kuryr-cnm's ports bound here that nothing "
        "holds and that are older than reconcile_grace. Touches only what kuryr-cnm made on this host. "
        "With --dead-host NAME, run on any other host: remove what kuryr-cnm on host NAME left in Neutron "
        "(its ports; its Docker networks on networks shared with other hosts; networks no host uses any "
        "more), refused while Neutron sees NAME's chassis alive.")
    _add_config_args(gc)
    gc.add_argument("--dry-run", action="store_true", help="only say what would be done")
    gc.add_argument("--dead-host", metavar="NAME",
                    help="a host that is gone for good (its binding:host_id / OVN chassis name)")

    sample = sub.add_parser("sample-config", help="print a sample kuryr.conf with every option")
    sample.set_defaults(config_file=[], config_dir=[])
    return parser


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config-file", action="append", default=[], metavar="PATH",
                   help=f"kuryr.conf to read; repeatable (default {DEFAULT_CONFIG_FILE} if it exists)")
    p.add_argument("--config-dir", action="append", default=[], metavar="DIR",
                   help="read every *.conf in DIR after the files")


def _config_files(args: argparse.Namespace) -> list[str]:
    if args.config_file:
        return list(args.config_file)
    return [DEFAULT_CONFIG_FILE] if os.path.exists(DEFAULT_CONFIG_FILE) else []


def setup_logging(conf: cfg.ConfigOpts) -> None:
    handler: logging.Handler
    handler = logging.FileHandler(conf.log_file) if conf.log_file else logging.StreamHandler()
    handler.setFormatter(redact.Formatter(
        "%(asctime)s.%(msecs)03d %(process)d %(levelname)s %(name)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if conf.debug else logging.INFO)
    # openstacksdk and urllib3 are chatty at DEBUG; kuryr-cnm logs its own Neutron calls
    for noisy in ("urllib3", "keystoneauth", "openstack", "stevedore", "pyroute2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def serve(conf: cfg.ConfigOpts) -> int:
    try:
        plugin = app.build(conf)
        _check_port_driver(plugin.port_driver)
    except nested.NestedError as exc:
        LOG.error("cannot serve: %s", exc)
        return 1
    uri = conf.kuryr_uri
    try:
        srv = server.make_server(uri, plugin.router, ssl_context=_tls_context(conf),
                                 bind_all=conf.bind_all_interfaces)
        spec_file = _write_spec_file(conf, srv)
    except (OSError, ValueError) as exc:
        LOG.error("cannot listen on %s: %s", uri, exc)
        return 1
    LOG.info("kuryr-cnm serving plugin '%s' on %s (scope %s, host %s, port driver %s)",
             conf.plugin_name, uri, conf.capability_scope, conf.host,
             plugin.port_driver.describe() if plugin.port_driver else "veth")

    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        LOG.info("signal %d: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.serve_in_thread(srv)
    plugin.start_background()
    # Not a bare stop.wait(): a signal that arrives just before the main thread blocks in the
    # lock's sem_wait() is recorded but its Python handler waits until that thread wakes, so
    # the stop never came (seen once in make test: all threads still serving 30 min after
    # SIGTERM). Waking every second runs the pending handler.
    while not stop.wait(1.0):
        pass
    parts = urlsplit(uri)
    if parts.scheme == "unix":  # gone at once: Docker stops dialing a plugin that is leaving
        _unlink_quietly(parts.path)
    if spec_file:
        _unlink_quietly(spec_file)

    def close() -> None:
        srv.shutdown()
        srv.server_close()
        plugin.close()
    if not close_within(close, SHUTDOWN_WAIT):
        logging.shutdown()
        os._exit(0)  # interpreter exit would wait for the stuck worker threads too
    return 0


def close_within(close: Callable[[], None], seconds: float) -> bool:
    """close(), given `seconds`: a stop that hangs (a Neutron write, an OVSDB connect in
    flight) keeps an operator's restart and Docker waiting. False, after logging where it
    is stuck, if it did not finish; what it left is repaired by the reconciler after restart."""
    closing = threading.Thread(target=close, name="shutdown", daemon=True)
    closing.start()
    closing.join(seconds)
    if not closing.is_alive():
        return True
    frame = sys._current_frames().get(closing.ident or 0)
    stack = traceback.extract_stack(frame)[-8:] if frame is not None else []
    where = " <- ".join(f"{f.name} ({os.path.basename(f.filename)}:{f.lineno})" for f in reversed(stack))
    LOG.warning("shutdown: still closing after %.0f s, in %s; exiting anyway (the reconciler repairs "
                "what is left at the next start)", seconds, where or "an unknown place")
    return False


def _check_port_driver(driver: nested.NestedDriver | None) -> None:
    """Nested mode's prerequisites (a trunk on the VM's port, link_iface, ...) fail the start
    clearly; Neutron being down does not: each Docker call will say so."""
    if driver is None:
        return
    try:
        driver.check()
    except (errors.Unavailable, errors.NeutronUnavailable) as exc:
        LOG.warning("port driver %s: cannot check its prerequisites now: %s", driver.name, exc.message)
    except errors.FAILURES as exc:
        raise nested.NestedError(f"port driver {driver.name}: {exc.message}") from None


def _tls_wanted(conf: cfg.ConfigOpts) -> bool:
    return urlsplit(conf.kuryr_uri).scheme != "unix" and (
        conf.enable_ssl or urlsplit(conf.kuryr_uri).scheme == "https")


def _tls_context(conf: cfg.ConfigOpts) -> ssl.SSLContext | None:
    if urlsplit(conf.kuryr_uri).scheme == "unix":
        if conf.enable_ssl:
            LOG.warning("enable_ssl applies to a TCP kuryr_uri; the unix socket %s is protected by "
                        "its file mode (root only) instead", conf.kuryr_uri)
        return None
    if not _tls_wanted(conf):
        return None
    if conf.ssl_ca_file and not (conf.docker_tls_cert_file and conf.docker_tls_key_file):
        raise ValueError("ssl_ca_file makes the listener require a client certificate, but Docker has "
                         "none to present: set docker_tls_cert_file and docker_tls_key_file")
    return server.tls_context(conf.ssl_cert_file, conf.ssl_key_file, conf.ssl_ca_file)


def _write_spec_file(conf: cfg.ConfigOpts, srv: socketserver.BaseServer) -> str | None:
    """Docker finds a TCP listener through <spec_dir>/<name>.spec (a URL, plain HTTP or TLS it
    does not verify) or <name>.json (a URL and its TLSConfig): TLS gets the .json."""
    if urlsplit(conf.kuryr_uri).scheme == "unix":
        return None
    os.makedirs(conf.spec_dir, exist_ok=True)
    base = os.path.join(conf.spec_dir, conf.plugin_name)
    if _tls_wanted(conf):
        path, content = f"{base}.json", json.dumps(_json_spec(conf, srv), indent=2)
    else:
        path, content = f"{base}.spec", _dial_url("tcp", srv)
    # Docker reads <name>.spec before <name>.json: one left by an earlier setting would win
    for stale in (f"{base}.spec", f"{base}.json"):
        if stale != path and os.path.exists(stale):
            LOG.info("removing %s, written for an earlier kuryr_uri", stale)
            _unlink_quietly(stale)
    with open(path, "w", encoding="utf-8") as f:
        f.write(content + "\n")
    return path


def _json_spec(conf: cfg.ConfigOpts, srv: socketserver.BaseServer) -> dict[str, Any]:
    ca = conf.docker_tls_ca_file or conf.ssl_ca_file or ""
    if not ca:
        # moby skips verification of a .json plugin without CAFile
        LOG.warning("Docker will not verify the plugin's certificate: set docker_tls_ca_file "
                    "to the CA that signed ssl_cert_file")
    return {"Name": conf.plugin_name, "Addr": _dial_url("https", srv),
            "TLSConfig": {"InsecureSkipVerify": not ca, "CAFile": ca,
                          "CertFile": conf.docker_tls_cert_file or "",
                          "KeyFile": conf.docker_tls_key_file or ""}}


def _dial_url(scheme: str, srv: socketserver.BaseServer) -> str:
    """The URL Docker dials: the bound port (kuryr_uri may say 0), loopback for a wildcard bind."""
    host, port = srv.server_address[:2]  # type: ignore[misc]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def print_sample_config() -> int:
    for group, opts in config.list_opts():
        print(f"[{group}]")
        for opt in opts:
            for line in (opt.help or "").split(". "):
                print(f"# {line.strip()}")
            default = opt.sample_default if opt.sample_default is not None else opt.default
            if isinstance(default, list):
                default = ",".join(default)
            print(f"#{opt.dest} = {'' if default is None else default}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "sample-config":
        return print_sample_config()
    try:
        conf = config.load(_config_files(args), args.config_dir)
    except (cfg.Error, ValueError) as exc:
        print(f"kuryr-cnm: bad configuration: {exc}", file=sys.stderr)
        return 2
    setup_logging(conf)
    if args.command == "gc":
        return gc_dead_host(conf, args.dead_host, args.dry_run) if args.dead_host else gc(conf, args.dry_run)
    return serve(conf)


def gc(conf: cfg.ConfigOpts, dry_run: bool) -> int:
    """One reconciler pass, wired as `serve` wires it (this process holds no port for Docker)."""
    plugin = app.build(conf)
    try:
        report = plugin.reconciler.run(dry_run=dry_run)
    finally:
        plugin.close()
    print(report.summary())
    return 1 if report.errors else 0


def gc_dead_host(conf: cfg.ConfigOpts, dead_host: str, dry_run: bool) -> int:
    """What kuryr-cnm on a dead host left, removed from another host (wired as `serve` wires it)."""
    if dead_host == conf.host:
        print(f"kuryr-cnm gc: --dead-host {dead_host} is this host (host = {conf.host}); run it on another host",
              file=sys.stderr)
        return 2
    plugin = app.build(conf)
    try:
        report = plugin.ownership.forget_dead_host(dead_host, dry_run=dry_run)
    except (errors.PluginError, errors.NeutronError) as exc:
        print(f"kuryr-cnm gc: {exc}", file=sys.stderr)
        return 1
    finally:
        plugin.close()
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
