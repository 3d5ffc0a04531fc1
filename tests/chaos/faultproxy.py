"""A fault-injecting reverse proxy in front of Neutron, run inside the test process.

A kuryr-cnm started with `[neutron] endpoint = <proxy url>` talks to Neutron through
it. By default it forwards every request unchanged. A test arms a `Fault` for the
next requests matching a method and path:

* `status`: answer that status (a Neutron-shaped error body) without forwarding;
* `delay`:  forward the request, let Neutron apply it, then hold the answer back for
            that many seconds (the client may give up: the write happened anyway,
            which is how a slow Neutron leaves orphans behind).
"""
from __future__ import annotations

import http.client
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                        "proxy-connection", "proxy-authenticate", "proxy-authorization"})


@dataclass
class Fault:
    method: str
    path: str  # a regex searched in the request path
    status: int = 0  # answer this instead of forwarding (0: forward)
    delay: float = 0.0  # seconds to hold the answer back after forwarding
    times: int = 1  # how many matching requests it hits; then it is spent
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.hits < self.times and method == self.method and re.search(self.path, path) is not None


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self._upstream = urlsplit(upstream)
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.log: list[str] = []  # "METHOD path -> status" of every request, faults marked
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="faultproxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def arm(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault is not None:
                fault.hits += 1
            return fault

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection(self._upstream.hostname, self._upstream.port, timeout=120)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:  # quiet: the test reads proxy.log
                pass

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy._take_fault(self.command, self.path)
                if fault is not None and fault.status:
                    status, headers = fault.status, [("Content-Type", "application/json")]
                    payload = json.dumps({"NeutronError": {"type": "Injected", "detail": "",
                                                           "message": f"injected fault {fault.status}"}}).encode()
                else:
                    fwd = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
                    status, headers, payload = proxy._forward(self.command, self.path, fwd, body)
                    if fault is not None and fault.delay:
                        time.sleep(fault.delay)
                with proxy._lock:
                    proxy.log.append(f"{self.command} {self.path} -> {status}{' (injected)' if fault else ''}")
                try:
                    self.send_response(status)
                    for key, value in headers:
                        if key.lower() not in HOP_BY_HOP | {"content-length"}:
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on a delayed answer

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        return Handler
