"""Unit-test helpers: a scripted fake API on httpx.MockTransport and a clock that never sleeps.

Unit tests open no sockets: every test under ``tests/unit`` runs with pytest-socket's guard on
(AF_UNIX allowed, for the event loop's self-pipe), so creating an internet socket or resolving a
name raises ``SocketBlockedError``. A test that starts its own server on loopback says so with
``@pytest.mark.allow_hosts(["127.0.0.1"])`` (docs/testing.md, "Sockets").
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_socket

from aurous_embed import AsyncAurousClient, AurousClient
from tests.helpers import Flavour, make_client

#: The markers (from pytest-socket) that let a unit test open sockets; nothing else does.
SOCKET_MARKERS = ("allow_hosts", "enable_socket")
#: The mark of a unit test that starts its own server on loopback.
LOOPBACK = pytest.mark.allow_hosts(["127.0.0.1"])


@pytest.hookimpl(tryfirst=True)  # before pytest-socket's own hook and before fixtures are set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Guard the sockets of every test in this directory unless it is marked (see above)."""
    if not any(item.get_closest_marker(name) for name in SOCKET_MARKERS):
        pytest_socket.disable_socket(allow_unix_socket=True)
    # pytest-socket's teardown hook puts the real socket back after every test.


API_KEY = "al_live_" + "0123456789abcdef" * 4
BASE_URL = "https://api.test.invalid/v1"
#: The environment variables that name a proxy (httpx and aiohttp read the same ones).
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


def embedding_body(vector: list[float] | str | None = None, **usage: Any) -> dict[str, Any]:
    """A documented success body."""
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": vector or [0.1, 0.2, 0.3]}],
        "model": "aurous-embed-vision-1.0",
        "usage": {
            "prompt_tokens": usage.get("tokens", 3),
            "total_tokens": usage.get("tokens", 3),
            "credits_charged": usage.get("credits", 0.00005625),
            "breakdown": {
                "input": {"text": usage.get("credits", 0.00005625), "visual": 0, "video": 0},
                "model": "aurous-embed-vision-1.0",
            },
        },
    }


def error_body(
    code: str, type_: str = "invalid_request", param: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "type": type_,
            "code": code,
            "message": f"message for {code}",
            "param": param,
            "doc_url": f"https://docs.aurous-labs.com/errors#{code}",
            "request_id": "req_01TESTERRORREQUESTID0000",
        }
    }


def respond(
    status: int = 200, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    payload = embedding_body() if body is None and status < 300 else body
    base = {"Aurous-Request-Id": "req_01TESTREQUESTID000000000", "Aurous-Version": "2026-05-15"}
    return httpx.Response(status, json=payload, headers={**base, **(headers or {})})


Responder = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeAPI:
    """Records every request; answers from a script (a list of responders) or a default."""

    script: list[Responder | httpx.Response | Exception] = field(default_factory=list)
    default: Responder = field(default=lambda request: respond())
    requests: list[httpx.Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            step = self.script.pop(0) if self.script else self.default
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(request)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]


@dataclass
class FakeClock:
    """A clock whose sleeps are recorded, not slept."""

    now: float = 1_800_000_000.0
    sleeps: list[float] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def api() -> FakeAPI:
    return FakeAPI()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(api: FakeAPI, clock: FakeClock) -> Iterator[AurousClient]:
    with make_client("sync", API_KEY, handler=api, base_url=BASE_URL, clock=clock) as c:
        yield c


@pytest.fixture
def aclient(api: FakeAPI, clock: FakeClock) -> AsyncAurousClient:
    client: AsyncAurousClient = make_client(
        "async", API_KEY, handler=api, base_url=BASE_URL, clock=clock
    )
    return client


MakeClient = Callable[..., Any]


@pytest.fixture
def make(flavour: Flavour, api: FakeAPI, clock: FakeClock) -> Iterator[MakeClient]:
    """``make(**options)``: a client of the test's ``flavour`` on the fake API and clock.

    Sync clients are closed after the test; call them through ``tests.helpers.settle``.
    """
    made: list[Any] = []

    def build(**options: Any) -> Any:
        options.setdefault("base_url", BASE_URL)
        options.setdefault("clock", clock)
        made.append(make_client(flavour, API_KEY, handler=api, **options))
        return made[-1]

    yield build
    for client in made:
        if isinstance(client, AurousClient):
            client.close()


@pytest.fixture
def any_client(make: MakeClient) -> Any:
    """The sync or the async client (per ``flavour``) on the fake API and clock."""
    return make()


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
