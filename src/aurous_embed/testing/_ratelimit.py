"""Token buckets for the RPM and TPM limits, on the emulator's clock."""

from __future__ import annotations

import math


class TokenBucket:
    """A bucket of ``capacity`` tokens refilled at ``per_minute`` tokens a minute.

    All methods take ``now`` (epoch seconds) so an injected clock drives refills. A clock that
    jumps back refills nothing rather than draining the bucket.
    """

    def __init__(self, capacity: float, per_minute: float, now: float) -> None:
        if capacity <= 0 or per_minute <= 0:
            raise ValueError("rate limits must be positive")
        self.capacity = float(capacity)
        self.rate = per_minute / 60.0  # tokens per second
        self.tokens = self.capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, amount: float, now: float) -> bool:
        """Take ``amount`` tokens if available; return whether it did."""
        self._refill(now)
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False

    def retry_after(self, amount: float, now: float) -> int:
        """Whole seconds until ``amount`` tokens are available (at least 1).

        An amount above the capacity can never be served at once; the answer is then the time
        until the bucket is full, the best a client can do.
        """
        self._refill(now)
        needed = min(amount, self.capacity) - self.tokens
        return max(1, math.ceil(needed / self.rate))

    def remaining(self, now: float) -> int:
        """Whole tokens left (the ``X-RateLimit-*-Remaining`` value)."""
        self._refill(now)
        return max(0, math.floor(self.tokens))

    def reset_at(self, now: float) -> int:
        """Epoch seconds when the bucket would be full with no more traffic [DOC]."""
        self._refill(now)
        return math.ceil(now + (self.capacity - self.tokens) / self.rate)
