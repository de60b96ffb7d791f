"""The client's own pools: requests go straight to the transport, as an httpx.Client would send them.

A loopback HTTP server started by each test records what arrives, so the direct path is compared
with the path through a caller's ``httpx.Client`` on the wire, not by inspecting objects.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import certifi
import httpx
import pytest

import aurous_embed._connections as http_module
from aurous_embed import AsyncAurousClient, AurousClient
from aurous_embed._async_loops import Connections
from aurous_embed._connections import HTTP_BACKENDS, HTTPBackend
from tests.unit.conftest import LOOPBACK, PROXY_VARIABLES, embedding_body

API_KEY = "al_live_" + "7" * 64
BODY = json.dumps(embedding_body([0.5, 0.25, -0.125], tokens=2)).encode()


class Recorder(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[tuple[str, dict[str, str], bytes]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.seen.append((self.path, headers, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder()
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        recorder.shutdown()
        recorder.server_close()
        thread.join()


def without_idempotency_key(headers: dict[str, str]) -> dict[str, str]:
    assert len(headers.pop("idempotency-key")) == 36
    return headers


@LOOPBACK
@pytest.mark.usefixtures("no_proxy")
def test_own_pool_sends_what_an_httpx_client_sends(server: Recorder) -> None:
    with AurousClient(API_KEY, base_url=server.base_url) as own:
        assert own._requester.lanes is not None  # the direct path is the one under test
        direct = own.embed("same input")
    with (
        httpx.Client() as http,
        AurousClient(API_KEY, base_url=server.base_url, http_client=http) as theirs,
    ):
        assert theirs._requester.lanes is None
        through_client = theirs.embed("same input")
    assert direct.embedding == through_client.embedding == [0.5, 0.25, -0.125]
    (path_a, headers_a, body_a), (path_b, headers_b, body_b) = server.seen
    assert path_a == path_b == "/v1/embeddings"
    assert body_a == body_b
    headers_a, headers_b = without_idempotency_key(headers_a), without_idempotency_key(headers_b)
    assert set(headers_a) == set(headers_b)
    for name in ("x-api-key", "accept", "user-agent", "content-type", "content-length", "host"):
        assert headers_a[name] == headers_b[name], name
    assert "gzip" in headers_a["accept-encoding"]


@LOOPBACK
@pytest.mark.usefixtures("no_proxy")
async def test_async_lanes_send_what_an_httpx_client_sends(
    server: Recorder, http_backend: HTTPBackend
) -> None:
    async with AsyncAurousClient(
        API_KEY, base_url=server.base_url, http_backend=http_backend
    ) as own:
        results = await own.embed_many(["a", "b", "c"])
        connections = (await own._for_loop()).connections
        assert connections is not None and connections._direct
        assert (connections._session is not None) is (http_backend == "aiohttp")
    async with (
        httpx.AsyncClient() as http,
        AsyncAurousClient(API_KEY, base_url=server.base_url, http_client=http) as theirs,
    ):
        await theirs.embed("d")
    assert [r.embedding for r in results] == [[0.5, 0.25, -0.125]] * 3
    seen = [without_idempotency_key(headers) for _, headers, _ in server.seen]
    assert set(seen[0]) == set(seen[1]) == set(seen[2]) == set(seen[3])
    for name in ("x-api-key", "accept", "user-agent", "content-type", "content-length", "host"):
        assert seen[0][name] == seen[3][name], name
    assert "gzip" in seen[0]["accept-encoding"]
    assert sorted(json.loads(body)["input"] for _, _, body in server.seen) == ["a", "b", "c", "d"]


def test_a_proxy_in_the_environment_keeps_requests_on_the_httpx_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # httpx routes through the proxies it reads from the environment; skipping the client would
    # skip the proxy, so the direct path is off: each lane is a one-connection httpx.Client.
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    with AurousClient(API_KEY) as client:
        lanes = client._requester.lanes
        assert lanes is not None
        lane = lanes.take()
        assert isinstance(lane, httpx.Client)
        assert lanes.give_back(lane)
    for backend in HTTP_BACKENDS:  # aiohttp is not used either: it would not route via the proxy
        connections = Connections(5.0, backend, "https://api.test.invalid/v1")
        assert connections._session is None
        assert isinstance(connections._new_lane(), httpx.AsyncClient)
    monkeypatch.delenv("HTTPS_PROXY")
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with AurousClient(API_KEY) as client:
        lanes = client._requester.lanes
        assert lanes is not None
        lane = lanes.take()
        assert isinstance(lane, httpx.HTTPTransport)
        assert lanes.give_back(lane)
    assert isinstance(
        Connections(5.0, "httpx", "https://api.test.invalid/v1")._new_lane(),
        httpx.AsyncHTTPTransport,
    )


async def test_one_tls_context_for_every_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loading the CA bundle costs tens of milliseconds; 32 async lanes used to load it 32 times.
    built: list[object] = []
    real = httpx.create_ssl_context

    def counting() -> object:
        built.append(real())
        return built[-1]

    monkeypatch.setattr(http_module, "_SSL_CONTEXTS", {})
    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    clients = [AurousClient(API_KEY) for _ in range(3)]
    connections = Connections(5.0, "httpx", "https://api.test.invalid/v1")
    lanes = [connections._new_lane() for _ in range(8)]
    assert len(built) == 1
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())  # a changed CA setting is honoured
    assert http_module.default_ssl_context() is built[-1]
    assert len(built) == 2
    for client in clients:
        client.close()
    for lane in lanes:
        await lane.aclose()
