"""Any vif_type without a native binder: the operator's script `<bindir>/<vif_type>`.

The arguments are kuryr-lib's (kuryr/lib/binding/drivers/veth.py), so existing
scripts keep working:

    <script> bind   <port_id> <host_ifname> <endpoint_id> <mac> <network_id> <project_id> <vif_details>
    <script> unbind <port_id> <host_ifname> <endpoint_id> <mac> <vif_details> <network_id>

vif_details is passed exactly as kuryr-lib passed it, Python's repr of the dict wrapped
in double quotes (`"{'port_filter': True, ...}"`), or '' when there are none: upstream's
scripts match on that text (e.g. `'ovs_hybrid_plug': True`). A script runs as this process's user (root), with
no standard input, in its own process group so that a timeout kills all it started.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Sequence

from kuryr_cnm.binding import Binder, BindingError, HostInterface, VifPort

LOG = logging.getLogger(__name__)

STDERR_CHARS = 500  # of a failed script's output, in the error message


class ScriptBinder(Binder):
    """The fallback binder; it serves every vif_type it is asked for."""

    def __init__(self, bindir: str, *, timeout: float = 30) -> None:
        self._bindir = bindir
        self._timeout = timeout

    def path(self, vif_type: str) -> str:
        # vif_type comes from Neutron: never let it name a file outside bindir
        if not vif_type or "/" in vif_type or vif_type.startswith("."):
            raise BindingError(f"vif_type {vif_type!r} cannot name a binding script in {self._bindir}; "
                               "check the port's binding:vif_type in Neutron")
        return os.path.join(self._bindir, vif_type)

    def check(self, port: VifPort) -> None:
        path = self.path(port.vif_type)
        if not os.path.isfile(path):
            raise BindingError(
                f"vif_type {port.vif_type!r} has no native binder and no binding script: {path} "
                f"does not exist; install a script there or check the port's binding in Neutron")
        if not os.access(path, os.X_OK):
            raise BindingError(f"binding script {path} is not executable: chmod +x it")

    def plug(self, port: VifPort, iface: HostInterface) -> None:
        self.check(port)
        self._run(port, ["bind", port.port_id, iface.host_name, port.endpoint_id, port.mac,
                         port.network_id, port.project_id, _details(port)])

    def unplug(self, port: VifPort, iface: HostInterface) -> None:
        try:
            self.check(port)
        except BindingError as exc:  # nothing runnable to undo with; the veth still goes
            LOG.warning("port %s: no unbind: %s", port.port_id, exc)
            return
        self._run(port, ["unbind", port.port_id, iface.host_name, port.endpoint_id, port.mac,
                         _details(port), port.network_id])

    def _run(self, port: VifPort, args: Sequence[str]) -> None:
        argv = [self.path(port.vif_type), *args]
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, start_new_session=True)
        except OSError as exc:
            raise BindingError(f"cannot run binding script {argv[0]}: {exc}; "
                               "check its #! line and permissions") from exc
        try:
            out, err = proc.communicate(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # all exited just now
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise BindingError(f"binding script {argv[0]} {args[0]} for port {port.port_id} did not "
                               f"finish in {self._timeout:g} s and was killed") from None
        LOG.debug("%s %s: exit %d, stdout %r", argv[0], args[0], proc.returncode, out)
        if proc.returncode != 0:
            raise BindingError(f"binding script {argv[0]} {args[0]} for port {port.port_id} exited "
                               f"{proc.returncode}: {_tail(err or out)}")


def _details(port: VifPort) -> str:
    # kuryr.lib.utils.string_mappings, byte for byte
    return '"' + str(dict(port.vif_details)) + '"' if port.vif_details else ""


def _tail(text: str) -> str:
    text = " ".join(text.split()) or "(no output)"
    return text if len(text) <= STDERR_CHARS else "..." + text[-STDERR_CHARS:]
