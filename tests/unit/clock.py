"""A hand-moved time.monotonic for modules that time things out: no test waits for real time."""
from __future__ import annotations

from types import ModuleType


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fake_clock(monkeypatch, module: ModuleType) -> Clock:
    """Replace `module.time.monotonic` (the module's own `import time`) with a Clock."""
    clock = Clock()
    monkeypatch.setattr(module.time, "monotonic", clock)
    return clock
