"""The retry policy over whole runs of decisions, and the real clock.

The table in ``test_retry.py`` checks one decision at a time; these tests feed each decision's state
into the next, as the retry loop does, until the policy gives up, so a counter that moves the wrong
way or a budget that never fills shows up as the wrong number of waits.
"""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

import aurous_embed._retry as retry
from aurous_embed import APIConnectionError, IdempotencyConflictError, RateLimitError
from aurous_embed._errors import AurousError, error_from_response
from aurous_embed._retry import (
    RetryDecision,
    RetryState,
    SystemClock,
    asked_wait,
    decide,
    parse_reset,
    parse_retry_after,
)
from tests.unit.conftest import error_body

NOW = 1_800_000_000.0


def rate_limited(headers: dict[str, str], code: str = "too_many_requests") -> RateLimitError:
    error = error_from_response(
        429,
        httpx.Headers(headers),
        httpx.Response(429, json=error_body(code, "rate_limit")).content,
    )
    assert isinstance(error, RateLimitError)
    return error


def conflict(code: str = "idempotency_key_in_use") -> IdempotencyConflictError:
    error = error_from_response(
        409, httpx.Headers(), httpx.Response(409, json=error_body(code)).content
    )
    assert isinstance(error, IdempotencyConflictError)
    return error


def run(
    error: AurousError, state: RetryState, *, max_retries: int, limit: int = 1000
) -> tuple[list[float], RetryDecision]:
    """Decide again and again, as the loop would, until the policy gives up."""
    delays: list[float] = []
    for _ in range(limit):
        decision = decide(error, state, max_retries=max_retries, now=NOW, rand=lambda: 0.0)
        if decision.delay is None:
            return delays, decision
        delays.append(decision.delay)
        state = decision.state
    raise AssertionError(f"still retrying after {limit} decisions: {delays[:20]}...")


# --- the real clock ------------------------------------------------------------------------------


def test_the_real_clock_really_sleeps() -> None:
    """The only test that sleeps: 50 ms, measured (no assertion on how fast)."""
    clock = SystemClock()
    start = time.monotonic()
    clock.sleep(0.05)
    assert time.monotonic() - start >= 0.045


async def test_the_real_clock_really_waits_in_the_event_loop() -> None:
    clock = SystemClock()
    start = time.monotonic()
    await clock.asleep(0.05)
    assert time.monotonic() - start >= 0.045


def test_the_real_clock_sleeps_exactly_what_it_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(retry.time, "sleep", slept.append)
    clock = SystemClock()
    clock.sleep(0.25)
    clock.sleep(0)  # nothing to wait: no call at all
    clock.sleep(-3)  # a deadline already past: time.sleep(-3) would raise
    assert slept == [0.25]


async def test_the_real_clock_never_waits_a_negative_time(monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(retry.asyncio, "sleep", fake_sleep)
    clock = SystemClock()
    await clock.asleep(0.25)
    await clock.asleep(-3)
    assert waited == [0.25, 0.0]


def test_the_real_clock_reads_the_real_time() -> None:
    clock = SystemClock()
    assert abs(clock.time() - time.time()) < 60
    assert abs(clock.monotonic() - time.monotonic()) < 60


# --- what the server asks for ----------------------------------------------------------------------


def test_an_unparsable_http_date_is_ignored() -> None:
    assert (
        parse_retry_after(httpx.Headers({"Retry-After": "Tue, 32 Jan 2030 00:00:00 GMT"}), NOW)
        is None
    )
    assert parse_retry_after(httpx.Headers({"Retry-After": "Mon, 99 Foo 2020"}), NOW) is None


def test_an_http_date_counts_from_now() -> None:
    date = email.utils.formatdate(NOW + 45, usegmt=True)
    assert parse_retry_after(httpx.Headers({"Retry-After": date}), NOW) == 45.0


def test_the_reset_header_spellings_in_order() -> None:
    # An unreadable X-RateLimit-Reset does not hide a readable RateLimit-Reset.
    headers = httpx.Headers({"X-RateLimit-Reset": "garbage", "RateLimit-Reset": "5"})
    assert parse_reset(headers, NOW) == 5.0
    # The documented header wins over the unprefixed one.
    headers = httpx.Headers({"X-RateLimit-Reset": str(int(NOW) + 3), "RateLimit-Reset": "5"})
    assert parse_reset(headers, NOW) == 3.0
    # The TPM bucket has its own header, and only that one counts for it.
    assert (
        parse_reset(httpx.Headers({"X-RateLimit-Reset": str(int(NOW) + 3)}), NOW, tpm=True) is None
    )
    assert parse_reset(httpx.Headers({"X-RateLimit-TPM-Reset": str(int(NOW) + 3)}), NOW) is None


def test_a_reset_below_ten_to_the_ninth_is_a_delta_and_from_there_an_epoch() -> None:
    assert parse_reset(httpx.Headers({"RateLimit-Reset": "999999999"}), NOW) == 999_999_999.0
    # 10^9 itself is an epoch (2001): long past, so no wait at all.
    assert parse_reset(httpx.Headers({"RateLimit-Reset": "1000000000"}), NOW) == 0.0


def test_retry_after_wins_over_the_reset() -> None:
    headers = httpx.Headers({"Retry-After": "2", "X-RateLimit-Reset": str(int(NOW) + 9)})
    assert asked_wait(headers, NOW) == 2.0
    headers = httpx.Headers({"X-RateLimit-Reset": str(int(NOW) + 9)})
    assert asked_wait(headers, NOW) == 9.0
    assert asked_wait(httpx.Headers({}), NOW) is None


# --- runs of decisions until the give-up -----------------------------------------------------------


def test_in_flight_conflicts_back_off_and_stop_after_a_minute() -> None:
    delays, last = run(conflict(), RetryState(maybe_in_flight=True), max_retries=4)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    assert last.state.conflict_retries == 11
    assert last.state.conflict_wait == 63.5  # the first wait past 60 s is the last one
    assert last.state.retries == 0  # conflicts do not use up max_retries
    assert last.reason == "idempotency key conflict"


def test_each_conflict_wait_is_counted_once() -> None:
    decision = decide(conflict(), RetryState(maybe_in_flight=True), max_retries=4, now=NOW)
    assert decision.delay == 0.5
    assert decision.state == RetryState(maybe_in_flight=True, conflict_retries=1, conflict_wait=0.5)
    assert decision.reason == "an earlier attempt of this call is still running"


def test_a_conflict_with_another_code_is_never_waited_for() -> None:
    delays, last = run(
        conflict("idempotency_key_reused"), RetryState(maybe_in_flight=True), max_retries=4
    )
    assert delays == []
    assert last.reason == "idempotency key conflict"


def test_a_lost_answer_marks_the_call_in_flight_and_a_refused_connection_does_not() -> None:
    lost = decide(APIConnectionError(), RetryState(), max_retries=4, now=NOW, rand=lambda: 0.0)
    assert lost.state.maybe_in_flight is True
    assert lost.state.retries == 1
    assert lost.reason == "APIConnectionError"
    refused = decide(
        APIConnectionError(may_have_reached_server=False),
        RetryState(),
        max_retries=4,
        now=NOW,
        rand=lambda: 0.0,
    )
    assert refused.state.maybe_in_flight is False
    # ...and once a conflict follows a lost answer, it is waited for.
    assert decide(conflict(), lost.state, max_retries=4, now=NOW).delay == 0.5
    assert decide(conflict(), refused.state, max_retries=4, now=NOW).delay is None


def test_server_errors_back_off_until_max_retries() -> None:
    error = error_from_response(500, httpx.Headers(), b"")
    delays, last = run(error, RetryState(), max_retries=3)
    assert delays == [1.0, 2.0, 4.0]
    assert last.state.retries == 3
    assert last.reason == "retries exhausted"
    assert run(error, RetryState(), max_retries=0)[0] == []


def test_a_4xx_is_not_retryable() -> None:
    error = error_from_response(499, httpx.Headers(), b"")
    delays, last = run(error, RetryState(), max_retries=3)
    assert delays == []
    assert last.reason == "not retryable"
    assert last.state == RetryState()


def test_rate_limit_waits_are_counted_up_to_ten_per_retry() -> None:
    delays, last = run(rate_limited({"Retry-After": "7"}), RetryState(), max_retries=1)
    assert delays == [7.0] * 10
    assert last.state.rate_limit_retries == 10
    assert last.state.rate_limit_wait == 70.0
    assert last.state.retries == 0
    assert last.reason == "rate limited for too long"
    assert run(rate_limited({"Retry-After": "7"}), RetryState(), max_retries=0)[0] == []


def test_rate_limit_waits_stop_at_300_seconds_in_all() -> None:
    delays, last = run(rate_limited({"Retry-After": "60"}), RetryState(), max_retries=4)
    assert delays == [60.0] * 5  # 300 s exactly is still allowed
    assert last.state.rate_limit_wait == 300.0


def test_rate_limit_without_a_hint_backs_off_per_wait() -> None:
    delays, _ = run(rate_limited({}), RetryState(), max_retries=1)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0, 30.0]


def test_a_tpm_limit_waits_for_the_tpm_reset() -> None:
    headers = {"X-RateLimit-Reset": str(int(NOW) + 2), "X-RateLimit-TPM-Reset": str(int(NOW) + 20)}
    tpm = decide(
        rate_limited(headers, "tpm_rate_limit_exceeded"), RetryState(), max_retries=4, now=NOW
    )
    assert tpm.delay == 20.0
    assert tpm.reason == "rate limited (tpm_rate_limit_exceeded)"
    rpm = decide(rate_limited(headers), RetryState(), max_retries=4, now=NOW)
    assert rpm.delay == 2.0


def test_a_wait_longer_than_a_minute_gives_up_at_once_and_says_so() -> None:
    decision = decide(rate_limited({"Retry-After": "61"}), RetryState(), max_retries=4, now=NOW)
    assert decision.delay is None
    assert decision.state == RetryState()
    assert decision.reason == (
        "the server asked to wait 61 s, longer than this client waits (60 s at a time)"
    )
