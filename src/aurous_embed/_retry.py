"""Retry policy as pure functions: no I/O, time and randomness passed in, tested by tables.

The rules, from the API's error taxonomy:

* 429 and 503 ``provider_rate_limited`` (type ``rate_limit``): wait ``Retry-After`` (seconds or an
  HTTP date), else until ``X-RateLimit-Reset``, but never less than ``RATE_LIMIT_MIN_WAIT``
  (``Retry-After: 0`` is not "now"); with neither, back off like a 5xx.
  A rate limit is back-pressure, not a failure: these waits have their own budget (``10 x
  max_retries`` waits, ``RATE_LIMIT_MAX_WAIT`` seconds in all) and do not use up ``max_retries``.
  A server that asks for more than ``MAX_RETRY_AFTER`` is not waited for at all: the call gives
  up at once with a ``RateLimitError`` that says what was asked (``.retry_after``).
* other 5xx, timeouts and connection errors: exponential backoff with jitter, 1 s doubling to 30 s.
* 409 ``idempotency_key_in_use``: retried (0.5 s doubling to 8 s) only when an earlier attempt of the
  same call may still be running on the server; those waits have their own time budget
  (``CONFLICT_MAX_WAIT``) because the point is to collect the first attempt's replay.
* every other 4xx: never retried.

``max_retries`` counts retries after failures, not attempts; ``max_retries=0`` never retries.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from aurous_embed._config import (
    CONFLICT_BACKOFF_INITIAL,
    CONFLICT_BACKOFF_MAX,
    CONFLICT_MAX_WAIT,
    MAX_RETRY_AFTER,
    RATE_LIMIT_MAX_WAIT,
    RATE_LIMIT_MIN_WAIT,
    RATE_LIMIT_RETRIES_PER_RETRY,
    SERVER_BACKOFF_INITIAL,
    SERVER_BACKOFF_MAX,
)
from aurous_embed._errors import (
    APIConnectionError,
    APIStatusError,
    AurousError,
    IdempotencyConflictError,
    RateLimitError,
)


class Clock(Protocol):
    """Time as the client sees it; tests pass a fake that records sleeps instead of sleeping."""

    def time(self) -> float:
        """Wall-clock epoch seconds (for HTTP dates and ``X-RateLimit-Reset``)."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds (for pacing)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Wait for ``seconds`` without blocking the event loop."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@dataclass(frozen=True, slots=True)
class RetryState:
    """What one logical call has been through so far."""

    retries: int = 0
    rate_limit_retries: int = 0
    rate_limit_wait: float = 0.0
    conflict_retries: int = 0
    conflict_wait: float = 0.0
    #: an earlier attempt may have reached the server and still be running (or have succeeded)
    maybe_in_flight: bool = False
    #: the key is not this call's alone (derived from the request, ``replay_identical``): an
    #: identical request elsewhere may be running, so a 409 "in use" is waited out like our own
    shared_key: bool = False


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """``delay`` is ``None`` when the error must be raised."""

    delay: float | None
    state: RetryState
    reason: str


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta seconds or an HTTP date), if present and sane."""
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def parse_reset(headers: Mapping[str, str], now: float, *, tpm: bool = False) -> float | None:
    """Seconds until a rate-limit bucket resets, from ``X-RateLimit-[TPM-]Reset``.

    The documented value is epoch seconds. The unprefixed ``RateLimit-Reset`` one endpoint sends may
    be a delta instead, so a value below 10^9 is read as seconds from now (one place for the guess).
    """
    names = ("x-ratelimit-tpm-reset",) if tpm else ("x-ratelimit-reset", "ratelimit-reset")
    for name in names:
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        return max(0.0, value - now if value >= 1e9 else value)
    return None


def asked_wait(headers: Mapping[str, str], now: float, *, tpm: bool = False) -> float | None:
    """The wait a rate-limit answer asks for: ``Retry-After``, else the bucket's reset."""
    wait = parse_retry_after(headers, now)
    return wait if wait is not None else parse_reset(headers, now, tpm=tpm)


def backoff(attempt: int, *, initial: float, maximum: float, rand: float) -> float:
    """Exponential backoff ``initial * 2**attempt`` capped at ``maximum``, minus up to 25% jitter."""
    base: float = min(initial * (2.0**attempt), maximum)
    return base * (1.0 - 0.25 * rand)


def decide(
    error: AurousError,
    state: RetryState,
    *,
    max_retries: int,
    now: float,
    rand: Callable[[], float] = random.random,
) -> RetryDecision:
    """Whether and how long to wait before retrying a failed attempt of one logical call."""
    if isinstance(error, APIConnectionError) and error.may_have_reached_server:
        state = replace(state, maybe_in_flight=True)

    if isinstance(error, IdempotencyConflictError):
        if (
            error.code == "idempotency_key_in_use"
            and (state.maybe_in_flight or state.shared_key)
            and state.conflict_wait < CONFLICT_MAX_WAIT
        ):
            delay = min(CONFLICT_BACKOFF_INITIAL * 2**state.conflict_retries, CONFLICT_BACKOFF_MAX)
            return RetryDecision(
                delay,
                replace(
                    state,
                    conflict_retries=state.conflict_retries + 1,
                    conflict_wait=state.conflict_wait + delay,
                ),
                "an earlier attempt of this call is still running",
            )
        return RetryDecision(None, state, "idempotency key conflict")

    if isinstance(error, RateLimitError):
        asked = asked_wait(error.headers, now, tpm=error.code == "tpm_rate_limit_exceeded")
        if asked is not None and asked > MAX_RETRY_AFTER:
            return RetryDecision(
                None,
                state,
                f"the server asked to wait {asked:.0f} s, longer than this client waits "
                f"({MAX_RETRY_AFTER:.0f} s at a time)",
            )
        if asked is None:  # no word from the server: back off
            wait = backoff(
                state.rate_limit_retries,
                initial=SERVER_BACKOFF_INITIAL,
                maximum=SERVER_BACKOFF_MAX,
                rand=rand(),
            )
        else:
            wait = max(asked, RATE_LIMIT_MIN_WAIT)
        if (
            state.rate_limit_retries >= RATE_LIMIT_RETRIES_PER_RETRY * max_retries
            or state.rate_limit_wait + wait > RATE_LIMIT_MAX_WAIT
        ):
            return RetryDecision(None, state, "rate limited for too long")
        waited = replace(
            state,
            rate_limit_retries=state.rate_limit_retries + 1,
            rate_limit_wait=state.rate_limit_wait + wait,
        )
        return RetryDecision(wait, waited, f"rate limited ({error.code})")

    if state.retries >= max_retries:
        return RetryDecision(None, state, "retries exhausted")
    retried = replace(state, retries=state.retries + 1)

    if isinstance(error, APIConnectionError) or (
        isinstance(error, APIStatusError) and error.status_code >= 500
    ):
        wait = backoff(
            state.retries, initial=SERVER_BACKOFF_INITIAL, maximum=SERVER_BACKOFF_MAX, rand=rand()
        )
        return RetryDecision(wait, retried, type(error).__name__)

    return RetryDecision(None, state, "not retryable")
