"""What the emulator observed: counters (:class:`EmulatorStats`) and the charge ledger.

Stdlib only, so ``aurous_embed.testing`` can export these without the ``emulator`` extra.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Charge:
    """One row of the charge ledger: a committed, billed embedding request.

    Attributes:
        request_id: ``Aurous-Request-Id`` of the request that did the work.
        idempotency_key: Its idempotency key, or ``None`` if it was sent without one.
        model: The model slug as sent.
        text_tokens: Billable text tokens.
        image_tokens: Billable image (visual) tokens.
        total_tokens: ``text_tokens + image_tokens`` (video is never billed).
        credits: Credits debited (``usage.credits_charged``).
        created_at: Emulator clock time of the charge, epoch seconds.
    """

    request_id: str
    idempotency_key: str | None
    model: str
    text_tokens: int
    image_tokens: int
    total_tokens: int
    credits: float
    created_at: float


@dataclass(frozen=True)
class EmulatorStats:
    """A snapshot of what an emulator has seen since it started or was last reset.

    Attributes:
        requests: HTTP requests answered (replays and errors included).
        by_status: Responses per HTTP status.
        by_code: Error responses per ``error.code``.
        by_route: Requests per ``"METHOD /path"`` (unknown paths under their own path).
        charges: Ledger rows, i.e. billed embedding requests. A replay never adds one.
        credits_charged: Sum of the ledger's credits.
        tokens_charged: Sum of the ledger's tokens.
        charges_by_idempotency_key: Ledger rows per idempotency key (requests without a key
            are not listed). "Exactly one charge per logical request" means every value is 1.
        replays: Idempotent replays served (``Aurous-Idempotent-Replayed: true``).
        faults: Injected faults applied, per kind (``"status=503"``, ``"rate_limit"``,
            ``"reset"``, ``"slow"``).
        in_flight: Requests being handled right now.
        slow_in_flight: Requests held by a slow-response fault right now.
        max_concurrency: The highest ``in_flight`` seen (high-water mark).
    """

    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    by_code: dict[str, int] = field(default_factory=dict)
    by_route: dict[str, int] = field(default_factory=dict)
    charges: int = 0
    credits_charged: float = 0.0
    tokens_charged: int = 0
    charges_by_idempotency_key: dict[str, int] = field(default_factory=dict)
    replays: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    slow_in_flight: int = 0
    max_concurrency: int = 0


class StatsRecorder:
    """Mutable counters behind :class:`EmulatorStats` (internal; the caller holds the lock)."""

    def __init__(self) -> None:
        self.requests = 0
        self.by_status: Counter[int] = Counter()
        self.by_code: Counter[str] = Counter()
        self.by_route: Counter[str] = Counter()
        self.ledger: list[Charge] = []
        self.replays = 0
        self.faults: Counter[str] = Counter()
        self.in_flight = 0
        self.slow_in_flight = 0
        self.max_concurrency = 0

    def enter(self) -> None:
        """Count a request that started."""
        self.in_flight += 1
        self.max_concurrency = max(self.max_concurrency, self.in_flight)

    def leave(self) -> None:
        """Count a request that finished (answered, failed or cut off)."""
        self.in_flight -= 1

    def answered(self, route: str, status: int, code: str | None, replayed: bool) -> None:
        """Count one response."""
        self.requests += 1
        self.by_status[status] += 1
        self.by_route[route] += 1
        if code is not None:
            self.by_code[code] += 1
        if replayed:
            self.replays += 1

    def snapshot(self) -> EmulatorStats:
        """Return an immutable copy."""
        per_key: Counter[str] = Counter(
            c.idempotency_key for c in self.ledger if c.idempotency_key is not None
        )
        return EmulatorStats(
            requests=self.requests,
            by_status=dict(self.by_status),
            by_code=dict(self.by_code),
            by_route=dict(self.by_route),
            charges=len(self.ledger),
            # Rounded like the per-request amounts, so summing never shows float dust.
            credits_charged=round(sum(c.credits for c in self.ledger), 10),
            tokens_charged=sum(c.total_tokens for c in self.ledger),
            charges_by_idempotency_key=dict(per_key),
            replays=self.replays,
            faults=dict(self.faults),
            in_flight=self.in_flight,
            slow_in_flight=self.slow_in_flight,
            max_concurrency=self.max_concurrency,
        )
