"""Network namespaces: entering one from a thread, and finding the others on this host.

Why: nested mode's child devices (VLAN, ipvlan, macvlan) leave the VM's namespace when Docker
moves them into a container; what kuryr-cnm plugged is then only found by looking inside the
containers' namespaces. A network namespace is a per-thread setting (setns(2), which Python
3.11's os module lacks, through libc), so whatever enters one runs in a thread of its own, or
comes back before it returns (`netns`).

The namespaces are found as the kernel has them, not by asking Docker (the reconciler must
not call Docker): each process's /proc/<pid>/ns/net, and the bind mounts Docker (its
sandboxes, /run/docker/netns) and `ip netns` (/run/netns) keep, one path per namespace.
"""
from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

CLONE_NEWNET = 0x40000000
BIND_MOUNT_DIRS = ("/run/docker/netns", "/var/run/docker/netns", "/run/netns")
OWN = "/proc/self/ns/net"

T = TypeVar("T")


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


@contextmanager
def netns(path: str) -> Iterator[None]:
    """The calling thread in the network namespace at `path` (a SandboxKey), and back after."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


def is_namespace(path: str) -> bool:
    """A namespace is mounted at `path`: it is on nsfs, as this thread's own is (before the
    bind mount the path is missing, or an empty file on the directory's file system)."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/thread-self/ns/net").st_dev
    except OSError:
        return False


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:  # the process ended, or the mount went, while we looked
        return None
    return st.st_dev, st.st_ino


def other_namespaces(proc: str = "/proc", bind_dirs: tuple[str, ...] = BIND_MOUNT_DIRS) -> list[str]:
    """One path to each network namespace on this host other than this process's own."""
    seen = {_identity(OWN)}
    found: list[str] = []
    candidates = [os.path.join(d, n) for d in bind_dirs if os.path.isdir(d) for n in sorted(os.listdir(d))]
    candidates += [f"{proc}/{pid}/ns/net" for pid in sorted(os.listdir(proc), key=_numeric) if pid.isdigit()]
    for path in candidates:
        identity = _identity(path)
        if identity is not None and identity not in seen:
            seen.add(identity)
            found.append(path)
    return found


def _numeric(name: str) -> int:
    return int(name) if name.isdigit() else -1


def in_each(paths: list[str], work: Callable[[str], T]) -> dict[str, T | Exception]:
    """`work(path)` run inside each namespace, by one thread of its own that goes back to the
    plugin's namespace after each; what failed gives its exception (OSError: the namespace went
    meanwhile, or cannot be entered)."""
    results: dict[str, T | Exception] = {}

    def visit() -> None:
        for path in paths:
            try:
                with netns(path):
                    results[path] = work(path)
            except Exception as exc:  # noqa: BLE001 - handed to the caller, in its thread
                results[path] = exc
    thread = threading.Thread(target=visit, name="visit network namespaces", daemon=True)
    thread.start()
    thread.join()
    return results
