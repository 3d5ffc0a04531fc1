"""A client that talks to the plugin exactly as Docker 20.10 does: POST over the
Unix socket, `Accept: application/vnd.docker.plugins.v1.2+json`, no Content-Type,
an empty body (Content-Length: 0) for zero-argument calls, keep-alive."""
from __future__ import annotations

import http.client
import json
import socket
from typing import Any

DOCKER_HEADERS = {
    "Accept": "application/vnd.docker.plugins.v1.2+json",
    "User-Agent": "Go-http-client/1.1",
    "Accept-Encoding": "gzip",
}


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("plugin", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class PluginClient:
    def __init__(self, socket_path: str, timeout: float = 120) -> None:
        self._conn = _UnixHTTPConnection(socket_path, timeout)

    def raw(self, method: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        # http.client adds Content-Type only if asked to; Docker sends none
        headers = dict(DOCKER_HEADERS, **{"Content-Length": str(len(body))})
        self._conn.request("POST", f"/{method}", body=body, headers=headers)
        resp = self._conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()

    def call(self, method: str, payload: Any = None) -> tuple[int, Any]:
        body = b"" if payload is None else json.dumps(payload).encode()
        status, _, data = self.raw(method, body)
        return status, json.loads(data)

    def close(self) -> None:
        self._conn.close()
