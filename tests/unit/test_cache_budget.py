"""The embedding cache (never pay twice) and budgets (never overspend)."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from aurous_embed import (
    BudgetExceededError,
    CacheStats,
    Image,
    ImageURL,
    SQLiteCache,
    Text,
)
from aurous_embed._cache import cache_key
from tests.helpers import close, collect, each, settle
from tests.unit.conftest import FakeAPI, MakeClient, embedding_body, respond

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)


def numbered(request: httpx.Request) -> httpx.Response:
    value = json.loads(request.content)["input"]
    text = value if isinstance(value, str) else json.dumps(value)
    return respond(body=embedding_body([float(len(text)), 0.123456789012345], credits=0.01))


@pytest.fixture
def numbered_api(api: FakeAPI) -> FakeAPI:
    """The fake API answering each input with a vector that encodes its length."""
    api.default = numbered
    return api


async def test_second_run_sends_nothing_and_costs_nothing(
    numbered_api: FakeAPI, make: MakeClient, tmp_path: Path
) -> None:
    api = numbered_api
    corpus = [f"document number {i}" for i in range(600)]
    client = make(cache=tmp_path / "cache.sqlite")
    try:
        first = await settle(client.embed_many(corpus))
        assert len(api.requests) == 600
        assert client.cache_stats == CacheStats(hits=0, misses=600, writes=600, bypassed=0)
        second = await settle(client.embed_many(corpus))
        assert len(api.requests) == 600  # nothing new sent
        assert [r.embedding for r in second] == [r.embedding for r in first]  # exact floats
        assert all(r.cached and r.usage.credits_charged == 0 for r in second)
        assert client.cache_stats.hits == 600
        assert client.usage.credits_charged == pytest.approx(6.0)  # only the first run was paid
        single = await settle(client.embed(corpus[0]))
        assert len(api.requests) == 600  # single embed uses the cache too
        assert single.cached and single.embedding == first[0].embedding
    finally:
        await close(client)


async def test_cache_is_shared_across_processes(
    numbered_api: FakeAPI, make: MakeClient, tmp_path: Path
) -> None:
    path = tmp_path / "shared.sqlite"
    client = make(cache=path)
    await settle(client.embed_many(["alpha", "beta"]))
    await close(client)
    code = (
        "import sys\n"
        "from aurous_embed import SQLiteCache\n"
        "from aurous_embed._cache import cache_key\n"
        "cache = SQLiteCache(sys.argv[1])\n"
        "key = cache_key('alpha', endpoint='https://api.test.invalid/v1', model='aurous-embed-vision-1.0', api_version=None, dimensions=None, cache_urls=False)\n"
        "print(list(cache.get(key)))\n"
        "cache.put(cache_key('gamma', endpoint='https://api.test.invalid/v1', model='aurous-embed-vision-1.0', api_version=None, dimensions=None, cache_urls=False), [9.0, 9.5])\n"
    )
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[5.0, 0.123456789012345]"
    client = make(cache=path)
    try:
        result = await settle(client.embed("gamma"))  # written by the other process
    finally:
        await close(client)
    assert result.cached
    assert result.embedding == [9.0, 9.5]
    assert len(numbered_api.requests) == 2


def test_cache_is_safe_across_threads(tmp_path: Path) -> None:
    cache = SQLiteCache(tmp_path / "threads.sqlite")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(200):
                cache.put(f"{n}-{i}", [float(n), float(i)])
                assert cache.get(f"{n}-{i}") == [float(n), float(i)]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) == 1600
    assert cache.get_many(["3-7", "nope"]) == {"3-7": [3.0, 7.0]}
    cache.close()


def test_keys_depend_on_model_version_dimensions_and_content(tmp_path: Path) -> None:
    def key(value: object, **kw: object) -> str | None:
        options = {
            "endpoint": "https://api.aurous-labs.com/v1",
            "model": "m",
            "api_version": None,
            "dimensions": None,
            "cache_urls": False,
            **kw,
        }
        return cache_key(value, **options)  # type: ignore[arg-type]

    base = key("text")
    assert base == key("text")
    assert (
        len(
            {
                base,
                key("text", model="m2"),
                key("text", endpoint="http://127.0.0.1:8787/v1"),
                key("text", api_version="2026-05-15"),
                key("text", dimensions=1024),
                key("other"),
            }
        )
        == 6
    )
    assert key((Text("text"),)) != base  # a text part is a different request body than a string
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(PNG_1PX)
    b.write_bytes(PNG_1PX)
    assert key((Image(a),)) == key((Image(b),)) == key((Image(PNG_1PX),))  # by content, not by name
    b.write_bytes(PNG_1PX + b"\x00")
    assert key((Image(a),)) != key((Image(b),))
    assert key((Image(a, fit=False),)) != key((Image(a),))
    assert key((ImageURL("https://x.example/a.png"),)) is None  # URLs only when opted in
    assert key((ImageURL("https://x.example/a.png"),), cache_urls=True) is not None


async def test_url_inputs_bypass_the_cache_unless_opted_in(
    numbered_api: FakeAPI, make: MakeClient, tmp_path: Path
) -> None:
    api = numbered_api
    inputs = [ImageURL("https://x.example/a.png"), "plain"]
    client = make(cache=tmp_path / "c.sqlite")
    try:
        await settle(client.embed_many(inputs))
        await settle(client.embed_many(inputs))
        assert len(api.requests) == 3  # the URL input was sent twice
        assert client.cache_stats.bypassed == 2
    finally:
        await close(client)
    client = make(cache=tmp_path / "c2.sqlite", cache_urls=True)
    try:
        await settle(client.embed_many(inputs))
        await settle(client.embed_many(inputs))
    finally:
        await close(client)
    assert len(api.requests) == 5


async def test_any_object_with_get_and_put(numbered_api: FakeAPI, make: MakeClient) -> None:
    class DictCache:
        def __init__(self) -> None:
            self.data: dict[str, list[float]] = {}

        def get(self, key: str) -> Sequence[float] | None:
            return self.data.get(key)

        def put(self, key: str, embedding: Sequence[float]) -> None:
            self.data[key] = list(embedding)

    store = DictCache()
    client = make(cache=store)
    await settle(client.embed_many(["a", "b", "a"]))
    await settle(client.embed_many(["a", "b"]))
    assert len(store.data) == 2
    assert (
        len(numbered_api.requests) == 3
    )  # the duplicate inside the first batch raced; the second batch was free


def test_bad_cache_argument(make: MakeClient) -> None:
    with pytest.raises(TypeError, match="get\\(key\\)"):
        make(cache=42)


# --- budgets -------------------------------------------------------------------------------------


def charged_at_documented_rates(request: httpx.Request) -> httpx.Response:
    """Charge like the real API: ceil(UTF-8 bytes / 4) text tokens at 18.75 credits per 1M."""
    text = json.loads(request.content)["input"]
    tokens = -(-len(text.encode()) // 4)
    return respond(body=embedding_body([1.0, 0.0], tokens=tokens, credits=tokens * 18.75e-6))


TEXT_100 = "z" * 100  # + 1 digit = 101 bytes = 26 tokens = 0.0004875 credits


async def test_call_budget_stops_before_overspending(any_client: Any, api: FakeAPI) -> None:
    """Ten inputs of 0.0004875 credits, ``max_credits=0.0025``, one at a time: five were sent."""
    api.default = charged_at_documented_rates
    with pytest.raises(BudgetExceededError) as info:
        await settle(
            any_client.embed_many(
                [TEXT_100 + str(i) for i in range(10)], max_credits=0.0025, concurrency=1
            )
        )
    error = info.value
    assert len(api.requests) == 5  # 5 x 0.0004875 = 0.0024375; a sixth would pass 0.0025
    assert error.credits_spent == pytest.approx(5 * 0.0004875)
    assert any_client.usage.credits_charged <= 0.0025
    assert sum(r is not None for r in error.results) == 5
    assert len(error.results) == 10
    assert error.max_credits == 0.0025
    assert "nothing over budget was sent" in str(error)


async def test_budget_is_never_exceeded_under_concurrency(any_client: Any, api: FakeAPI) -> None:
    api.default = charged_at_documented_rates
    with pytest.raises(BudgetExceededError):
        await settle(
            any_client.embed_many(
                [TEXT_100 + str(i % 10) for i in range(200)], max_credits=0.01, concurrency=16
            )
        )
    assert any_client.usage.credits_charged <= 0.01
    assert len(api.requests) == 20  # in-flight requests hold their estimate: exactly 20 fit


async def test_client_budget_spans_calls_and_counts_actual_charges(
    api: FakeAPI, make: MakeClient
) -> None:
    client = make(max_credits=0.0010)
    api.default = charged_at_documented_rates
    await settle(client.embed(TEXT_100 + "a"))
    await settle(client.embed_many([TEXT_100 + "b"]))  # 0.000975 spent across two calls
    with pytest.raises(BudgetExceededError) as info:
        await settle(client.embed(TEXT_100 + "c"))  # another 0.0004875 would pass 0.0010
    assert info.value.credits_spent == pytest.approx(0.000975)
    stream = client.embed_iter([TEXT_100 + "d", "tiny"], return_exceptions=True)
    out = await collect(stream)  # a budget stop: each item not sent gets a copy of it
    assert [(type(e), e.index, e.skipped) for e in out] == [
        (BudgetExceededError, 0, False),
        (BudgetExceededError, 1, True),
    ]
    assert len(api.requests) == 2
    await settle(client.embed("tiny"))  # 1 token, 0.00001875: still fits
    assert client.usage.credits_charged == pytest.approx(0.00099375)
    assert client.max_credits == 0.0010


async def test_budget_arguments_are_checked(make: MakeClient) -> None:
    from aurous_embed import InputValidationError

    with pytest.raises(InputValidationError, match="max_credits"):
        make(max_credits=-1)
    client = make()
    with pytest.raises(InputValidationError, match="max_credits"):
        await settle(client.embed("a", max_credits="10"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts file descriptors on Linux")
async def test_many_batches_do_not_leak_cache_connections(
    numbered_api: FakeAPI, make: MakeClient, tmp_path: Path
) -> None:
    import os

    client = make(cache=tmp_path / "fd.sqlite")
    try:
        await settle(client.embed_many([f"warm {i}" for i in range(40)]))
        before = len(os.listdir("/proc/self/fd"))
        for round_ in range(20):  # every sync call runs on fresh worker threads
            await settle(client.embed_many([f"round {round_} item {i}" for i in range(40)]))
        after = len(os.listdir("/proc/self/fd"))
    finally:
        await close(client)
    assert after - before <= 2
    assert len(os.listdir("/proc/self/fd")) < after  # closing the client closed its cache too


async def test_hits_keep_exact_floats_on_every_path(
    numbered_api: FakeAPI, make: MakeClient, tmp_path: Path
) -> None:
    np = pytest.importorskip("numpy")
    corpus = [f"doc {i}" for i in range(50)]
    client = make(cache=tmp_path / "p.sqlite")
    try:
        fresh = [r.embedding for r in await settle(client.embed_many(corpus))]
        as_lists = [r.embedding for r in await settle(client.embed_many(corpus))]
        streamed = [r.embedding for r in await collect(client.embed_iter(corpus))]
        single = (await settle(client.embed(corpus[3]))).embedding
        array = await settle(client.embed_many(corpus, as_numpy=True))
    finally:
        await close(client)
    assert len(numbered_api.requests) == 50
    assert as_lists == fresh == streamed
    assert all(type(v) is list and type(v[1]) is float for v in as_lists + streamed + [single])
    assert single == fresh[3]
    assert np.array_equal(array, np.array(fresh, dtype=np.float32))


async def test_a_batch_of_cache_hits_runs_in_the_callers_thread(
    numbered_api: FakeAPI, make: MakeClient, tmp_path: Path
) -> None:
    api = numbered_api
    corpus = [f"document number {i}" for i in range(1500)]
    client = make(cache=tmp_path / "cache.sqlite")
    try:
        await settle(client.embed_many(corpus[:1000]))
        sent = len(api.requests)
        # Process-wide pools (image conversion) may be alive from other tests: count new threads.
        before = set(threading.enumerate())
        workers: set[str] = set()
        async for _ in each(client.embed_iter(corpus[:1000])):
            workers.update(t.name for t in set(threading.enumerate()) - before)
        assert workers == set()  # every input answered by the cache: no worker thread
        assert len(api.requests) == sent
        # Inputs the cache cannot answer still go out, in order, on workers.
        mixed = await settle(client.embed_many(corpus))
        assert len(api.requests) == sent + 500
        assert [r.cached for r in mixed] == [True] * 1000 + [False] * 500
    finally:
        await close(client)


def test_cache_writes_are_committed_together_and_never_lost(tmp_path: Path) -> None:
    import gc

    from aurous_embed._cache import WRITE_BATCH

    path = tmp_path / "batched.sqlite"
    cache = SQLiteCache(path)
    cache.put("a", [1.0, 2.0])
    assert cache.get("a") == [1.0, 2.0]  # its own pending write, at once
    assert cache.get_many(["a", "b"]) == {"a": [1.0, 2.0]}
    other = SQLiteCache(path)
    assert other.get("a") is None  # not committed yet: one transaction per batch
    cache.flush()
    assert other.get("a") == [1.0, 2.0]
    for i in range(WRITE_BATCH):  # a full batch commits by itself
        cache.put(f"k{i}", [float(i)])
    assert other.get(f"k{WRITE_BATCH - 1}") == [float(WRITE_BATCH - 1)]
    cache.put("last", [9.0])
    del cache  # dropped without close(): what was pending is committed, not lost
    gc.collect()
    assert other.get("last") == [9.0]
    other.close()
