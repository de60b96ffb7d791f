"""2,000 inputs through a faulty emulator: nothing lost, nothing reordered, nothing charged twice.

The emulator answers 10% of requests with 500/502/503, starts 429 bursts on 5%, drops the
connection half-way through 2% of answers *after* charging them, and holds 1% longer than the
client's timeout (so the client retries with the same idempotency key while the first attempt is
still running and gets 409 until it can collect the replay). The reference vectors come from a
separate, fault-free emulator: the vectors are deterministic, so "identical" means bit-for-bit.

Waits are fast-forwarded (``FastClock``); the slow responses and the client timeout are real.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import httpx
import pytest

from aurous_embed import AsyncAurousClient, AurousClient, EmbeddingResult
from aurous_embed._connections import HTTPBackend
from aurous_embed.testing import Emulator, FastClock
from tests.reliability.helpers import FAULT_MIX, TIMEOUT, UNLIMITED, corpus, fast_clock

N = 2000
# Retries (not attempts) per input: about 9% of attempts fail in a way that uses one up (500, 502,
# reset, timeout; 429 and 503 have their own budget), so 6 retries make a run that loses an input
# a one-in-several-thousand event instead of the ~1% the default 4 would leave.
MAX_RETRIES = 6
# Requests in flight: enough to hide the fault waits, few enough that an answer never nears the
# client's 0.25 s timeout on a busy 2-core machine (about 50 ms at 16).
CONCURRENCY = 16
INPUTS = corpus(N)


@pytest.fixture(scope="module")
def reference() -> list[list[float]]:
    """The vectors of a fault-free emulator (mounted in-process: no faults, no socket needed)."""
    emulator = Emulator(**UNLIMITED)

    async def embed_all() -> list[EmbeddingResult]:
        transport = httpx.ASGITransport(app=emulator.app)
        async with httpx.AsyncClient(transport=transport) as http:
            client = AsyncAurousClient(
                emulator.api_key, base_url="http://127.0.0.1/v1", http_client=http, max_retries=0
            )
            return await client.embed_many(INPUTS, concurrency=CONCURRENCY)

    results = asyncio.run(embed_all())
    assert emulator.stats.charges == N and not emulator.stats.faults
    return [result.embedding for result in results]


@pytest.fixture
def clock() -> FastClock:
    return fast_clock()


@pytest.fixture
def faulty(clock: FastClock, aurous_emulator_factory: Callable[..., Emulator]) -> Emulator:
    return aurous_emulator_factory(faults=FAULT_MIX, clock=clock, **UNLIMITED)


def check_run(
    emulator: Emulator,
    results: list[EmbeddingResult],
    reference: list[list[float]],
    charged_by_client: float,
    tokens_by_client: int,
) -> None:
    stats = emulator.stats
    # Every fault kind happened, and the client had to retry through them.
    for kind in ("status=500", "status=502", "status=503", "rate_limit", "reset", "slow"):
        assert stats.faults.get(kind, 0) > 0, (kind, stats.faults)
    assert stats.by_status.get(409, 0) > 0, "no retry ever met its own first attempt in flight"
    assert stats.replays > 0
    assert stats.requests > N

    # Nothing lost or reordered: bit-identical vectors, in input order.
    assert len(results) == N
    assert [result.embedding for result in results] == reference

    # Nothing charged twice: one charge per input, one per idempotency key, and each result is
    # the answer of exactly the request that was charged for it.
    ledger = emulator.ledger
    assert stats.charges == len(ledger) == N
    assert len(stats.charges_by_idempotency_key) == N
    assert set(stats.charges_by_idempotency_key.values()) == {1}
    charged = {charge.idempotency_key: charge.request_id for charge in ledger}
    assert {r.idempotency_key: r.request_id for r in results} == charged
    assert sum(r.replayed for r in results) <= stats.replays

    # The client's own accounting matches the emulator's books.
    assert tokens_by_client == stats.tokens_charged
    assert math.isclose(charged_by_client, stats.credits_charged, rel_tol=1e-12, abs_tol=1e-12)


def test_sync_embed_many_survives_the_fault_mix(
    faulty: Emulator, clock: FastClock, reference: list[list[float]]
) -> None:
    with AurousClient(
        faulty.api_key,
        base_url=faulty.base_url,
        timeout=TIMEOUT,
        max_retries=MAX_RETRIES,
        clock=clock,
    ) as client:
        results = client.embed_many(INPUTS, concurrency=CONCURRENCY)
        usage = client.usage
    assert usage.requests == N
    check_run(faulty, results, reference, usage.credits_charged, usage.prompt_tokens)


async def test_async_embed_many_survives_the_fault_mix(
    faulty: Emulator, clock: FastClock, reference: list[list[float]], http_backend: HTTPBackend
) -> None:
    async with AsyncAurousClient(
        faulty.api_key,
        base_url=faulty.base_url,
        timeout=TIMEOUT,
        max_retries=MAX_RETRIES,
        clock=clock,
        http_backend=http_backend,
    ) as client:
        results = await client.embed_many(INPUTS, concurrency=CONCURRENCY)
        usage = client.usage
    assert usage.requests == N
    check_run(faulty, results, reference, usage.credits_charged, usage.prompt_tokens)
