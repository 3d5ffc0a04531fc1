"""Errors that reach Docker as `{"Err": "<message>"}` with a non-200 status.

Every failure a handler can meet is one of these, with a message that says what
went wrong and what the operator can do next. Anything else is a bug: the server
still answers 500 with a one-line message and logs the traceback, never sends it.
"""
from __future__ import annotations

from http import HTTPStatus


class PluginError(Exception):
    """A failure reported to Docker; `status` is the HTTP status sent with it."""

    status: int = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class BadRequest(PluginError):
    """The request body is missing, is not JSON, or lacks a required field."""

    status = HTTPStatus.BAD_REQUEST


class UnknownMethod(PluginError):
    """Docker asked for a method kuryr-cnm does not implement (Docker reads 404 as 'optional, absent')."""

    status = HTTPStatus.NOT_FOUND


class NotFound(PluginError):
    """A Docker object (network, endpoint, pool) has no Neutron counterpart."""

    status = HTTPStatus.NOT_FOUND


class Conflict(PluginError):
    """The request conflicts with what Neutron holds (address in use, pool overlap, ports still present)."""

    status = HTTPStatus.CONFLICT


class PreconditionFailed(Conflict):
    """Neutron's If-Match revision check failed: the resource changed since it was read; read again."""

    status = HTTPStatus.PRECONDITION_FAILED


class BackendError(PluginError):
    """Neutron, OVS or the host failed or could not be reached."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR


class Unavailable(PluginError):
    """A dependency (Neutron, OVSDB) is down; the call may succeed when it is back."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


# --- Neutron's errors ----------------------------------------------------------------------
# Raised by the Neutron client only. They are not PluginErrors: the code that called Neutron
# decides what a refusal means there (a taken prefix is retried, a 409 on a fixed address is
# the user's conflict); one that reaches a handler's edge is translated once, by for_docker(),
# keeping Neutron's own message. A Neutron 400 is no bad request of Docker's, nor a 401 a 403.

class NeutronError(Exception):
    """Neutron refused a request (or could not be reached); `kind` is NeutronError's type."""

    status: int = 0
    hint: str = ""

    def __init__(self, request: str, neutron_message: str, *, kind: str = "", status: int | None = None) -> None:
        super().__init__(request, neutron_message)
        self.request = request
        self.neutron_message = neutron_message
        self.kind = kind
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        text = f"Neutron refused {self.request}: {self.neutron_message}"
        return f"{text} ({self.hint})" if self.hint else text

    def __str__(self) -> str:
        return self.message


class NeutronBadRequest(NeutronError):
    status = 400


class NeutronUnauthorized(NeutronError):
    status = 401
    hint = "Neutron or Keystone did not accept kuryr's credentials: check [neutron] auth options"


class NeutronForbidden(NeutronError):
    status = 403
    hint = "kuryr's Neutron user needs the admin role to bind ports to hosts"


class NeutronNotFound(NeutronError):
    status = 404


class NeutronConflict(NeutronError):
    status = 409


class NeutronPreconditionFailed(NeutronConflict):
    """The If-Match revision check failed: the resource changed since it was read."""
    status = 412


class NeutronUnavailable(NeutronError):
    """Neutron is down, timing out, or answered 502/503/504: the call may work later."""
    status = 503

    @property
    def message(self) -> str:
        # no answer at all (status 0): the client wrote the whole sentence, what failed and what to do
        return self.neutron_message if self.status == 0 else super().message


class NeutronServerError(NeutronError):
    status = 500


_NEUTRON_ERRORS: dict[int, type[NeutronError]] = {400: NeutronBadRequest, 422: NeutronBadRequest,
                                                 401: NeutronUnauthorized, 403: NeutronForbidden,
                                                 404: NeutronNotFound, 409: NeutronConflict,
                                                 412: NeutronPreconditionFailed, 502: NeutronUnavailable,
                                                 503: NeutronUnavailable, 504: NeutronUnavailable}


def neutron_error(status: int, request: str, neutron_message: str, kind: str = "") -> NeutronError:
    """The error for Neutron's answer `status` to `request` (e.g. 'POST /ports')."""
    return _NEUTRON_ERRORS.get(status, NeutronServerError)(request, neutron_message, kind=kind, status=status)


def for_docker(exc: NeutronError) -> PluginError:
    """What Docker gets for a Neutron error no handler turned into its own answer."""
    if isinstance(exc, NeutronNotFound):
        return NotFound(exc.message)
    if isinstance(exc, NeutronConflict):
        return Conflict(exc.message)
    if isinstance(exc, NeutronUnavailable):
        return Unavailable(exc.message)
    return BackendError(exc.message)


# Whatever kuryr-cnm's own work can fail with and a background task must log and survive.
FAILURES = (PluginError, NeutronError)
