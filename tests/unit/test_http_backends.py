"""The async client behaves the same over httpx and over aiohttp (``http_backend=``).

A loopback server started by each test misbehaves on purpose (drops the connection, answers half
a body, answers garbage, never answers, redirects, compresses, sets cookies); every case must end
in the same typed error, with the same "may have reached the server", on both backends.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import logging
import socket
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import h11
import pytest

import aurous_embed._connections as http_module
from aurous_embed import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncAurousClient,
    ClientClosedError,
    InputValidationError,
    MissingDependencyError,
)
from aurous_embed._connections import HTTPBackend
from aurous_embed.testing import Emulator
from tests.unit.conftest import LOOPBACK, FakeClock, embedding_body

API_KEY = "al_live_" + "5" * 64
BODY = json.dumps(embedding_body([0.5, 0.25, -0.125], tokens=2)).encode()


def answer(body: bytes = BODY, *headers: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", *headers]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass(frozen=True)
class HangUpAfter:
    """Send these bytes, then close the connection."""

    data: bytes


@dataclass(frozen=True)
class StallAfter:
    """Send these bytes (an answer cut short), set ``Server.stalled``, then send nothing more."""

    data: bytes


Action = bytes | HangUpAfter | StallAfter | None
HOLD = b"hold"


@dataclass
class Server:
    """Answers the n-th request with the n-th action: bytes to send, ``HangUpAfter(bytes)``,
    ``None`` to hang up at once, or ``HOLD`` to never answer."""

    actions: list[Action]
    requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    stalled: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")[1:]
                headers = dict(line.lower().split(": ", 1) for line in lines if line)
                await reader.readexactly(int(headers.get("content-length", 0)))
                self.requests.append(headers)
                action = self.actions[len(self.requests) - 1]
                if action == HOLD:
                    await self.hold.wait()
                    return
                if action is None:
                    return
                writer.write(action if isinstance(action, bytes) else action.data)
                await writer.drain()
                if isinstance(action, StallAfter):
                    self.stalled.set()
                    await self.hold.wait()
                if not isinstance(action, bytes):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


Serve = Callable[..., Awaitable[Server]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start a loopback server that answers with ``actions`` (stopped after the test)."""
    started: list[tuple[Server, asyncio.Server]] = []

    async def start(*actions: Action) -> Server:
        server = Server(list(actions))
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        server.port = listener.sockets[0].getsockname()[1]
        started.append((server, listener))
        return server

    yield start
    for server, listener in started:
        server.hold.set()
        listener.close()
        await listener.wait_closed()


def client(server: Server, backend: HTTPBackend, **options: object) -> AsyncAurousClient:
    return AsyncAurousClient(
        API_KEY,
        base_url=server.base_url,
        http_backend=backend,
        **options,  # type: ignore[arg-type]
    )


@LOOPBACK
async def test_an_answer_is_parsed_the_same(serve: Serve, http_backend: HTTPBackend) -> None:
    server = await serve(answer())
    async with client(server, http_backend) as aclient:
        result = await aclient.embed("x")
    assert result.embedding == [0.5, 0.25, -0.125]
    assert server.requests[0]["x-api-key"] == API_KEY


@LOOPBACK
@pytest.mark.parametrize(
    "action",
    [
        pytest.param(None, id="hang-up-after-the-request"),
        pytest.param(HangUpAfter(answer()[:-20]), id="half-an-answer"),
        pytest.param(HangUpAfter(b"NOT HTTP AT ALL\r\n\r\n"), id="garbage"),
    ],
)
async def test_failures_after_sending_may_have_reached_the_server(
    serve: Serve, http_backend: HTTPBackend, action: Action
) -> None:
    server = await serve(action)
    async with client(server, http_backend, max_retries=0) as aclient:
        with pytest.raises(APIConnectionError) as info:
            await aclient.embed("x")
    assert type(info.value) is APIConnectionError
    assert info.value.may_have_reached_server is True
    assert len(server.requests) == 1


@LOOPBACK
async def test_a_refused_connection_never_reached_the_server(http_backend: HTTPBackend) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with AsyncAurousClient(
        API_KEY, base_url=f"http://127.0.0.1:{port}/v1", http_backend=http_backend, max_retries=0
    ) as aclient:
        with pytest.raises(APIConnectionError) as info:
            await aclient.embed("x")
    assert type(info.value) is APIConnectionError
    assert info.value.may_have_reached_server is False
    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value.__cause__)


@LOOPBACK
async def test_no_answer_within_the_timeout_is_a_timeout(
    serve: Serve, http_backend: HTTPBackend
) -> None:
    server = await serve(HOLD)
    async with client(server, http_backend, max_retries=0, timeout=0.2) as aclient:
        with pytest.raises(APITimeoutError) as info:
            await aclient.embed("x")
    assert info.value.may_have_reached_server is True


@LOOPBACK
async def test_a_dropped_answer_is_retried_with_the_same_idempotency_key(
    serve: Serve, http_backend: HTTPBackend
) -> None:
    server = await serve(None, answer())
    clock = FakeClock()
    async with client(server, http_backend, max_retries=1, clock=clock) as aclient:
        result = await aclient.embed("x")
        assert aclient.usage.requests == 1
    assert len(clock.sleeps) == 1  # one backoff, on the fake clock
    assert result.embedding == [0.5, 0.25, -0.125]
    first, second = server.requests
    assert first["idempotency-key"] == second["idempotency-key"]


@LOOPBACK
async def test_redirects_are_never_followed(serve: Serve, http_backend: HTTPBackend) -> None:
    elsewhere = answer(b"", "Location: http://127.0.0.1:9/v1/embeddings", status="307 Temporary")
    server = await serve(elsewhere, answer())
    async with client(server, http_backend, max_retries=0) as aclient:
        with pytest.raises(APIStatusError) as info:
            await aclient.embed("x")
    assert info.value.status_code == 307
    assert len(server.requests) == 1


@LOOPBACK
async def test_compressed_answers_are_decoded_and_cookies_never_sent_back(
    serve: Serve, http_backend: HTTPBackend
) -> None:
    packed = answer(gzip.compress(BODY), "Content-Encoding: gzip", "Set-Cookie: session=abc")
    server = await serve(packed, packed)
    async with client(server, http_backend) as aclient:
        results = [await aclient.embed("x"), await aclient.embed("y")]
    assert [r.embedding for r in results] == [[0.5, 0.25, -0.125]] * 2
    assert all("cookie" not in headers for headers in server.requests)


def test_http_backend_is_checked() -> None:
    with pytest.raises(InputValidationError) as info:
        AsyncAurousClient(API_KEY, http_backend="requests")  # type: ignore[arg-type]
    assert info.value.param == "http_backend" and "'requests'" in str(info.value)
    import httpx

    with pytest.raises(InputValidationError, match="exclusive"):
        AsyncAurousClient(API_KEY, http_backend="aiohttp", http_client=httpx.AsyncClient())


@pytest.mark.usefixtures("no_proxy")
async def test_auto_uses_aiohttp_only_when_it_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with AsyncAurousClient(API_KEY) as aclient:
        connections = (await aclient._for_loop()).connections
        assert connections is not None and connections._session is not None
    monkeypatch.setattr(http_module, "_aiohttp_available", lambda: False)
    async with AsyncAurousClient(API_KEY) as aclient:
        connections = (await aclient._for_loop()).connections
        assert connections is not None and connections._session is None
    with pytest.raises(MissingDependencyError, match=r"aurous-embed\[speedups\]"):
        AsyncAurousClient(API_KEY, http_backend="aiohttp")


@LOOPBACK
async def test_a_closed_client_refuses_to_send(serve: Serve, http_backend: HTTPBackend) -> None:
    server = await serve(answer())
    aclient = client(server, http_backend)
    await aclient.embed("x")
    connections = (await aclient._for_loop()).connections
    assert connections is not None
    await connections.aclose()
    with pytest.raises(ClientClosedError, match="closed"):
        async with connections.lease():
            pass
    await aclient.close()


@LOOPBACK
async def test_a_request_on_a_closed_aiohttp_session_is_a_connection_error(serve: Serve) -> None:
    # aiohttp says RuntimeError("Session is closed") (and "Connection closed." for a read that
    # starts after close): a request racing close() surfaced as a bare RuntimeError.
    pytest.importorskip("aiohttp")
    import httpx

    from aurous_embed._aiohttp import AiohttpTransport

    server = await serve(answer())
    transport = AiohttpTransport(http_module.default_ssl_context())
    await transport.aclose()
    with pytest.raises(httpx.ConnectError, match="not sent"):
        await transport.handle_async_request(httpx.Request("POST", server.base_url, content=b"{}"))
    assert server.requests == []


async def reading_the_body(aclient: AsyncAurousClient) -> None:
    """Let the loop run until the client has read an answer's headers and waits for its body."""
    connections = (await aclient._for_loop()).connections
    assert connections is not None
    for _ in range(10_000):
        if connections._session is not None:  # aiohttp: the answers being read
            if connections._session._reading:
                return
        else:  # httpx: h11's view of the server's side of each lane's connection
            for lane in connections._lanes.every():
                for connection in lane._pool.connections:
                    state = getattr(connection._connection, "_h11_state", None)
                    if state is not None and state.their_state is h11.SEND_BODY:
                        return
        await asyncio.sleep(0)
    raise AssertionError("the client never started reading the body")


@LOOPBACK
async def test_closing_the_client_ends_a_call_whose_answer_is_half_read(
    serve: Serve, http_backend: HTTPBackend
) -> None:
    # aiohttp's session.close() never woke a read of a body whose headers had arrived: the call
    # hung until the test's guard (2 of 20 runs of the batch-close test); over httpx the
    # socket is shut. Either way the call ends at once, with ClientClosedError.
    server = await serve(StallAfter(answer()[:-5]))
    aclient = client(server, http_backend, max_retries=0)
    task = asyncio.ensure_future(aclient.embed("x"))
    await asyncio.wait_for(server.stalled.wait(), 10)
    await reading_the_body(aclient)
    await aclient.close()
    with pytest.raises(ClientClosedError):
        await asyncio.wait_for(task, 10)


@LOOPBACK
def test_a_loop_closed_without_shutdown_leaves_no_error_logs(
    http_backend: HTTPBackend, caplog: pytest.LogCaptureFixture
) -> None:
    # What LlamaIndex does to run our coroutines from inside a running loop: a new loop, closed
    # without shutting down async generators, so the client never gets to close its connections.
    with Emulator() as emu, warnings.catch_warnings():
        # Their sockets are left to the garbage collector, over httpx as over aiohttp.
        warnings.simplefilter("ignore", ResourceWarning)
        aclient = AsyncAurousClient(emu.api_key, base_url=emu.base_url, http_backend=http_backend)
        for _ in range(2):
            loop = asyncio.new_event_loop()
            try:
                assert len(loop.run_until_complete(aclient.embed_many(["a", "b"]))) == 2
            finally:
                loop.close()
        del aclient
        gc.collect()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
