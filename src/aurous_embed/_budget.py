"""Spending limits: estimate each request locally from the documented rates, stop before overspending.

The estimate is an upper bound (text: ceil(UTF-8 bytes / 4) tokens, the emulator's rule; images:
1,500 tokens, the top of the documented 1,000-1,500 range), so a budget is never exceeded by a
request the client chose to send. What the API actually charged is tracked exactly.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from aurous_embed._config import (
    ESTIMATE_TOKENS_PER_IMAGE,
    TEXT_BYTES_PER_TOKEN,
    TEXT_CREDITS_PER_M,
    VISUAL_CREDITS_PER_M,
)
from aurous_embed._errors import BudgetExceededError, InputValidationError
from aurous_embed._part_types import Normalized, Text, count_images


@dataclass(frozen=True, slots=True)
class LocalEstimate:
    """Upper-bound tokens and credits of one input, computed without a request."""

    tokens: int
    credits: float


def _text_tokens(text: str) -> int:
    return max(1, math.ceil(len(text.encode("utf-8")) / TEXT_BYTES_PER_TOKEN))


def local_estimate(value: Normalized) -> LocalEstimate:
    """Estimate one input from the documented per-1M rates."""
    if isinstance(value, str):
        text_tokens, image_tokens = _text_tokens(value), 0
    else:
        text_tokens = sum(_text_tokens(p.text) for p in value if isinstance(p, Text))
        image_tokens = ESTIMATE_TOKENS_PER_IMAGE * count_images(value)
    credits = (text_tokens * TEXT_CREDITS_PER_M + image_tokens * VISUAL_CREDITS_PER_M) / 1e6
    return LocalEstimate(text_tokens + image_tokens, credits)


def check_max_credits(value: object, *, param: str = "max_credits") -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise InputValidationError(f"{param} must be a number >= 0, got {value!r}", param=param)
    return float(value)


class Budget:
    """A credit limit shared by concurrent requests (thread-safe). ``limit=None`` never stops."""

    def __init__(self, limit: float | None, *, scope: str) -> None:
        self.limit = limit
        self.scope = scope
        self.spent = 0.0
        self.reserved = 0.0
        self._lock = threading.Lock()

    def reserve(self, amount: float) -> None:
        """Hold ``amount`` for one request, or raise if it could take spending over the limit."""
        with self._lock:
            if self.limit is not None and self.spent + self.reserved + amount > self.limit + 1e-12:
                raise BudgetExceededError(
                    f"{self.scope} max_credits={self.limit:g} would be exceeded: "
                    f"{self.spent:.6f} spent, {self.reserved:.6f} held by requests in flight, and "
                    f"the next input is estimated at up to {amount:.6f} credits; nothing over "
                    "budget was sent",
                    results=[],
                    credits_spent=self.spent,
                    max_credits=self.limit,
                )
            self.reserved += amount

    def settle(self, reserved: float, charged: float) -> None:
        with self._lock:
            self.reserved -= reserved
            self.spent += charged
