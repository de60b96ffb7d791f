"""Permanent failures on some items of a batch: every success kept, every failure named, and the
cache makes a re-run send only what failed.

The failing items are inputs the client accepts and the API refuses, for reasons only the server
can know: a text whose *token* count is over the model's 128K context (the tokenizer is the
server's), and image URLs of uploads (``POST /v1/files``) that were deleted since, or whose
signature does not match (``400 image_fetch_failed``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from aurous_embed import (
    AsyncAurousClient,
    AurousClient,
    BadRequestError,
    BatchEmbeddingError,
    ImageURL,
    InputTooLargeError,
    InsufficientCreditsError,
    Text,
)
from aurous_embed.testing import Emulator
from tests.helpers import png
from tests.reliability.helpers import UNLIMITED, corpus

EMBEDDINGS = "POST /v1/embeddings"
# 140,000 tokens by the emulator's documented count (4 UTF-8 bytes a token), under 1M characters.
TOO_MANY_TOKENS = "abcd" * 140_000
FETCH = (BadRequestError, "image_fetch_failed")

Failing = dict[int, tuple[type[Exception], str, str]]


def uploads(emulator: Emulator) -> tuple[str, str, str]:
    """The URLs of a live upload, a deleted one, and one with a forged signature."""
    with AurousClient(emulator.api_key, base_url=emulator.base_url) as client:
        live = client.upload_file(png(colour="green")).url
        deleted = client.upload_file(png(colour="red"))
        client.delete_file(deleted.id)
    forged = live.replace("token=", "token=0")
    return live, deleted.url, forged


def batch(emulator: Emulator) -> tuple[list[object], Failing]:
    """60 inputs (texts, https URLs, uploads); the failing ones with (class, code, param)."""
    live, deleted, forged = uploads(emulator)
    inputs: list[object] = list(corpus(50, prefix="ok"))
    inputs += [ImageURL(f"https://images.example.com/photo-{i}.png") for i in range(5)]
    inputs += [["an upload", ImageURL(live)]]
    failing = {
        7: (TOO_MANY_TOKENS, InputTooLargeError, "embeddings_input_too_large", "input"),
        23: (ImageURL(deleted), *FETCH, "input[0].image_url.url"),
        41: (ImageURL(forged), *FETCH, "input[0].image_url.url"),
        48: (
            [Text("title"), Text(TOO_MANY_TOKENS)],
            InputTooLargeError,
            "embeddings_input_too_large",
            "input",
        ),
        55: (["a caption", ImageURL(deleted)], *FETCH, "input[1].image_url.url"),
    }
    for index, (value, *_rest) in sorted(failing.items()):
        inputs.insert(index, value)
    assert len(inputs) == 61
    return inputs, {i: (cls, code, param) for i, (_, cls, code, param) in failing.items()}


@pytest.fixture
def emulator(aurous_emulator_factory: Callable[..., Emulator]) -> Emulator:
    return aurous_emulator_factory(**UNLIMITED)


def sent(emulator: Emulator) -> int:
    return emulator.stats.by_route.get(EMBEDDINGS, 0)


def check_partial(error: BatchEmbeddingError, inputs: list[object], failing: Failing) -> None:
    assert set(error.errors) == set(failing)
    assert len(error.results) == len(inputs)
    for index, (cls, code, param) in failing.items():
        failure = error.errors[index]
        assert type(failure) is cls, (index, failure)
        assert isinstance(failure, BadRequestError)
        assert (failure.status_code, failure.code, failure.param) == (400, code, param)
        assert failure.index == index
        assert error.results[index] is None
    for index in set(range(len(inputs))) - set(failing):
        result = error.results[index]
        assert result is not None, index
        assert len(result.embedding) == UNLIMITED["native_dimension"]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_permanent_failures_keep_every_success_and_a_rerun_sends_only_them(
    emulator: Emulator, tmp_path: Path, mode: str
) -> None:
    inputs, failing = batch(emulator)
    assert sent(emulator) == 0  # the uploads were not embedding requests
    cache = tmp_path / "cache.sqlite"

    async def embed_all() -> None:
        # A fresh client per run, sharing only the cache file (a re-run in a new process).
        options = {"base_url": emulator.base_url, "cache": cache, "cache_urls": True}
        if mode == "sync":
            with AurousClient(emulator.api_key, **options) as client:
                client.embed_many(inputs)
        else:
            async with AsyncAurousClient(emulator.api_key, **options) as aclient:
                await aclient.embed_many(inputs)

    async def run() -> BatchEmbeddingError:
        with pytest.raises(BatchEmbeddingError) as info:
            await embed_all()
        return info.value

    first = await run()
    check_partial(first, inputs, failing)
    assert sent(emulator) == len(inputs)  # a 400 is never retried
    assert emulator.stats.charges == len(inputs) - len(failing)
    assert emulator.stats.by_code == {"embeddings_input_too_large": 2, "image_fetch_failed": 3}

    before = emulator.stats
    second = await run()
    check_partial(second, inputs, failing)
    after = emulator.stats
    assert sent(emulator) - len(inputs) == len(failing)  # only the failed ones went out again
    assert after.requests - before.requests == len(failing)
    assert after.charges == before.charges  # and they were not charged
    for index, result in enumerate(second.results):
        if result is not None:
            assert result.cached
            assert result.embedding == first.results[index].embedding  # type: ignore[union-attr]


def test_fixed_inputs_rerun_sends_and_charges_only_those(
    emulator: Emulator, tmp_path: Path
) -> None:
    inputs, failing = batch(emulator)
    cache = tmp_path / "cache.sqlite"
    options = {"base_url": emulator.base_url, "cache": cache, "cache_urls": True}
    with AurousClient(emulator.api_key, **options) as client:
        with pytest.raises(BatchEmbeddingError):
            client.embed_many(inputs)
    fixed = list(inputs)
    live = next(p for p in inputs if isinstance(p, list) and p[0] == "an upload")[1]
    fixed[7] = TOO_MANY_TOKENS[:100_000]  # 25,000 tokens
    fixed[23] = live
    fixed[41] = ImageURL("https://images.example.com/instead.png")
    fixed[48] = [Text("title"), Text(TOO_MANY_TOKENS[:100_000])]
    fixed[55] = ["a caption", live]
    before = emulator.stats
    with AurousClient(emulator.api_key, **options) as client:
        results = client.embed_many(fixed)
        stats = client.cache_stats
    after = emulator.stats
    assert after.requests - before.requests == len(failing)
    assert after.charges - before.charges == len(failing)
    assert (stats.hits, stats.misses) == (len(inputs) - len(failing), len(failing))
    assert [i for i, r in enumerate(results) if not r.cached] == sorted(failing)


async def embed_until_broke(
    mode: str, emulator: Emulator, texts: list[str], concurrency: int
) -> tuple[BatchEmbeddingError, float]:
    """Run the batch; return its error and what the client says it was charged."""
    if mode == "sync":
        with AurousClient(emulator.api_key, base_url=emulator.base_url) as client:
            with pytest.raises(BatchEmbeddingError) as info:
                client.embed_many(texts, concurrency=concurrency)
            return info.value, client.usage.credits_charged
    async with AsyncAurousClient(emulator.api_key, base_url=emulator.base_url) as aclient:
        with pytest.raises(BatchEmbeddingError) as info:
            await aclient.embed_many(texts, concurrency=concurrency)
        return info.value, aclient.usage.credits_charged


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_balance_running_out_mid_batch_stops_sending_and_keeps_what_succeeded(
    mode: str,
) -> None:
    texts = [f"paid item {i:03d}: every text is as long as the others" for i in range(100)]
    concurrency = 4
    affordable = 10
    with Emulator(**UNLIMITED) as probe:
        with AurousClient(probe.api_key, base_url=probe.base_url) as client:
            price = client.embed(texts[0]).usage.credits_charged
    with Emulator(**{**UNLIMITED, "credits": price * (affordable + 0.5)}) as emulator:
        error, charged = await embed_until_broke(mode, emulator, texts, concurrency)
        stats, ledger, balance = emulator.stats, emulator.ledger, emulator.balance

    succeeded = {i: r for i, r in enumerate(error.results) if r is not None}
    # Exactly what the balance allowed went through, and every one of them is in the error.
    assert len(succeeded) == stats.charges == affordable
    assert {r.request_id for r in succeeded.values()} == {c.request_id for c in ledger}
    assert all(len(r.embedding) == UNLIMITED["native_dimension"] for r in succeeded.values())
    assert math.isclose(charged, stats.credits_charged)
    assert 0 <= balance < price
    # Every other item is accounted for, with the balance error.
    assert set(error.errors) == set(range(len(texts))) - set(succeeded)
    assert all(isinstance(e, InsufficientCreditsError) for e in error.errors.values())
    # The items that were sent and refused carry their own 402; the ones never sent carry a copy
    # of the first 402 (the reason the batch stopped), marked skipped, each naming its own item.
    assert all(e.index == i for i, e in error.errors.items())  # type: ignore[attr-defined]
    refused = {i for i, e in error.errors.items() if not e.skipped}  # type: ignore[attr-defined]
    assert refused and len(refused) == stats.by_status.get(402, 0)
    assert all(error.errors[i].code == "balance_too_low" for i in refused)  # type: ignore[attr-defined]
    # The batch stopped sending: at most the requests already in flight met the empty balance.
    assert len(refused) <= concurrency
    assert stats.requests == affordable + len(refused) < len(texts)
