"""embed_many: N requests, bounded concurrency, input order, partial failure, fatal stop, progress."""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

import httpx
import pytest

from aurous_embed import (
    AsyncAurousClient,
    AurousClient,
    AuthenticationError,
    BadRequestError,
    BatchEmbeddingError,
    Text,
)
from tests.helpers import settle
from tests.unit.conftest import (
    API_KEY,
    BASE_URL,
    FakeAPI,
    MakeClient,
    embedding_body,
    error_body,
    respond,
)


def echo_vector(request: httpx.Request) -> httpx.Response:
    """Answer with a vector that encodes the text, so order mistakes are visible."""
    text = json.loads(request.content)["input"]
    text = text if isinstance(text, str) else text[0]["text"]
    return respond(body=embedding_body([float(len(text)), float(ord(text[-1]))], credits=0.5))


async def test_order_and_one_request_per_input(any_client: Any, api: FakeAPI) -> None:
    api.default = echo_vector
    inputs = [f"item-{i}" + "x" * (i % 7) for i in range(100)]
    results = await settle(any_client.embed_many(inputs))
    assert [r.embedding for r in results] == [[float(len(t)), float(ord(t[-1]))] for t in inputs]
    assert len(api.requests) == 100
    assert sorted(json.loads(r.content)["input"] for r in api.requests) == sorted(inputs)
    assert len({r.headers["idempotency-key"] for r in api.requests}) == 100
    assert any_client.usage.requests == 100
    assert any_client.usage.credits_charged == pytest.approx(50.0)


async def test_combined_parts_item_is_one_request(any_client: Any, api: FakeAPI) -> None:
    await settle(any_client.embed_many([[Text("a"), Text("b")], "c"]))
    bodies = sorted(json.dumps(b["input"]) for b in api.bodies())
    assert bodies == ['"c"', '[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]']


async def test_empty_batch_sends_nothing(any_client: Any, api: FakeAPI) -> None:
    assert await settle(any_client.embed_many([])) == []
    assert api.requests == []


async def test_accepts_any_iterable(any_client: Any, api: FakeAPI) -> None:
    results = await settle(any_client.embed_many(f"t{i}" for i in range(5)))
    assert len(results) == 5


def test_concurrency_is_bounded_and_used(api: FakeAPI) -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    gate = threading.Barrier(4, timeout=5)

    def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait()  # the first four requests must all be in flight together
        with lock:
            in_flight -= 1
        return respond()

    api.default = slow
    with AurousClient(
        API_KEY,
        base_url=BASE_URL,
        max_concurrency=8,
        http_client=httpx.Client(transport=httpx.MockTransport(api)),
    ) as client:
        client.embed_many([f"t{i}" for i in range(12)], concurrency=4)
    assert peak == 4


async def test_partial_failure_keeps_every_success(any_client: Any, api: FakeAPI) -> None:
    def some_fail(request: httpx.Request) -> httpx.Response:
        text = json.loads(request.content)["input"]
        if text in ("t3", "t7"):
            return respond(400, error_body("embeddings_input_too_large", param="input"))
        return echo_vector(request)

    api.default = some_fail
    with pytest.raises(BatchEmbeddingError) as info:
        await settle(any_client.embed_many([f"t{i}" for i in range(10)]))
    error = info.value
    assert sorted(error.errors) == [3, 7]
    assert all(isinstance(e, BadRequestError) for e in error.errors.values())
    assert [r is None for r in error.results] == [i in (3, 7) for i in range(10)]
    assert error.results[5] is not None and error.results[5].embedding == [2.0, float(ord("5"))]
    assert "2 of 10 inputs failed" in str(error)
    assert len(api.requests) == 10  # failures did not stop the others


async def test_fatal_error_stops_sending(api: FakeAPI, make: MakeClient) -> None:
    api.default = lambda request: respond(401, error_body("invalid_api_key", "authentication"))
    with pytest.raises(BatchEmbeddingError) as info:
        await settle(make(max_concurrency=2).embed_many([f"t{i}" for i in range(50)]))
    assert len(api.requests) <= 2 * 4 + 2  # stopped early, not 50 doomed requests
    assert sorted(info.value.errors) == list(range(50))  # every item accounted for
    assert all(isinstance(e, AuthenticationError) for e in info.value.errors.values())


async def test_progress_callback(any_client: Any, api: FakeAPI) -> None:
    api.default = echo_vector
    seen: list[tuple[int, int | None, float]] = []
    await settle(
        any_client.embed_many(
            ["a", "b", "c"],
            on_progress=lambda done, total, credits: seen.append((done, total, credits)),
        )
    )
    assert [s[0] for s in seen] == [1, 2, 3]
    assert {s[1] for s in seen} == {3}
    assert seen[-1][2] == pytest.approx(1.5)


async def test_caller_iterator_error_surfaces(any_client: Any) -> None:
    def broken() -> Any:
        yield "a"
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        await settle(any_client.embed_many(broken()))


async def test_async_concurrency_bound(api: FakeAPI) -> None:
    import asyncio

    in_flight = 0
    peak = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        # (long enough for the requests held back until the first answer to join in)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return respond()

    async with AsyncAurousClient(
        API_KEY,
        base_url=BASE_URL,
        max_concurrency=5,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(slow)),
    ) as client:
        await client.embed_many([f"t{i}" for i in range(30)])
    assert peak == 5


def test_max_concurrency_bounds_the_whole_client_across_calls(api: FakeAPI) -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    gate = threading.Barrier(3, timeout=5)

    def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait()
        with lock:
            in_flight -= 1
        return respond()

    api.default = slow
    with AurousClient(
        API_KEY,
        base_url=BASE_URL,
        max_concurrency=3,
        http_client=httpx.Client(transport=httpx.MockTransport(api)),
    ) as client:
        calls = [
            threading.Thread(target=client.embed_many, args=([f"c{c}-{i}" for i in range(9)],))
            for c in range(3)
        ]
        for call in calls:
            call.start()
        for call in calls:
            call.join()
    assert peak == 3  # three concurrent embed_many calls share the client's 3 slots
    assert len(api.requests) == 27


async def test_async_max_concurrency_bounds_concurrent_calls(api: FakeAPI) -> None:
    import asyncio

    in_flight = 0
    peak = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(3):
            await asyncio.sleep(0)
        in_flight -= 1
        return respond()

    async with AsyncAurousClient(
        API_KEY,
        base_url=BASE_URL,
        max_concurrency=4,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(slow)),
    ) as client:
        await asyncio.gather(
            *(client.embed_many([f"c{c}-{i}" for i in range(8)]) for c in range(5))
        )
    assert peak == 4
