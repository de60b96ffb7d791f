"""Fault injection: settings, the per-request header, a queue, and the seeded random draws.

Three ways to make the emulator misbehave, in order of precedence for one request:

1. the request header ``Aurous-Emulator-Fault`` (see :data:`FAULT_HEADER` for the syntax);
2. a fault queued with ``Emulator.queue_faults("status=503", ...)``, used by the next request
   to that path;
3. random draws from the :class:`Faults` settings, reproducible with a seed.

Stdlib only: ``aurous_embed.testing`` imports this without the ``emulator`` extra.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import ClassVar

FAULT_HEADER = "Aurous-Emulator-Fault"
"""Per-request fault header. Comma- or semicolon-separated directives, e.g.
``status=503, retry_after=2``:

- ``status=500|502|503|504``: answer with that error after validation (not charged, not stored
  for idempotency). 500 ``internal_error``, 502 ``embeddings_provider_unknown_error``,
  503 ``provider_rate_limited`` (type ``rate_limit``, with ``Retry-After``), 504 ``provider_timeout``.
- ``status=429`` or ``rate_limit``: answer 429 ``too_many_requests`` with ``Retry-After`` before
  validation, as an empty RPM bucket would.
- ``retry_after=SECONDS``: the ``Retry-After`` value for the 429/503 above (default 1).
- ``reset``: process, charge and store the request normally, then send the headers and half of
  the body and close the connection, so the client sees a transport error.
- ``slow=SECONDS``: hold the request in flight that long before it commits and answers (an
  idempotent retry meanwhile gets 409 ``idempotency_key_in_use``). ``Emulator.release_slow()``
  ends the wait early.
- ``none``: no fault for this request, whatever the random settings would draw.
"""

INJECTABLE_STATUSES = (429, 500, 502, 503, 504)
DEFAULT_RETRY_AFTER = 1


@dataclass(frozen=True)
class Faults:
    """Random fault settings of an emulator. Probabilities are per request, in ``[0, 1]``.

    Args:
        error_rate: Probability of answering with one of ``error_statuses`` (chosen uniformly).
        error_statuses: Statuses drawn for ``error_rate``; any of 429, 500, 502, 503, 504.
        rate_limit_rate: Probability that a burst of 429 ``too_many_requests`` starts.
        burst_length: How many consecutive requests a 429 burst covers (the first included).
        retry_after: ``Retry-After`` seconds on injected 429/503 (default 1).
        reset_rate: Probability of a connection reset after the request was processed.
        slow_rate: Probability of a slow response.
        slow_seconds: How long a slow response is held in flight.
        paths: Request paths the random faults apply to (headers and queues apply anywhere).
        seed: Seed of the random draws; with a seed a sequential run is reproducible. When
            ``None``, the emulator's own ``seed`` is used.

    Example:
        >>> Faults(error_rate=0.2, error_statuses=(503,), seed=7)
        Faults(error_rate=0.2, error_statuses=(503,), seed=7, ...)
        >>> Faults.HEADER
        'Aurous-Emulator-Fault'
    """

    HEADER: ClassVar[str] = FAULT_HEADER  # the per-request fault header (syntax: FAULT_HEADER)

    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503)
    rate_limit_rate: float = 0.0
    burst_length: int = 3
    retry_after: int | None = None
    reset_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 5.0
    paths: tuple[str, ...] = ("/v1/embeddings",)
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("error_rate", "rate_limit_rate", "reset_rate", "slow_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Faults.{name} must be within [0, 1], got {value!r}")
        bad = [s for s in self.error_statuses if s not in INJECTABLE_STATUSES]
        if bad or (self.error_rate > 0 and not self.error_statuses):
            raise ValueError(f"Faults.error_statuses must be among {INJECTABLE_STATUSES}")
        if self.burst_length < 1:
            raise ValueError("Faults.burst_length must be at least 1")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("Faults.retry_after must not be negative")
        if self.slow_seconds < 0:
            raise ValueError("Faults.slow_seconds must not be negative")

    def __repr__(self) -> str:
        # Show only what differs from the defaults, so a repr in a test id stays short.
        changed = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(_DEFAULT_FAULTS, f.name)
        ]
        return f"Faults({', '.join(changed)}{', ...' if changed else ''})"


_DEFAULT_FAULTS = Faults()


@dataclass(frozen=True)
class FaultPlan:
    """What to do wrong with one request (internal)."""

    status: int | None = None  # 500/502/503/504, injected at the "model call" step
    rate_limit: bool = False  # 429 at the rate-limit step
    reset: bool = False
    slow: float | None = None
    retry_after: int | None = None
    labels: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        """True when the plan injects nothing."""
        return not (self.status or self.rate_limit or self.reset or self.slow is not None)


def parse_fault_spec(spec: str) -> FaultPlan:
    """Parse the ``Aurous-Emulator-Fault`` syntax into a plan.

    Raises:
        ValueError: On an unknown directive or a bad value; the message names it.
    """
    status: int | None = None
    rate_limit = reset = False
    slow: float | None = None
    retry_after: int | None = None
    for raw in spec.replace(";", ",").split(","):
        item = raw.strip()
        if not item:
            continue
        name, _, value = item.partition("=")
        name, value = name.strip().lower().replace("-", "_"), value.strip()
        try:
            if name == "none" and not value:
                continue
            if name == "status":
                code = int(value)
                if code not in INJECTABLE_STATUSES:
                    raise ValueError
                if code == 429:
                    rate_limit = True
                else:
                    status = code
            elif name == "rate_limit" and not value:
                rate_limit = True
            elif name == "reset" and not value:
                reset = True
            elif name == "slow":
                slow = float(value)
                if not slow >= 0:  # also rejects NaN
                    raise ValueError
            elif name == "retry_after":
                retry_after = int(value)
                if retry_after < 0:
                    raise ValueError
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"bad {FAULT_HEADER} directive {item!r}; expected status=500|502|503|504|429, "
                "rate_limit, reset, slow=SECONDS, retry_after=SECONDS or none"
            ) from None
    return _plan(status, rate_limit, reset, slow, retry_after)


def _plan(
    status: int | None, rate_limit: bool, reset: bool, slow: float | None, retry_after: int | None
) -> FaultPlan:
    labels: list[str] = []
    if rate_limit:
        labels.append("rate_limit")
    if status:
        labels.append(f"status={status}")
    if reset:
        labels.append("reset")
    if slow is not None:
        labels.append("slow")
    return FaultPlan(status, rate_limit, reset, slow, retry_after, tuple(labels))


class FaultInjector:
    """Decides the fault plan of each request (internal; thread-safe)."""

    def __init__(self, faults: Faults, seed: int | None) -> None:
        self.faults = faults
        self._seed = faults.seed if faults.seed is not None else seed
        self._lock = threading.Lock()
        self._queues: dict[str, deque[FaultPlan]] = {}
        self.reset()

    def reset(self) -> None:
        """Re-seed the draws and forget bursts and queued faults."""
        with self._lock:
            self._rng = random.Random(self._seed)
            self._burst_left = 0
            self._queues.clear()

    def queue(self, specs: Sequence[str], path: str) -> None:
        """Queue plans (header syntax) for the next requests to ``path``, one each."""
        plans = [parse_fault_spec(spec) for spec in specs]
        with self._lock:
            self._queues.setdefault(path, deque()).extend(plans)

    def plan_for(self, path: str, header: str | None) -> FaultPlan:
        """Return the plan for one request (header > queue > random).

        Raises:
            ValueError: If the header is malformed.
        """
        from_header = parse_fault_spec(header) if header is not None else None
        with self._lock:
            drawn = self._draw() if path in self.faults.paths else None
            queue = self._queues.get(path)
            queued = queue.popleft() if queue else None
        for plan in (from_header, queued, drawn):
            if plan is not None:
                return plan
        return FaultPlan()

    def _draw(self) -> FaultPlan:
        # Always the same number of draws per request, so one setting never shifts the
        # sequence of another: a seed reproduces the same faults on the same request order.
        f, rng = self.faults, self._rng
        u_error, u_pick, u_burst, u_reset, u_slow = (rng.random() for _ in range(5))
        rate_limit = False
        if self._burst_left > 0:
            self._burst_left -= 1
            rate_limit = True
        elif u_burst < f.rate_limit_rate:
            self._burst_left = f.burst_length - 1
            rate_limit = True
        status: int | None = None
        if u_error < f.error_rate:
            status = f.error_statuses[int(u_pick * len(f.error_statuses))]
            if status == 429:
                status, rate_limit = None, True
        return _plan(
            status,
            rate_limit,
            u_reset < f.reset_rate,
            f.slow_seconds if u_slow < f.slow_rate else None,
            None,
        )
