"""Clocks for the emulator: the system clock, or a manual one tests move by hand.

The emulator reads time only through a ``clock`` callable (epoch seconds). It drives the
idempotency window, the rate-limit buckets, signed-URL and file expiry, and the timestamps in
ids. Tests pass a :class:`Clock` and call :meth:`Clock.advance` instead of sleeping. Latency and
slow-response faults are real waits on purpose: they exist to be observed by a client.
"""

from __future__ import annotations

import threading
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
