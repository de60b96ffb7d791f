"""Shared pieces of the reliability tests: a fast-forward clock and the emulator settings.

The client's retry, rate-limit and in-flight waits all go through its ``clock=``;
:class:`aurous_embed.testing.FastClock` runs them ``speed`` times faster, decisions unchanged.
Giving the same clock to the emulator keeps its ``X-RateLimit-Reset`` epochs in the client's time.

Slow-response faults and the client's ``timeout`` stay in real seconds: they are what the clock
cannot fast-forward (a socket read), and the tests choose them so that the client's budget for
waiting on an in-flight key (``CONFLICT_MAX_WAIT`` virtual seconds) still outlasts a slow response.
"""

from __future__ import annotations

from typing import Any

from aurous_embed._config import CONFLICT_MAX_WAIT
from aurous_embed.testing import FastClock, Faults

#: Emulator settings that take rate limits and the balance out of the picture, and short vectors
#: (the vector length does not matter to any of these tests; 64 floats keep 2,000 answers cheap).
UNLIMITED: dict[str, Any] = {
    "native_dimension": 64,
    "rpm": 1e9,
    "rpm_burst": 1e9,
    "tpm": 1e12,
    "credits": 1e9,
}

#: The client's per-attempt timeout and the emulator's slow response, in real seconds.
TIMEOUT = 0.25
SLOW_SECONDS = 0.5

#: The issue's fault mix: 10% 500/502/503, 5% 429 bursts, 2% connection resets after the request
#: was processed (headers and half the body, then the connection drops), 1% responses slower than
#: the client's timeout.
FAULT_MIX = Faults(
    error_rate=0.10,
    error_statuses=(500, 502, 503),
    rate_limit_rate=0.05,
    reset_rate=0.02,
    slow_rate=0.01,
    slow_seconds=SLOW_SECONDS,
    seed=20260515,
)


def fast_clock(speed: float = 100.0) -> FastClock:
    """A :class:`FastClock` whose in-flight wait budget outlasts a slow response."""
    # The in-flight wait budget (virtual seconds) must outlast what is left of a slow response
    # after the client's timeout (real seconds), or the client would give up on a first attempt
    # that is still running: that would be the clock's fault, not the client's.
    assert CONFLICT_MAX_WAIT / speed > 2 * (SLOW_SECONDS - TIMEOUT), "speed too high"
    return FastClock(speed)


def corpus(n: int, prefix: str = "item") -> list[str]:
    """``n`` distinct texts (distinct bodies, so no two requests could share a vector by accident)."""
    return [f"{prefix} {i}: a distinct product description, number {i} of {n}" for i in range(n)]
