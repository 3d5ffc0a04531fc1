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
