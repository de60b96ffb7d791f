"""Client surface: public names, no framework imports, secrets kept out of sight, lifecycle."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import threading

import httpx
import pytest

import aurous_embed
from aurous_embed import AsyncAurousClient, AurousClient, AuthenticationError
from aurous_embed._connections import HTTPBackend
from aurous_embed._secrets import Secret
from tests.unit.conftest import API_KEY, BASE_URL, LOOPBACK, FakeAPI, error_body, respond


def test_all_is_sorted_and_complete() -> None:
    assert aurous_embed.__all__ == sorted(aurous_embed.__all__)
    # ("@..." names are pytest's assertion-rewriting helpers: the package holds a pytest plugin)
    submodules = {"types", "testing", "cli", "langchain", "llama_index", "chroma"}
    public = {n for n in dir(aurous_embed) if n[0] not in "_@"} - submodules
    assert set(aurous_embed.__all__) - {"__version__"} == public
    for name in aurous_embed.__all__:
        assert getattr(aurous_embed, name) is not None


def test_import_loads_no_framework_or_optional_dependency() -> None:
    code = (
        "import sys, aurous_embed\n"
        "heavy = {'langchain_core', 'llama_index', 'chromadb', 'PIL', 'numpy', 'starlette', 'uvicorn', 'pydantic'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_key_never_in_repr_or_str() -> None:
    for cls in (AurousClient, AsyncAurousClient):
        client = cls(API_KEY, base_url=BASE_URL)
        assert API_KEY not in repr(client)
        assert API_KEY not in str(client)
        assert "api_key='***'" in repr(client)
        assert API_KEY not in repr(vars(client))
    secret = Secret(API_KEY)
    assert repr(secret) == str(secret) == "'***'"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_key_never_in_exceptions(client: AurousClient, api: FakeAPI) -> None:
    api.default = lambda request: respond(401, error_body("invalid_api_key", "authentication"))
    with pytest.raises(AuthenticationError) as info:
        client.embed("x")
    error = info.value
    assert API_KEY not in str(error) and API_KEY not in repr(error)
    assert API_KEY not in repr(vars(error))


def test_key_never_in_debug_logs(
    client: AurousClient, api: FakeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    api.script = [respond(500, error_body("internal_error", "server_error")), respond()]
    with caplog.at_level(logging.DEBUG):
        client.embed("x")
        logging.getLogger("httpx").debug("header leak attempt X-Api-Key: %s", API_KEY)
        logging.getLogger("httpcore.http11").debug("another %s", API_KEY)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "attempt 1 -> " in text and "retrying" in text  # the client did log
    assert API_KEY not in text
    assert "***" in text


def test_close_does_not_close_a_caller_owned_http_client(api: FakeAPI) -> None:
    http = httpx.Client(transport=httpx.MockTransport(api))
    with AurousClient(API_KEY, base_url=BASE_URL, http_client=http):
        pass
    assert not http.is_closed
    own = AurousClient(API_KEY, base_url=BASE_URL)
    lanes = own._requester.lanes
    own.close()
    assert lanes is not None and lanes.closed


async def test_async_close(api: FakeAPI) -> None:
    own = AsyncAurousClient(API_KEY, base_url=BASE_URL)
    async with own:
        async with own._loops.lease():
            connections = (await own._for_loop()).connections
    assert connections is not None and connections.closed


@LOOPBACK
def test_async_client_survives_several_event_loops() -> None:
    """One client, two asyncio.run calls: the second gets fresh connections, the first's close."""
    import asyncio
    import gc
    import warnings

    from aurous_embed.testing import Emulator

    gc.collect()  # other tests' garbage must not be collected (and warn) inside the block below
    with Emulator() as emu:
        client = AsyncAurousClient(emu.api_key, base_url=emu.base_url)
        used = []

        async def one(text: str) -> list[float]:
            vector = (await client.embed(text)).embedding
            used.append((await client._for_loop()).connections)
            return vector

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an unclosed socket would be a ResourceWarning
            first = asyncio.run(one("a"))
            second = asyncio.run(one("a"))
            gc.collect()
    assert first == second
    assert used[0] is not used[1]
    assert used[0] is not None and used[0].closed  # closed when its loop shut down
    assert used[1] is not None and used[1].closed


@LOOPBACK
async def test_async_lends_one_connection_per_request_in_flight(
    http_backend: HTTPBackend,
) -> None:
    import asyncio

    from aurous_embed.testing import Emulator

    with Emulator(latency=0.05) as emu:
        async with AsyncAurousClient(
            emu.api_key, base_url=emu.base_url, max_concurrency=6, http_backend=http_backend
        ) as client:
            await client.embed_many([f"t{i}" for i in range(30)])
            connections = (await client._for_loop()).connections
            assert connections is not None
            # over httpx, one lane per request in flight, reused; aiohttp pools them itself
            lanes = 0 if http_backend == "aiohttp" else 6
            assert len(connections._lanes.every()) == lanes
            await asyncio.gather(client.embed("x"), client.embed("y"))
            assert len(connections._lanes.every()) == lanes
        assert emu.stats.max_concurrency == 6


@LOOPBACK
def test_sync_lends_one_connection_per_request_in_flight() -> None:
    from aurous_embed.testing import Emulator

    with Emulator(latency=0.05) as emu:
        client = AurousClient(emu.api_key, base_url=emu.base_url, max_concurrency=6)
        with client:
            client.embed_many([f"t{i}" for i in range(30)])
            lanes = client._requester.lanes
            assert lanes is not None
            assert len(lanes.every()) == 6  # one lane per request in flight, reused
            client.embed("x")
            assert len(lanes.every()) == 6
        assert emu.stats.max_concurrency == 6
        with pytest.raises(RuntimeError, match="closed"):
            client.embed("after close")


def test_usage_totals_are_safe_under_concurrency(client: AurousClient, api: FakeAPI) -> None:
    def hammer() -> None:
        for _ in range(50):
            client.embed("x")

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    usage = client.usage
    assert usage.requests == 400
    assert usage.prompt_tokens == 1200
    assert usage.credits_charged == pytest.approx(400 * 0.00005625)


def test_replay_identical_derives_each_key_from_the_request(api: FakeAPI) -> None:
    """The same request gets the same key (a free replay when sent again, by a rerun or another
    process); a different body, version pin or endpoint gets another; by default keys are random."""
    from aurous_embed._wire import content_idempotency_key

    def keys(**options: object) -> list[str]:
        before = len(api.requests)
        client = AurousClient(
            API_KEY,
            base_url=BASE_URL,
            http_client=httpx.Client(transport=httpx.MockTransport(api)),
            **options,  # type: ignore[arg-type]
        )
        client.embed_many(["same", "same", "other"])
        client.embed("same", dimensions=1024)
        return [r.headers["idempotency-key"] for r in api.requests[before:]]

    derived = keys(replay_identical=True)
    assert derived[0] == derived[1] != derived[2] != derived[3] != derived[0]
    assert all(len(k) == 64 and k.startswith("c-") for k in derived)
    assert keys(replay_identical=True) == derived  # another client, the same requests
    assert keys(replay_identical=True, api_version="2026-05-15")[0] != derived[0]
    body = api.requests[0].content
    assert content_idempotency_key(BASE_URL, None, body) == derived[0]
    assert content_idempotency_key("https://other.example/v1", None, body) != derived[0]
    random_keys = keys()
    assert len(set(random_keys)) == 4 and not any(k.startswith("c-") for k in random_keys)
    assert (
        AurousClient(API_KEY, base_url=BASE_URL, replay_identical=True).to_async().replay_identical
    )


@LOOPBACK
def test_identical_requests_at_once_with_derived_keys_are_charged_once() -> None:
    """Two clients (or processes) sending the same request at once with replay_identical: the
    second gets 409 idempotency_key_in_use, waits for the first, and is replayed free."""
    from concurrent.futures import ThreadPoolExecutor

    from aurous_embed.testing import Emulator

    with Emulator(latency=0.3) as emu:
        clients = [
            AurousClient(emu.api_key, base_url=emu.base_url, replay_identical=True)
            for _ in range(2)
        ]
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda c: c.embed("the same text"), clients))
        assert results[0].embedding == results[1].embedding
        assert emu.stats.charges == 1
        assert sorted(r.replayed for r in results) == [False, True]
        totals = [c.usage.credits_charged for c in clients]
        assert sorted(totals) == [0.0, pytest.approx(emu.stats.credits_charged)]
        for c in clients:
            c.close()
