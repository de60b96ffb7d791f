"""One logical call, one charge: timeouts, 409 ``idempotency_key_in_use`` and key reuse.

The first attempt of a call is held by the emulator (a queued ``slow`` fault) past the client's
timeout. The client retries with the same key, gets 409 because the first attempt is still running,
and backs off. Its clock (:class:`ReleasingClock`) sleeps no real time: when the client backs off
after a 409, the clock lets the held attempt finish (``release_slow``) and waits for the emulator to
be idle, so the next attempt sees the outcome of the first one. No test sleeps to wait for anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import pytest

from aurous_embed import (
    AsyncAurousClient,
    AurousClient,
    EmbeddingResult,
    IdempotencyConflictError,
)
from aurous_embed._config import CONFLICT_BACKOFF_INITIAL
from aurous_embed._connections import HTTPBackend
from aurous_embed.testing import Emulator
from tests.reliability.helpers import UNLIMITED
from tests.unit.conftest import FakeClock

TIMEOUT = 0.3  # real seconds: the held first attempt outlasts it
HELD = "slow=30"  # the emulator holds the first attempt until released (or 30 s)


class ReleasingClock(FakeClock):
    """A client clock that records waits instead of sleeping; a wait after a 409 releases the
    emulator's held first attempt and returns once that attempt has finished."""

    def __init__(self, emulator: Emulator) -> None:
        super().__init__()
        self.emulator = emulator
        self.released = 0

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        stats = self.emulator.stats
        if stats.by_status.get(409, 0) and stats.slow_in_flight:
            self.released += 1
            self.emulator.release_slow()
            self.emulator.wait_until(lambda s: s.in_flight == 0 and s.slow_in_flight == 0)


@pytest.fixture
def emulator(aurous_emulator_factory: Callable[..., Emulator]) -> Emulator:
    return aurous_emulator_factory(**UNLIMITED)


@pytest.fixture
def clock(emulator: Emulator) -> ReleasingClock:
    return ReleasingClock(emulator)


def sync_embed(
    emulator: Emulator, clock: ReleasingClock, text: str
) -> tuple[EmbeddingResult, float]:
    with AurousClient(
        emulator.api_key, base_url=emulator.base_url, timeout=TIMEOUT, clock=clock
    ) as client:
        result = client.embed(text)
        return result, client.usage.credits_charged


async def async_embed(
    emulator: Emulator, clock: ReleasingClock, text: str, backend: HTTPBackend
) -> tuple[EmbeddingResult, float]:
    async with AsyncAurousClient(
        emulator.api_key,
        base_url=emulator.base_url,
        timeout=TIMEOUT,
        clock=clock,
        http_backend=backend,
    ) as client:
        result = await client.embed(text)
        return result, client.usage.credits_charged


@pytest.mark.parametrize("mode", ["sync", "httpx", "aiohttp"])
async def test_timed_out_call_waits_out_409_and_ends_with_the_replay_charged_once(
    emulator: Emulator, clock: ReleasingClock, mode: Literal["sync", "httpx", "aiohttp"]
) -> None:
    emulator.queue_faults(HELD)  # only the first attempt is held
    if mode == "sync":
        result, credits = sync_embed(emulator, clock, "held past the timeout")
    else:
        result, credits = await async_embed(emulator, clock, "held past the timeout", mode)

    stats = emulator.stats
    # attempt 1: held, answered 200 after the client gave up; attempt 2: 409 (still running);
    # attempt 3: the stored answer of attempt 1, replayed.
    assert stats.by_status == {200: 2, 409: 1}
    assert stats.by_code == {"idempotency_key_in_use": 1}
    assert stats.replays == 1
    assert clock.released == 1
    assert CONFLICT_BACKOFF_INITIAL in clock.sleeps  # it backed off after the 409, not gave up
    assert result.replayed
    (charge,) = emulator.ledger
    assert stats.charges_by_idempotency_key == {result.idempotency_key: 1}
    assert result.request_id == charge.request_id  # the replay is the charged answer
    assert len(result.embedding) == UNLIMITED["native_dimension"]
    # The replay stands for the lost answer of attempt 1: counted once, not zero, not twice.
    assert math.isclose(credits, charge.credits)
    assert credits > 0


@pytest.mark.parametrize("mode", ["sync", "httpx", "aiohttp"])
async def test_timed_out_call_whose_first_attempt_fails_runs_again_and_is_charged_once(
    emulator: Emulator, clock: ReleasingClock, mode: Literal["sync", "httpx", "aiohttp"]
) -> None:
    emulator.queue_faults(
        HELD + ", status=500"
    )  # held, then fails: nothing stored, nothing charged
    if mode == "sync":
        result, credits = sync_embed(emulator, clock, "held, then failed")
    else:
        result, credits = await async_embed(emulator, clock, "held, then failed", mode)

    stats = emulator.stats
    assert stats.by_status == {500: 1, 409: 1, 200: 1}
    assert stats.replays == 0
    assert not result.replayed  # attempt 3 ran the request for real
    (charge,) = emulator.ledger
    assert charge.idempotency_key == result.idempotency_key
    assert result.request_id == charge.request_id
    assert math.isclose(credits, charge.credits)


def test_explicit_key_reused_with_another_body_raises_at_once(
    emulator: Emulator, clock: ReleasingClock
) -> None:
    with AurousClient(emulator.api_key, base_url=emulator.base_url, clock=clock) as client:
        first = client.embed("the original body", idempotency_key="order-42")
        with pytest.raises(IdempotencyConflictError) as info:
            client.embed("a different body", idempotency_key="order-42")
        usage = client.usage

    error = info.value
    assert (error.status_code, error.code) == (409, "idempotency_key_in_use")
    assert error.request_id is not None
    assert clock.sleeps == []  # never retried: a different body under the key is a caller bug
    stats = emulator.stats
    assert stats.requests == 2
    assert stats.charges_by_idempotency_key == {"order-42": 1}
    assert first.idempotency_key == "order-42"
    assert math.isclose(usage.credits_charged, emulator.ledger[0].credits)


def test_explicit_key_reused_with_the_same_body_is_a_free_replay(
    emulator: Emulator, clock: ReleasingClock
) -> None:
    with AurousClient(emulator.api_key, base_url=emulator.base_url, clock=clock) as client:
        first = client.embed("same body", idempotency_key="order-43")
        again = client.embed("same body", idempotency_key="order-43")
        usage = client.usage

    assert not first.replayed and again.replayed
    assert again.embedding == first.embedding
    assert again.request_id == first.request_id  # the answer of the request that was charged
    assert emulator.stats.charges == 1 and emulator.stats.replays == 1
    assert clock.sleeps == []
    # The client counts the one charge once: a replay answering a fresh call costs nothing.
    assert math.isclose(usage.credits_charged, first.usage.credits_charged)
    assert usage.requests == 2
