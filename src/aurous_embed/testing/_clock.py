"""Clocks for the emulator and tests: a manual one tests move by hand, and a fast-forward one.

The emulator reads time only through a ``clock`` callable (epoch seconds). It drives the
idempotency window, the rate-limit buckets, signed-URL and file expiry, and the timestamps in
ids. Tests pass a :class:`Clock` and call :meth:`Clock.advance` instead of sleeping. Latency and
slow-response faults are real waits on purpose: they exist to be observed by a client.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TypeAlias

ClockFn: TypeAlias = Callable[[], float]
"""Anything that returns the current time as epoch seconds, like :func:`time.time`."""

# 2026-05-15T00:00:00Z, the first stable ``Aurous-Version``: a fixed, readable starting point.
DEFAULT_START: float = datetime(2026, 5, 15, tzinfo=timezone.utc).timestamp()


class Clock:
    """A manual clock: time stands still until a test moves it.

    Thread-safe, because the emulator reads it from its server thread while the test thread
    advances it.

    Args:
        start: The initial time in epoch seconds (default 2026-05-15T00:00:00Z).

    Example:
        >>> clock = Clock()
        >>> t0 = clock()
        >>> clock.advance(24 * 3600)
        >>> clock() - t0
        86400.0
    """

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """Return the current time in epoch seconds."""
        with self._lock:
            return self._now

    def now(self) -> float:
        """Return the current time in epoch seconds (same as calling the clock)."""
        return self()

    def advance(self, seconds: float) -> None:
        """Move the clock forward.

        Args:
            seconds: How far to move; must not be negative.

        Raises:
            ValueError: If ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError("a Clock only moves forward; use set() to jump")
        with self._lock:
            self._now += seconds

    def set(self, epoch_seconds: float) -> None:
        """Jump to an absolute time (epoch seconds), forward or back."""
        with self._lock:
            self._now = float(epoch_seconds)

    def __repr__(self) -> str:
        return f"Clock({self():.3f})"


class FastClock:
    """A clock that runs ``speed`` times faster than the wall clock, for client and emulator alike.

    Give it to a client (``AurousClient(clock=...)``: it has ``time``, ``monotonic``, ``sleep`` and
    ``asleep``) and to the emulator (``Emulator(clock=...)``: it is callable). ``sleep(s)`` sleeps
    ``s / speed`` real seconds and time advances ``speed`` virtual seconds per real second, so every
    decision the client makes (how long to back off, when a ``Retry-After`` is over) is unchanged,
    only sooner, and the emulator's ``X-RateLimit-Reset`` epochs stay in the client's time. Socket
    reads, the client's ``timeout`` and the emulator's latency stay in real seconds.

    Args:
        speed: How many virtual seconds pass per real second (default 100).

    Example:
        >>> clock = FastClock(speed=1000)
        >>> t0 = clock.monotonic()
        >>> clock.sleep(5.0)  # 5 ms of real time
        >>> clock.monotonic() - t0 >= 5.0
        True
    """

    def __init__(self, speed: float = 100.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        self._real0 = time.monotonic()
        self._epoch0 = time.time()
        self._lock = threading.Lock()
        self._slept = 0.0

    @property
    def slept(self) -> float:
        """Virtual seconds the callers asked to sleep so far (a measure, not a wait)."""
        with self._lock:
            return self._slept

    def _elapsed(self) -> float:
        return (time.monotonic() - self._real0) * self.speed

    def time(self) -> float:
        """Virtual epoch seconds."""
        return self._epoch0 + self._elapsed()

    def monotonic(self) -> float:
        """Virtual monotonic seconds."""
        return self._real0 + self._elapsed()

    def __call__(self) -> float:
        """Virtual epoch seconds (the emulator's ``ClockFn``)."""
        return self.time()

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` virtual seconds (``seconds / speed`` real ones)."""
        if seconds > 0:
            with self._lock:
                self._slept += seconds
            time.sleep(seconds / self.speed)

    async def asleep(self, seconds: float) -> None:
        """The async :meth:`sleep`; always yields to the event loop."""
        if seconds > 0:
            with self._lock:
                self._slept += seconds
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def __repr__(self) -> str:
        return f"FastClock(speed={self.speed:g})"
