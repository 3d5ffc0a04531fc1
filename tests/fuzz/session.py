"""One fuzz run against one plugin: every request goes through `Session.send`, which
checks the answer, counts it (stateless or stateful, per method) and remembers the
ids of everything that may have made a Neutron resource, for the leak check."""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.fuzz.wire import Answer, Request, WireClient, check_answer


@dataclass
class Made:
    """Ids this run sent or got back: what the leak check looks for in Neutron."""
    docker_ids: set[str] = field(default_factory=set)  # network and endpoint ids sent
    pool_ids: set[str] = field(default_factory=set)  # PoolIDs the plugin handed out
    port_ids: set[str] = field(default_factory=set)  # from EndpointOperInfo


@dataclass
class Session:
    client: WireClient
    counts: Counter[str] = field(default_factory=Counter)  # "stateless"/"stateful" -> requests
    by_method: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    made: Made = field(default_factory=Made)
    slowest: tuple[float, str] = (0.0, "")

    def send(self, req: Request, part: str) -> Answer:
        started = time.monotonic()
        answer = check_answer(req, self.client.send(req))
        took = time.monotonic() - started
        if took > self.slowest[0]:
            self.slowest = (took, req.describe()[:200])
        self.counts[part] += 1
        self.by_method[req.path.lstrip("/")[:60]] += 1
        self.statuses[answer.status] += 1
        self._remember(req, answer)
        return answer

    def call(self, method: str, body: Any, part: str = "stateful") -> Answer:
        return self.send(Request(f"/{method}", b"" if body is None else json.dumps(body).encode()), part)

    def _remember(self, req: Request, answer: Answer) -> None:
        try:
            body = json.loads(req.body) if req.body else None
        except (ValueError, RecursionError):  # the fuzzer sends non-JSON and deeply nested bodies
            body = None
        if isinstance(body, dict):
            for key in ("NetworkID", "EndpointID"):
                if isinstance(body.get(key), str):
                    self.made.docker_ids.add(body[key])
        if answer.status != 200 or not isinstance(answer.json, dict):
            return
        if isinstance(answer.json.get("PoolID"), str):
            self.made.pool_ids.add(answer.json["PoolID"])
        value = answer.json.get("Value")
        if isinstance(value, dict) and isinstance(value.get("port_id"), str):
            self.made.port_ids.add(value["port_id"])

    def report(self) -> str:
        methods = ", ".join(f"{m}={n}" for m, n in sorted(self.by_method.items()) if n > 0)
        return (f"requests: {sum(self.counts.values())} ({dict(self.counts)}); statuses {dict(self.statuses)}; "
                f"slowest {self.slowest[0]:.2f} s ({self.slowest[1]}); per method: {methods}")
