"""The unit tests' socket guard (``tests/unit/conftest.py``): on unless a test is marked."""

from __future__ import annotations

import socket

import httpx
import pytest
import pytest_socket

from aurous_embed import AurousClient
from tests.unit.conftest import API_KEY, LOOPBACK

# pytest-socket's errors warn as they are made; under ``filterwarnings = error`` the warning is
# what is raised, with the same message.
BLOCKED = (pytest_socket.SocketBlockedError, UserWarning)
MESSAGE = "A test tried to use socket"


def test_an_unmarked_unit_test_cannot_open_an_internet_socket_or_resolve_a_name() -> None:
    with pytest.raises(BLOCKED, match=MESSAGE):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(BLOCKED, match=MESSAGE):
        socket.getaddrinfo("api.aurous-labs.com", 443)


def test_a_client_without_an_injected_transport_cannot_reach_anything() -> None:
    # Port 9 on loopback: were the guard off, this would be a refused connection instead.
    with AurousClient(API_KEY, base_url="http://127.0.0.1:9/v1", max_retries=0) as client:
        with pytest.raises(BLOCKED, match=MESSAGE):
            client.embed("hello")


async def test_the_event_loop_still_works_its_self_pipe_is_a_unix_socket() -> None:
    left, right = socket.socketpair()
    left.close()
    right.close()


@LOOPBACK
def test_a_loopback_test_may_connect_to_loopback_only() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
    with pytest.raises(BLOCKED, match=MESSAGE), httpx.Client() as http:
        http.get("http://192.0.2.1/")  # TEST-NET-1: never routed, and blocked before it is tried
