"""Keep credentials out of what kuryr-cnm writes: its log and the errors Docker shows.

The values of kuryr.conf's secret options (keystoneauth's password, token, application
credential secret...) are registered when the Neutron connection is made. `scrub`
replaces them, and any password in a URL's userinfo, with `***`. The log formatter
and the `{"Err": ...}` answers both go through it, so a library message or traceback
that quotes a credential (now or in a later release) is caught in one place.
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

MASK = "***"
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@")
_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()


def register(values: Iterable[str | None]) -> None:
    """Remember secret values; empty ones are ignored (they would match everywhere)."""
    global _secrets
    with _lock:
        _secrets = _secrets | {v for v in values if v}


def scrub(text: str) -> str:
    # longest first: a secret that contains another is masked whole
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _USERINFO.sub(rf"\1{MASK}@", text)


class Formatter(logging.Formatter):
    """A logging.Formatter whose whole output, tracebacks included, is scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))
