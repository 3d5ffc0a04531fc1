"""A counting reverse proxy in front of Neutron, so Neutron requests are counted
outside the plugins.

Each contender of the benchmark talks to Neutron through its own proxy, so every
request is attributable to one plugin without trusting the plugin's own
accounting. The proxy forwards every request unchanged (any method, body and
headers, X-Auth-Token included) to the upstream Neutron, over one upstream
keep-alive connection per client connection, and counts it by method and path
pattern (UUIDs and tag values collapsed to `{id}` / `{tag}`).

The proxy answers two paths itself:

    GET  /__counts   JSON: totals, reads, writes, per-pattern counts, and how long
                     ago the last request / last write ended (to wait for quiet)
    POST /__reset    zero the counters (answers the counts before the reset)

Standard library only: it must run from any venv, or none.

    python3 bench/neutron_proxy.py --listen 127.0.0.1:0 --upstream http://127.0.0.1:9696
    (prints "listening on http://127.0.0.1:<port>" once it accepts connections)
"""
from __future__ import annotations

import argparse
import http.client
import json
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Headers that describe one hop, not the request (RFC 9110 §7.6.1): never forwarded.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "transfer-encoding", "upgrade", "proxy-connection"})

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX_ID = re.compile(r"(?<![0-9a-zA-Z])[0-9a-fA-F]{32,64}(?![0-9a-zA-Z])")

# gunicorn closes an idle keep-alive connection after 2 s: reconnect before that
# rather than find out by a failed send.
UPSTREAM_IDLE_LIMIT = 1.0
CLIENT_IDLE_TIMEOUT = 30.0


def path_pattern(path: str) -> str:
    """`/v2.0/ports/<uuid>/tags/kuryr.net.uuid.lh:<hex>` -> `/v2.0/ports/{id}/tags/{tag}`.

    The query string is dropped: filters are counted separately by `query_pattern`.
    """
    path = urlsplit(path).path
    parts = path.split("/")
    out = []
    for i, part in enumerate(parts):
        if i > 0 and parts[i - 1] == "tags" and part:
            out.append("{tag}")
        else:
            out.append(_HEX_ID.sub("{id}", _UUID.sub("{id}", part)))
    return "/".join(out)


def query_pattern(path: str) -> str:
    """The sorted filter names of a request, e.g. `fixed_ips,network_id` (values dropped)."""
    names = sorted({k for k, _ in parse_qsl(urlsplit(path).query, keep_blank_values=True)})
    return ",".join(names)


def is_write(method: str) -> bool:
    return method.upper() not in READ_METHODS


@dataclass
class Counts:
    """Thread-safe request counters; `snapshot()` is what /__counts answers."""
    by_pattern: Counter[str] = field(default_factory=Counter)
    by_query: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)
    reads: int = 0
    writes: int = 0
    inflight: int = 0
    last_end: float = field(default_factory=time.monotonic)
    last_write_end: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def begin(self) -> None:
        with self.lock:
            self.inflight += 1

    def end(self, method: str, path: str, status: int, elapsed: float) -> None:
        key = f"{method} {path_pattern(path)}"
        query = query_pattern(path)
        now = time.monotonic()
        with self.lock:
            self.inflight -= 1
            self.by_pattern[key] += 1
            self.seconds[key] += elapsed
            if query:
                self.by_query[f"{key}?{query}"] += 1
            if status >= 400 or status == 0:
                self.errors[f"{key} {status}"] += 1
            if is_write(method):
                self.writes += 1
                self.last_write_end = now
            else:
                self.reads += 1
            self.last_end = now

    def reset(self) -> None:
        with self.lock:
            self.by_pattern.clear()
            self.by_query.clear()
            self.errors.clear()
            self.seconds.clear()
            self.reads = self.writes = 0
            now = time.monotonic()
            self.last_end = self.last_write_end = now

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        with self.lock:
            return {
                "total": self.reads + self.writes,
                "reads": self.reads,
                "writes": self.writes,
                "inflight": self.inflight,
                "idle_seconds": round(now - self.last_end, 3) if not self.inflight else 0.0,
                "write_idle_seconds": round(now - self.last_write_end, 3),
                "by_pattern": dict(sorted(self.by_pattern.items())),
                "by_query": dict(sorted(self.by_query.items())),
                "errors": dict(sorted(self.errors.items())),
                "seconds": {k: round(v, 4) for k, v in sorted(self.seconds.items())},
            }


class Upstream:
    """One keep-alive connection to Neutron, owned by one client connection's thread."""

    def __init__(self, host: str, port: int, timeout: float = 120) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.conn: http.client.HTTPConnection | None = None
        self.last_used = 0.0

    def _fresh(self) -> http.client.HTTPConnection:
        self.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self.conn

    def request(self, method: str, path: str, body: bytes | None,
                headers: list[tuple[str, str]]) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Send one request; retry once on a fresh connection if a reused one was dropped
        before it answered (nothing was processed then: the server closed it idle)."""
        reused = self.conn is not None and time.monotonic() - self.last_used < UPSTREAM_IDLE_LIMIT
        conn = self.conn if reused else self._fresh()
        for attempt in (1, 2):
            try:
                conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                if body is not None:
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                resp = conn.getresponse()
                data = resp.read()
                self.last_used = time.monotonic()
                if resp.will_close:
                    self.close()
                return resp.status, resp.reason, resp.getheaders(), data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest):
                if not reused or attempt == 2:
                    self.close()
                    raise
                conn = self._fresh()
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class ProxyHandler(BaseHTTPRequestHandler):
    """Forward everything to the upstream Neutron except the two control paths."""
    protocol_version = "HTTP/1.1"
    timeout = CLIENT_IDLE_TIMEOUT
    server: "CountingProxy"

    def setup(self) -> None:
        super().setup()
        self.upstream = Upstream(self.server.upstream_host, self.server.upstream_port)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.upstream.close()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        if self.server.verbose:
            super().log_message(format, *args)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length")
        return self.rfile.read(int(length)) if length is not None else None

    def _reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, indent=1).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _control(self) -> bool:
        counts = self.server.counts
        if self.path == "/__counts" and self.command == "GET":
            self._reply(200, counts.snapshot())
            return True
        if self.path == "/__reset" and self.command == "POST":
            self._read_body()
            before = counts.snapshot()
            counts.reset()
            self._reply(200, before)
            return True
        return False

    def _forward(self) -> None:
        if self._control():
            return
        body = self._read_body()
        headers = [(k, v) for k, v in self.headers.items()
                   if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
        counts = self.server.counts
        counts.begin()
        started = time.monotonic()
        status = 0
        try:
            status, reason, resp_headers, data = self.upstream.request(self.command, self.path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            data = json.dumps({"error": f"neutron_proxy: upstream failed: {exc}"}).encode()
            reason, resp_headers, status_out = "Bad Gateway", [("Content-Type", "application/json")], 502
        else:
            status_out = status
        finally:
            counts.end(self.command, self.path, status, time.monotonic() - started)
        self.send_response_only(status_out, reason)
        for name, value in resp_headers:
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _forward


class CountingProxy(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, listen: tuple[str, int], upstream: str, verbose: bool = False) -> None:
        split = urlsplit(upstream)
        if split.scheme != "http" or not split.hostname:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream_host = split.hostname
        self.upstream_port = split.port or 80
        self.counts = Counts()
        self.verbose = verbose
        super().__init__(listen, ProxyHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port (port 0: any free port)")
    parser.add_argument("--upstream", default="http://127.0.0.1:9696", help="Neutron's URL")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    proxy = CountingProxy(parse_listen(args.listen), args.upstream, args.verbose)
    print(f"listening on {proxy.url}", flush=True)
    try:
        proxy.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.server_close()
    return 0


def _self_check() -> None:
    """Pure-logic checks, run by `python3 bench/neutron_proxy.py --self-check`."""
    u = "0f9b7c1e-3b5a-4c1d-9e8f-1a2b3c4d5e6f"
    assert path_pattern(f"/v2.0/ports/{u}") == "/v2.0/ports/{id}"
    assert path_pattern(f"/v2.0/ports/{u}/tags/kuryr.net.uuid.lh:{'a' * 32}") == "/v2.0/ports/{id}/tags/{tag}"
    assert path_pattern("/v2.0/ports?fixed_ips=ip_address%3D10.0.0.1") == "/v2.0/ports"
    assert path_pattern(f"/v2.0/networks/{'ab' * 16}") == "/v2.0/networks/{id}"
    assert path_pattern("/v2.0/extensions/subnet_allocation") == "/v2.0/extensions/subnet_allocation"
    assert query_pattern("/v2.0/ports?tags=a&tags=b&network_id=x") == "network_id,tags"
    assert is_write("PUT") and is_write("delete") and not is_write("GET") and not is_write("HEAD")
    c = Counts()
    c.begin(); c.end("GET", f"/v2.0/ports/{u}", 200, 0.01)
    c.begin(); c.end("POST", "/v2.0/ports", 201, 0.2)
    c.begin(); c.end("DELETE", f"/v2.0/ports/{u}", 404, 0.1)
    s = c.snapshot()
    assert (s["total"], s["reads"], s["writes"], s["inflight"]) == (3, 1, 2, 0), s
    assert s["by_pattern"] == {"DELETE /v2.0/ports/{id}": 1, "GET /v2.0/ports/{id}": 1, "POST /v2.0/ports": 1}
    assert s["errors"] == {"DELETE /v2.0/ports/{id} 404": 1}
    c.reset()
    assert c.snapshot()["total"] == 0
    _self_check_forwarding()
    print("neutron_proxy self-check ok")


def _self_check_forwarding() -> None:
    """A real round trip through the proxy to a throw-away upstream on loopback."""
    seen: list[tuple[str, str, str | None, bytes]] = []

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            pass

        def _any(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            seen.append((self.command, self.path, self.headers.get("X-Auth-Token"), body))
            out = json.dumps({"ok": True}).encode()
            self.send_response(201 if self.command == "POST" else 200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_DELETE = _any

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    proxy = CountingProxy(("127.0.0.1", 0), f"http://127.0.0.1:{upstream.server_address[1]}")
    for srv in (upstream, proxy):
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.server_address[1], timeout=5)
        for method, body in (("GET", None), ("POST", b'{"port": {}}'), ("DELETE", None)):
            conn.request(method, "/v2.0/ports?name=x", body=body, headers={"X-Auth-Token": "x"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status in (200, 201), resp.status
        conn.request("GET", "/__counts")
        counts = json.loads(conn.getresponse().read())
        assert (counts["reads"], counts["writes"]) == (1, 2), counts
        assert seen[1] == ("POST", "/v2.0/ports?name=x", "x", b'{"port": {}}'), seen
        conn.close()
    finally:
        proxy.shutdown(); upstream.shutdown()
        proxy.server_close(); upstream.server_close()


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-check"]:
        _self_check()
        sys.exit(0)
    sys.exit(main())
