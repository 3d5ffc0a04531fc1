"""How big the fault and fuzz tests run: short inside `make test` (CI has 60 minutes for
everything), full in `make chaos` (KURYR_CHAOS=full)."""
from __future__ import annotations

import os

FULL = os.environ.get("KURYR_CHAOS", "").lower() == "full"


def size(short: int, full: int) -> int:
    """The short figure in `make test`, the full one in `make chaos`."""
    return full if FULL else short
