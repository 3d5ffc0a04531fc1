"""The gratuitous ARP of an ipvlan container: the frame, the wait for Docker to configure the interface,
IPv4 only, and the namespace switch of the announcing thread."""
from __future__ import annotations

import contextlib
import os
import threading

import pytest

from kuryr_cnm.binding import announce

MAC = "fa:16:3e:12:34:56"


def test_the_frame_is_an_rfc5227_announcement_broadcast() -> None:
    frame = announce.arp_announcement(MAC, "10.0.0.5")
    mac, ip = bytes.fromhex("fa163e123456"), bytes([10, 0, 0, 5])
    assert frame == (b"\xff" * 6 + mac + b"\x08\x06"  # Ethernet: broadcast, from the MAC, ARP
                     + b"\x00\x01\x08\x00\x06\x04\x00\x01"  # Ethernet/IPv4, request
                     + mac + ip + b"\x00" * 6 + ip)  # sender = target = the address: OVN's bind_vport match


def test_the_interface_is_found_by_its_address_in_this_namespace() -> None:
    assert announce.interface_with("127.0.0.1") == ("lo", "00:00:00:00:00:00")
    assert announce.interface_with("192.0.2.77") is None


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """No namespace switch; an interface that Docker brings up with 10.0.0.5 after two polls."""
    seen: dict[str, list] = {"entered": [], "sent": [], "polls": [], "mount_checks": []}
    monkeypatch.setattr(announce, "netns", lambda path: (seen["entered"].append(path), contextlib.nullcontext())[1])

    def is_namespace(path: str) -> bool:  # Docker mounts the namespace after Join has answered
        seen["mount_checks"].append(path)
        return len(seen["mount_checks"]) > 2
    monkeypatch.setattr(announce, "is_namespace", is_namespace)

    def interface_with(ip: str) -> tuple[str, str] | None:
        seen["polls"].append(ip)
        return ("eth0", MAC) if ip == "10.0.0.5" and len(seen["polls"]) > 2 else None
    monkeypatch.setattr(announce, "interface_with", interface_with)
    monkeypatch.setattr(announce, "send", lambda name, frame: seen["sent"].append((name, frame)))
    return seen


def test_it_waits_for_docker_to_configure_the_interface_and_announces_ipv4_only(sandbox: dict) -> None:
    done = announce.announce("/var/run/docker/netns/1", ["fd00::5", "10.0.0.5"], wait=5, poll=0.001)
    assert done == ["10.0.0.5"] and sandbox["entered"] == ["/var/run/docker/netns/1"]
    assert sandbox["sent"] == [("eth0", announce.arp_announcement(MAC, "10.0.0.5"))]
    assert "fd00::5" not in sandbox["polls"]


def test_an_address_that_never_comes_up_is_given_up(sandbox: dict) -> None:
    assert announce.announce("/var/run/docker/netns/1", ["10.0.0.6"], wait=0.05, poll=0.001) == []
    assert sandbox["sent"] == []


def test_ipv6_alone_does_not_enter_the_sandbox(sandbox: dict) -> None:
    assert announce.announce("/var/run/docker/netns/1", ["fd00::5"]) == [] and sandbox["entered"] == []


@pytest.mark.skipif(os.geteuid() != 0, reason="setns needs CAP_SYS_ADMIN")
def test_the_thread_enters_a_namespace_and_comes_back() -> None:
    """Into this process's own namespace (a no-op for the host): the switch, and the way back."""
    before = os.stat("/proc/thread-self/ns/net").st_ino
    result: list[int] = []

    def run() -> None:
        with announce.netns(f"/proc/{os.getpid()}/ns/net"):
            result.append(os.stat("/proc/thread-self/ns/net").st_ino)
        result.append(os.stat("/proc/thread-self/ns/net").st_ino)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert result == [before, before]


def test_a_missing_sandbox_is_an_os_error() -> None:
    with pytest.raises(OSError):
        with announce.netns("/nonexistent/netns"):
            pass


def test_it_waits_for_docker_to_mount_the_namespace_and_gives_up_in_time(sandbox: dict,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker 20.10 answered Join, then mounted the sandbox: the first announcement in the VM
    failed at once with "No such file or directory" and OVN bound the address only later."""
    announce.announce("/var/run/docker/netns/1", ["10.0.0.5"], wait=5, poll=0.001)
    assert len(sandbox["mount_checks"]) == 3 and sandbox["entered"] == ["/var/run/docker/netns/1"]
    monkeypatch.setattr(announce, "is_namespace", lambda path: False)
    with pytest.raises(FileNotFoundError, match="no network namespace at /var/run/docker/netns/2"):
        announce.announce("/var/run/docker/netns/2", ["10.0.0.5"], wait=0.05, poll=0.001)


def test_a_namespace_is_told_from_the_file_docker_mounts_it_on(tmp_path) -> None:
    empty = tmp_path / "0123"
    empty.touch()
    assert announce.is_namespace(f"/proc/{os.getpid()}/ns/net")
    assert not announce.is_namespace(str(empty)) and not announce.is_namespace(str(tmp_path / "missing"))
