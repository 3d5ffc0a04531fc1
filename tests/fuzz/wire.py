"""A raw HTTP/1.1 client for the plugin's Unix socket that can send what Docker never
does (bad Content-Length, odd methods, content types and paths, non-JSON bytes) and
checks that every answer is well formed. Keep-alive, like Docker: a connection the
plugin closes without saying `Connection: close` shows up as a failed next request."""
from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass, field
from typing import Any

# what the plugin's log or answer must never show
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/')


@dataclass(frozen=True)
class Request:
    path: str  # "/NetworkDriver.Join", or anything
    body: bytes = b""
    verb: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()  # sent after Host/Accept; may override Content-Length

    def describe(self) -> str:
        return f"{self.verb} {self.path[:80]} headers={list(self.headers)[:4]} body={self.body[:300]!r}"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    raw: bytes
    json: Any = field(default=None)


class ConnectionDropped(AssertionError):
    """The plugin closed a kept-alive connection without announcing it, or reset it."""


class WireClient:
    def __init__(self, socket_path: str, timeout: float = 120) -> None:
        self._path = socket_path
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._last: Request | None = None
        self.sent = 0

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self._timeout)
        sock.connect(self._path)
        return sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def send(self, req: Request) -> Answer:
        reused = self._sock is not None
        if self._sock is None:
            self._sock = self._connect()
        try:
            answer = self._exchange(self._sock, req)
        except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine) as exc:
            self.close()
            before = f" after {self._last.describe()}" if reused and self._last else ""
            raise ConnectionDropped(f"connection dropped ({exc!r}) on {req.describe()}{before}") from None
        self.sent += 1
        self._last = req
        if answer.headers.get("connection", "").lower() == "close":
            self.close()
        return answer

    @staticmethod
    def _exchange(sock: socket.socket, req: Request) -> Answer:
        names = {k.lower() for k, _ in req.headers}
        lines = [f"{req.verb} {req.path} HTTP/1.1", "Host: plugin",
                 "Accept: application/vnd.docker.plugins.v1.2+json", "User-Agent: Go-http-client/1.1"]
        if "content-length" not in names:
            lines.append(f"Content-Length: {len(req.body)}")
        lines += [f"{k}: {v}" for k, v in req.headers]
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + req.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a server may answer and close before reading a body it refuses: read that answer
        resp = http.client.HTTPResponse(sock, method=req.verb)
        resp.begin()
        raw = resp.read()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw)


def check_answer(req: Request, answer: Answer) -> Answer:
    """200 with a JSON object, or non-200 with {"Err": "<non-empty message>"}; never a traceback."""
    where = f"{req.describe()} -> {answer.status} {answer.raw[:500]!r}"
    text = answer.raw.decode("utf-8", "replace")
    assert not any(m in text for m in TRACEBACK_MARKERS), f"traceback in the answer: {where}"
    if req.verb == "HEAD":
        assert answer.raw == b"", f"HEAD answered with a body: {where}"
        return answer
    try:
        answer.json = json.loads(answer.raw)
    except ValueError:
        raise AssertionError(f"answer is not JSON: {where}") from None
    assert isinstance(answer.json, dict), f"answer is not a JSON object: {where}"
    if answer.status == 200:
        assert "Err" not in answer.json or not answer.json["Err"], f"200 with an Err: {where}"
    else:
        err = answer.json.get("Err")
        assert isinstance(err, str) and err.strip(), f"non-200 without an Err message: {where}"
        # a message quoting a megabyte of input floods Docker's error and the plugin's log
        assert len(err) < 4096, f"Err of {len(err)} characters: {where}"
    assert answer.status != 500 or "internal error" not in answer.json.get("Err", ""), \
        f"an unexpected exception in the plugin (a bug): {where}"
    return answer
