"""NeutronClient's error mapping and its one retry of a reset connection, with a fake adapter."""
from __future__ import annotations

from unittest.mock import MagicMock

import pytest
from keystoneauth1 import exceptions as ks_exc

from kuryr_cnm import errors
from kuryr_cnm.neutron import NeutronClient


class FakeResponse:
    def __init__(self, status: int, body: bytes = b"{}") -> None:
        self.status_code = status
        self.content = body
        self.text = body.decode()

    def json(self):
        import json
        return json.loads(self.content)


class FakeAdapter:
    """Fails the first `failures` requests with `exc`, then answers `response`."""

    def __init__(self, failures: int, exc: Exception, response: FakeResponse) -> None:
        self.failures = failures
        self.exc = exc
        self.response = response
        self.sent: list[str] = []

    def request(self, path, method, **_):
        self.sent.append(f"{method} {path}")
        if len(self.sent) <= self.failures:
            raise self.exc
        return self.response


def client_with(adapter: FakeAdapter) -> NeutronClient:
    client = NeutronClient(MagicMock(), timeout=1)
    client._adapter = adapter
    return client


RESET = ks_exc.ConnectFailure("Connection aborted: reset by peer")


@pytest.mark.parametrize("call,status", [(lambda c: c.delete_port("p1"), 204), (lambda c: c.list_ports(), 200),
                                         (lambda c: c.update_port("p1", name="x"), 200)])
def test_an_idempotent_request_is_retried_once_on_a_reset(call, status):
    body = b'{"ports": [], "port": {"id": "p1", "network_id": "n1"}}'
    adapter = FakeAdapter(1, RESET, FakeResponse(status, body))
    call(client_with(adapter))
    assert len(adapter.sent) == 2


def test_a_post_is_never_retried():
    adapter = FakeAdapter(1, RESET, FakeResponse(201, b'{"port": {"id": "p1", "network_id": "n1"}}'))
    with pytest.raises(errors.NeutronUnavailable, match="unreachable"):
        client_with(adapter).create_port(network_id="n1")
    assert adapter.sent == ["POST /ports"]


def test_neutron_down_is_a_clear_unavailable_error_after_two_tries():
    adapter = FakeAdapter(5, ks_exc.ConnectFailure("refused"), FakeResponse(200))
    with pytest.raises(errors.NeutronUnavailable, match="check that neutron-server runs"):
        client_with(adapter).list_networks()
    assert len(adapter.sent) == 2


def test_a_timeout_says_so():
    adapter = FakeAdapter(5, ks_exc.ConnectTimeout("slow"), FakeResponse(200))
    with pytest.raises(errors.NeutronUnavailable):
        client_with(adapter).get_port("p1")


@pytest.mark.parametrize("status,kind,docker", [
    (404, errors.NeutronNotFound, 404), (409, errors.NeutronConflict, 409), (412, errors.NeutronPreconditionFailed, 409),
    (400, errors.NeutronBadRequest, 500), (401, errors.NeutronUnauthorized, 500), (403, errors.NeutronForbidden, 500),
    (503, errors.NeutronUnavailable, 503), (500, errors.NeutronServerError, 500)])
def test_neutron_statuses_have_their_own_errors_and_one_translation_for_docker(status, kind, docker):
    """A Neutron 400 reached Docker as 'bad request' (Docker's request was fine) and a 401 as a
    403; Neutron's message and error type are kept."""
    body = b'{"NeutronError": {"message": "boom", "type": "SomethingFailed"}}'
    with pytest.raises(kind, match="boom") as caught:
        client_with(FakeAdapter(0, RESET, FakeResponse(status, body))).update_port("p1", name="x")
    assert caught.value.kind == "SomethingFailed" and not isinstance(caught.value, errors.PluginError)
    answer = errors.for_docker(caught.value)
    assert answer.status == docker and "Neutron refused PUT /ports/p1: boom" in answer.message


def test_requests_in_flight_are_bounded_and_the_rest_wait_their_turn(monkeypatch):
    """Fifty container starts at once opened fifty connections: the last ones timed out in
    Neutron's listen queue (30 s) before Neutron read them (test_pool's 50 parallel starts)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from kuryr_cnm import neutron
    monkeypatch.setattr(neutron, "MAX_IN_FLIGHT", 3)
    lock, now, most = threading.Lock(), [0], [0]
    entered = threading.Barrier(3, timeout=5)

    class Counting(FakeAdapter):
        def request(self, path, method, **_):
            with lock:
                now[0] += 1
                most[0] = max(most[0], now[0])
            try:
                entered.wait()  # three at a time in flight together, never more
                return self.response
            finally:
                with lock:
                    now[0] -= 1

    client = client_with(Counting(0, RESET, FakeResponse(204)))
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda i: client.delete_port(f"p{i}"), range(12)))
    assert most[0] == 3


class ScriptedAdapter:
    """Answers each request with the next of `answers` (status, body)."""

    def __init__(self, *answers: tuple[int, bytes]) -> None:
        self.answers = list(answers)
        self.sent: list[str] = []

    def request(self, path, method, **_):
        self.sent.append(f"{method} {path}")
        return FakeResponse(*self.answers.pop(0))


def test_a_tag_write_on_a_resource_deleted_meanwhile_says_so():
    """Neutron 29 answers PUT .../tags/<tag> on a subnet that another host just deleted with a 500
    "internal server error", which reached `docker network create` as is (seen in the multi-host
    create-during-rm test)."""
    internal = b'{"NeutronError": {"type": "HTTPInternalServerError", "message": "Request Failed: internal server error"}}'
    gone = b'{"NeutronError": {"type": "SubnetNotFound", "message": "Subnet s1 could not be found."}}'
    adapter = ScriptedAdapter((500, internal), (404, gone))
    with pytest.raises(errors.NeutronNotFound, match="the subnet s1 was deleted meanwhile"):
        client_with(adapter).add_tag("subnets", "s1", "t")
    assert adapter.sent == ["PUT /subnets/s1/tags/t", "GET /subnets/s1"]
    adapter = ScriptedAdapter((500, internal), (200, b'{"subnet": {"id": "s1"}}'))
    with pytest.raises(errors.NeutronServerError):  # there: a real server error, as it was
        client_with(adapter).set_tags("subnets", "s1", ["t"])


def test_a_tag_removal_on_a_resource_deleted_meanwhile_is_done():
    """A Docker network backing out of a network that another host's last user is deleting removes
    its tags; Neutron 29 answered DELETE .../tags/<tag> with a 500 once the network was gone, and
    CreateNetwork failed with "internal server error" (CI, the multi-host create-during-rm test)."""
    internal = (b'{"NeutronError": {"type": "HTTPInternalServerError", '
                b'"message": "Request Failed: internal server error"}}')
    gone = b'{"NeutronError": {"type": "NetworkNotFound", "message": "Network n1 could not be found."}}'
    adapter = ScriptedAdapter((500, internal), (404, gone))
    client_with(adapter).remove_tag("networks", "n1", "t")
    assert adapter.sent == ["DELETE /networks/n1/tags/t", "GET /networks/n1"]
    adapter = ScriptedAdapter((500, internal), (200, b'{"network": {"id": "n1"}}'))
    with pytest.raises(errors.NeutronServerError):  # there: a real server error, as it was
        client_with(adapter).remove_tag("networks", "n1", "t")
