"""The N→N engine: one request per input, run concurrently, results handed back in input order.

The API takes ONE input per request, so a big job lives or dies by how the client fans out. This
module holds all of it, shared by the sync client (a fixed set of worker threads, never one per
request) and the async client (worker tasks):

* :class:`Window` decides what to run next. It pulls inputs lazily from any iterable in chunks,
  lets a ``prefetch`` hook answer some of them at once (cache hits: no request, no worker), keeps at
  most a bounded number of inputs and results in memory, and hands results back in input order.
* :class:`Controller` is the adaptive concurrency limit (AIMD): it starts at the default maximum,
  doubles per window of successes until the first sign of rate limiting, then grows by one per
  window, and halves on a 429 / 503 ``provider_rate_limited`` (at most once per window).
* :class:`Pacer` reads ``X-RateLimit-Remaining/Reset`` and the TPM twins from every answer, models
  both token buckets locally and holds a request back until its bucket has a token, so under a
  rate limit the client sends at the refill rate instead of bouncing off 429s. Clients with the
  same key and base URL share one (``shared_pacer``): the server's buckets are per team. Other
  processes or machines on the same key show in the headers alone (the bucket drains faster than
  this process's own requests explain): the pacer then keeps to its share of the bucket. Until
  the first answer arrives it lets only a few requests out.

A failed item does not stop the others; an error that would fail every remaining input (bad key,
empty balance, budget reached, closed client: ``stops_batch``) stops new items from being sent,
and every item not sent yet gets its own copy of that error (``skipped=True``), so every input is
accounted for, in order. A source iterable that raises ends the inputs: what it produced before
is still embedded and handed back, then its error is raised. A progress callback that raises
stops the batch at once, like the consumer stopping, and its error is raised.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import math
import threading
import time
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aurous_embed._config import DEFAULT_MAX_CONCURRENCY, MAX_RETRY_AFTER, RATE_LIMIT_MIN_WAIT
from aurous_embed._errors import AurousError, skipped_error, stops_batch
from aurous_embed._retry import parse_reset, parse_retry_after

T = TypeVar("T")
R = TypeVar("R")

#: ``on_progress(done, total, credits)``: items finished (ok or failed), total if known, credits so far.
ProgressCallback = Callable[[int, "int | None", float], None]

#: How many inputs are pulled from the source (and offered to ``prefetch``) at once.
CHUNK = 32
#: How many the consumer pulls at once when it would otherwise wait, if a ``prefetch`` (the cache)
#: may answer them: hits then flow without thread handoffs (512 hits are about 8 MB at most).
PREFETCH_CHUNK = 512
#: After an abort, how long the sync driver waits for its worker threads before returning.
ABORT_JOIN = 1.0


# --- adaptive concurrency ------------------------------------------------------------------------


class Controller:
    """AIMD concurrency limit: slow start, then additive increase; halve on rate limiting.

    It starts at ``min(maximum, 32)`` (the default ``max_concurrency``): an unknown or unlimited
    bucket then costs no ramp-up (starting at 16 cost about half a round trip per call), and a
    bucket this process has seen drained is handled by the shared :class:`Pacer`, which holds
    requests back until it refills. A bucket drained by something this process has not seen
    (another process, another library) meets only the pacer's first few probes (``probe``): their
    answers' headers start the pacing before the rest of the wave goes.
    """

    def __init__(self, maximum: int, *, initial: int = DEFAULT_MAX_CONCURRENCY) -> None:
        self.maximum = maximum
        self._limit = float(max(1, min(initial, maximum)))
        self._threshold = math.inf  # slow start until the first rate-limit signal
        self._since_decrease = 0  # successes since the last halving
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        return max(1, int(self._limit))

    def success(self) -> None:
        with self._lock:
            self._since_decrease += 1
            step = 1.0 if self._limit < self._threshold else 1.0 / self._limit
            self._limit = min(float(self.maximum), self._limit + step)

    def rate_limited(self) -> None:
        with self._lock:
            # Answers to requests sent before the last halving say nothing new: halve once per window.
            if self._since_decrease < self.limit and self._threshold != math.inf:
                return
            self._threshold = max(1.0, self._limit / 2)
            self._limit = self._threshold
            self._since_decrease = 0


# --- rate-limit pacing ---------------------------------------------------------------------------

#: A fresh pacer (no answer seen yet) lets this many requests out, then waits for the first answer's
#: headers before opening up: a bucket another process drained meets a few probes, not a whole wave.
PROBE_REQUESTS = 4
#: How often a request held back by the probe gate looks again (the first answer opens the gate).
PROBE_POLL = 0.01
#: The probe gate opens anyway this long after the first probe left (an answer without headers, a
#: slow probe): the gate is a courtesy, never a stall.
PROBE_TIMEOUT = 2.0
#: Windows over which the pacer compares how fast a bucket drains with what it spent itself: at
#: least this long, and long enough to hold ``SHARE_WINDOW_EVENTS`` of its own draws, or
#: ``SHARE_WINDOW_MAX`` seconds.
SHARE_WINDOW_MIN = 1.0
SHARE_WINDOW_MAX = 4.0
SHARE_WINDOW_EVENTS = 6.0
#: The smallest share of a bucket the pacer assumes is its own (64 workers on one key).
SHARE_MIN = 1.0 / 64
#: The share a process assumes when its first answer shows the bucket empty (others are spending
#: all of the refill; how many does not show yet).
SHARE_JOIN = 0.25
#: A first answer showing the bucket below this fraction of its size counts as "found empty".
SHARE_LOW = 0.25
#: How fast a share grows back towards what the process drew (per window), and how many requests'
#: worth of slack the bucket must show for it to grow at all.
SHARE_UP = 0.2
SHARE_SLACK = 4.0
#: Foreign draws below this fraction of a window's total (or 2 requests) are noise: whole-number
#: ``Remaining``, reset times in whole seconds, latency jitter. A lone worker keeps all of the bucket.
SHARE_NOISE = 0.1


@dataclass
class _Bucket:
    """A local model of one server token bucket, fed by the rate-limit headers.

    The server's bucket may be drawn on by other processes or machines with the same key: the model
    holds this process's ``share`` of it (1.0 until other draws are seen). Every window it compares
    how much the bucket drained (the refill it learnt, minus the change in ``Remaining``) with what
    this process drew itself; the difference is what the others drew. The process then counts only
    its share of ``Remaining`` and of the refill as its own, so N workers together send at the
    refill rate instead of N times it. Shares follow what each worker actually drew, so when one
    leaves the bucket drains more slowly and the others' shares grow within a window or two; one
    that joins takes its share from the start (see ``first_share``).
    """

    capacity: float = 0.0
    rate: float = 0.0  # tokens per second; 0 until learnt (leans low: for pacing)
    refill: float = 0.0  # the same, unbiased (for weighing what others drew); 0 until learnt
    level: float = 0.0
    at: float = 0.0  # monotonic time of `level`
    known: bool = False
    share: float = 1.0  # of the server's bucket that this process may spend
    #: the window's start: when, the bucket's ``Remaining`` then, and this process's draws by then
    anchor: tuple[float, float, float] | None = None

    def level_at(self, now: float) -> float:
        top = self.capacity * self.share
        return min(top, self.level + self.share * self.rate * max(0.0, now - self.at))

    def wait_for(self, cost: float, now: float) -> float:
        if not self.known or cost <= 0:
            return 0.0
        level = self.level_at(now)
        if level >= min(cost, self.capacity * self.share) - 1e-6:
            # (tolerance: a wait computed from this formula must end it; a cost above this
            # process's share of the whole bucket goes when its share is full)
            return 0.0
        if self.rate <= 0:
            return 0.0  # cannot model the refill: let the server decide (429 + Retry-After)
        return max((min(cost, self.capacity * self.share) - level) / (self.share * self.rate), 1e-3)

    def take(self, cost: float, now: float) -> None:
        if self.known:
            self.level = self.level_at(now) - cost
            self.at = now

    def observe(
        self,
        limit: float,
        remaining: float,
        reset_in: float | None,
        now: float,
        spent_since: float,
        drawn: float | None = None,
        unit: float = 1.0,
        *,
        rejected: bool = False,
    ) -> None:
        """Learn from one answer: ``drawn`` is everything this process has drawn from the bucket so
        far (``None``: do not weigh it against the others); ``unit`` is one request's worth of it
        (1 request, or an average request's tokens). A ``rejected`` answer (429) can set the first
        share (the bucket was found empty), but its Remaining may be forced to zero (the other
        bucket was the empty one): it is never a window's end."""
        if limit <= 0:
            return
        self.capacity = limit
        # A reset more than an hour away is not a per-minute bucket refilling: do not learn from it.
        if reset_in is not None and 0 < reset_in <= 3600 and remaining < limit:
            rate = (limit - remaining) / reset_in
            # Reset is whole seconds: smooth, and lean low so rounding does not cause 429s.
            self.rate = rate if self.rate <= 0 else 0.8 * self.rate + 0.2 * rate
            if reset_in >= 2:
                # For weighing draws, the refill without the lean: Remaining is rounded down
                # and the reset up, each by half a unit on average.
                fair = (limit - remaining - 0.5) / (reset_in - 0.5)
                self.refill = fair if self.refill <= 0 else 0.9 * self.refill + 0.1 * fair
        if drawn is not None and (self.anchor is None or not rejected):
            self.learn_share(remaining, now, drawn, unit)
        # The answer shows the bucket when the server took this request; requests sent since then
        # have taken their tokens too.
        self.level = self.share * remaining - spent_since
        self.at = now
        self.known = True

    def learn_share(self, remaining: float, now: float, drawn: float, unit: float = 1.0) -> None:
        """Compare the bucket's drain over the window with this process's own draws."""
        if self.anchor is None:
            self.share = self.first_share(remaining, drawn, unit)
            self.anchor = (now, remaining, drawn)
            return
        since, before, drawn_before = self.anchor
        elapsed, mine = now - since, drawn - drawn_before
        if elapsed < SHARE_WINDOW_MIN:
            return
        full = self.capacity - unit
        if self.rate <= 0 or mine <= 0 or remaining >= full or before >= full:
            # The refill is unknown, this process drew nothing (its share says nothing), or the
            # bucket was full (what refilled may have overflowed): nothing to learn.
            self.anchor = (now, remaining, drawn)
            return
        refill = self.refill if self.refill > 0 else self.rate
        total = refill * elapsed - (remaining - before)  # what everyone drew
        if mine < SHARE_WINDOW_EVENTS * unit and elapsed < SHARE_WINDOW_MAX:
            return  # too few of its own draws yet to weigh them against the others'
        self.anchor = (now, remaining, drawn)
        # (nobody else drew, within the noise: 1)
        sample = 1.0 if total - mine <= max(2 * unit, SHARE_NOISE * total) else mine / total
        if sample < self.share:
            # Down at once: the others draw more than this process left them.
            share = sample
        elif sample >= 1.0:
            share = 0.5 * self.share + 0.5  # alone again: back to the whole bucket in a few windows
        elif min(remaining, before) < SHARE_SLACK * unit:
            # Up only when the bucket has room: while it is empty, a worker that drew more than
            # its share took it from the others (who saw less refill than they were due).
            return
        else:
            share = (1 - SHARE_UP) * self.share + SHARE_UP * sample
        self.share = 1.0 if share > 1 - SHARE_NOISE / 2 else max(SHARE_MIN, share)

    def first_share(self, remaining: float, drawn: float, unit: float = 1.0) -> float:
        """The share to start from, from the first answer: if the bucket is lower than this
        process's own draws explain, others drew from it (or did shortly before)."""
        missing = self.capacity - remaining
        if missing <= drawn + 2 * unit:
            return 1.0
        share = drawn / missing
        if remaining < SHARE_LOW * self.capacity:
            # Found empty: others are spending all of the refill, and how many of them there are
            # does not show. Start as one of a few; the first window puts it right (shares follow
            # what each draws, so a newcomer that started at its own few draws would stay there).
            share = max(share, SHARE_JOIN)
        return min(1.0, max(SHARE_MIN, share))


@dataclass(frozen=True, slots=True)
class Ticket:
    """Proof of a reservation: what was spent up to and including this request, and its cost."""

    requests_spent: float
    tokens_spent: float
    tokens: float = 0.0


class Pacer:
    """Holds requests back so they go out at the rate the server's buckets refill (thread-safe).

    It learns from headers alone: each bucket's size, refill rate and level, and (see
    :class:`_Bucket`) how much of it this process may spend when other processes or machines draw
    on the same key. Until the first answer arrives, at most ``probe`` requests go out.
    """

    def __init__(self, *, probe: int = PROBE_REQUESTS) -> None:
        self._lock = threading.Lock()
        self._requests = _Bucket()
        self._tokens = _Bucket()
        self._requests_spent = 0.0
        self._tokens_spent = 0.0
        # what the server turned away (a 429 takes nothing from the buckets)
        self._requests_refunded = 0.0
        self._tokens_refunded = 0.0
        self._blocked_until = 0.0
        self._probe = probe
        self._answered = probe <= 0  # an answer (any) was seen: the probe gate is open
        self._probe_started: float | None = None
        self._last_grant: float | None = None  # when a request was last let out

    @property
    def shares(self) -> tuple[float, float]:
        """This process's share of the request and token buckets (1.0: nobody else seen)."""
        with self._lock:
            return self._requests.share, self._tokens.share

    def reserve(
        self, tokens: float, now: float, *, waited: float = 0.0
    ) -> tuple[float, Ticket | None]:
        """``(0, ticket)`` when the request may go now, else ``(seconds to wait, None)``.

        ``waited`` is how long this attempt has already been held back: the local model is a guess,
        so after ``MAX_RETRY_AFTER`` the request goes anyway and the server has the last word,
        unless other requests were let out meanwhile (it is waiting its turn, not stuck).
        """
        with self._lock:
            wait = max(
                self._blocked_until - now,
                self._requests.wait_for(1.0, now),
                self._tokens.wait_for(tokens, now),
                self._probe_wait(now),
            )
            if wait > 0:
                if waited < MAX_RETRY_AFTER:
                    return min(wait, MAX_RETRY_AFTER - waited), None
                # Waiting its turn while others go is the model working (a small share of a
                # bucket, many requests queued); no request let out for that long is the model
                # stuck: then this one goes.
                if self._last_grant is not None and now - self._last_grant < MAX_RETRY_AFTER:
                    return min(wait, MAX_RETRY_AFTER), None
            self._last_grant = now
            self._requests.take(1.0, now)
            self._tokens.take(tokens, now)
            self._requests_spent += 1.0
            self._tokens_spent += tokens
            return 0.0, Ticket(self._requests_spent, self._tokens_spent, tokens)

    def _probe_wait(self, now: float) -> float:
        """Before the first answer: ``probe`` requests may go, the others poll until it comes."""
        if self._answered:
            return 0.0
        if self._probe_started is None:
            self._probe_started = now
        if self._requests_spent < self._probe or now - self._probe_started >= PROBE_TIMEOUT:
            return 0.0
        # Every waiter wakes on the same beat, so the wave leaves together once the gate opens.
        elapsed = now - self._probe_started
        return max(1e-3, min(PROBE_POLL - elapsed % PROBE_POLL, PROBE_TIMEOUT - elapsed))

    def observe(
        self,
        status: int,
        headers: Mapping[str, str],
        ticket: Ticket | None,
        now: float,
        epoch: float,
    ) -> None:
        """Learn from one answer's headers (every answer carries them, errors included)."""
        with self._lock:
            self._answered = True
            rejected = status == 429
            if rejected and ticket is not None:
                self._requests_refunded += 1.0
                self._tokens_refunded += ticket.tokens
            requests_drawn = self._requests_spent - self._requests_refunded
            tokens_drawn = self._tokens_spent - self._tokens_refunded
            token_unit = max(1.0, tokens_drawn / max(1.0, requests_drawn))
            for bucket, prefix, spent, mine, drawn, unit in (
                (
                    self._requests,
                    "x-ratelimit-",
                    self._requests_spent,
                    ticket and ticket.requests_spent,
                    requests_drawn,
                    1.0,
                ),
                (
                    self._tokens,
                    "x-ratelimit-tpm-",
                    self._tokens_spent,
                    ticket and ticket.tokens_spent,
                    tokens_drawn,
                    token_unit,
                ),
            ):
                limit = _number(headers.get(prefix + "limit"))
                remaining = _number(headers.get(prefix + "remaining"))
                if limit is None or remaining is None:
                    continue
                reset_in = parse_reset(headers, epoch, tpm=bucket is self._tokens)
                bucket.observe(
                    limit,
                    remaining,
                    reset_in,
                    now,
                    spent - (mine or spent),
                    drawn,
                    unit,
                    rejected=rejected,
                )
            if status == 429 or (status == 503 and headers.get("retry-after") is not None):
                # Everyone holds back at least RATE_LIMIT_MIN_WAIT (a `Retry-After: 0` is not
                # "now"), and at most MAX_RETRY_AFTER: a longer block is not remembered (the call
                # that met it gives up; a later call asks the server again).
                wait = max(parse_retry_after(headers, epoch) or 0.0, RATE_LIMIT_MIN_WAIT)
                self._blocked_until = max(self._blocked_until, now + min(wait, MAX_RETRY_AFTER))
                if status == 429:
                    # Nothing refills for this process while the server holds it back: it starts
                    # again from an empty bucket, not with a burst saved up during the wait (every
                    # worker told to wait would otherwise come back at the same moment, at once).
                    for bucket in (self._requests, self._tokens):
                        if bucket.known:
                            bucket.level = min(bucket.level, 0.0)
                            bucket.at = max(bucket.at, self._blocked_until)


#: The process's models of the servers' buckets, one per (base URL, API key): see shared_pacer.
_SHARED_PACERS: dict[tuple[str, Hashable], Pacer] = {}
_SHARED_PACERS_LOCK = threading.Lock()


def shared_pacer(base_url: str, api_key: Hashable) -> Pacer:
    """The process's one model of the rate-limit buckets behind ``api_key`` at ``base_url``.

    The server keeps one RPM and one TPM bucket per team, fed by every request the team makes, so
    every client in this process with the same key and base URL (sync or async, adapters included)
    paces against the same model: a job that starts after another drained the bucket waits for
    the refill instead of bouncing off 429s, and two jobs at once share the refill instead of each
    spending all of it. A stale model does no harm: it refills at the rate it learnt.
    """
    with _SHARED_PACERS_LOCK:
        return _SHARED_PACERS.setdefault((base_url, api_key), Pacer())


def forget_shared_pacers() -> None:
    """Forget every shared model (the test suite starts each test from nothing)."""
    with _SHARED_PACERS_LOCK:
        _SHARED_PACERS.clear()


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


# --- ordering window -----------------------------------------------------------------------------


@dataclass
class Outcome(Generic[R]):
    """What happened to one input: ``value`` or ``error`` (exactly one is set)."""

    index: int
    value: R | None = None
    error: BaseException | None = None


#: ``prefetch(chunk)`` answers some pulled items at once (e.g. cache hits): ``{index: result}``.
Prefetch = Callable[[list[tuple[int, T]]], Mapping[int, R]]


class _Signal(enum.Enum):
    WAIT = "wait"  # nothing to do right now
    PULL = "pull"  # the driver must pull more inputs (``pull_size()``) and ``feed`` them


_WAIT = _Signal.WAIT
_PULL = _Signal.PULL


@dataclass
class Window(Generic[T, R]):
    """The state both drivers share. Not thread-safe: drivers hold their lock around every call."""

    concurrency: int
    controller: Controller
    prefetch: Prefetch[T, R] | None = None
    total: int | None = None
    on_progress: ProgressCallback | None = None
    cost: Callable[[object], float] = lambda _: 0.0
    active: int = 0
    pulled: int = 0
    next_out: int = 0
    done: int = 0
    credits: float = 0.0
    exhausted: bool = False
    #: the consumer stopped (or a progress callback failed): nothing more is sent or handed out
    stopped: bool = False
    #: the error that stopped sending (``stops_batch``); items not sent yet get a copy of it
    fatal: AurousError | None = None
    #: what the caller's iterable raised; raised after everything it produced was handed back
    source_error: BaseException | None = None
    #: what the progress callback raised; raised at once
    callback_error: BaseException | None = None
    queue: deque[tuple[int, T]] = field(default_factory=deque)
    finished: dict[int, Outcome[R]] = field(default_factory=dict)

    @property
    def buffer_limit(self) -> int:
        # Results finish out of order: cap how far ahead of the consumer the workers may run.
        return max(4 * self.concurrency, PREFETCH_CHUNK if self.prefetch else CHUNK)

    def next_work(self) -> tuple[int, T] | _Signal | None:
        """An item to send; ``_WAIT``; ``_PULL`` (feed more inputs first); or ``None`` (exit)."""
        if self.stopped:
            return None
        if self.fatal is None and self.active >= min(self.concurrency, self.controller.limit):
            return _WAIT
        if not self.queue:  # (always empty once a fatal error stopped sending)
            if self.exhausted:
                return None
            return _PULL if self.pull_size() > 0 else _WAIT
        self.active += 1
        return self.queue.popleft()

    def pull_size(self, *, consumer: bool = False) -> int:
        size = PREFETCH_CHUNK if consumer and self.prefetch else CHUNK
        return min(size, self.buffer_limit - (self.pulled - self.next_out))

    def wants_pull(self) -> bool:
        """Nothing is queued to send and there is room for more inputs."""
        return not (self.queue or self.exhausted or self.stopped) and self.pull_size() > 0

    def feed(self, items: list[T], *, exhausted: bool, error: BaseException | None = None) -> None:
        """Take freshly pulled inputs; answer the prefetched ones at once."""
        chunk = [(self.pulled + i, item) for i, item in enumerate(items)]
        self.pulled += len(chunk)
        if error is not None:  # the caller's iterable failed: surface it after what came before
            self.source_error = error
        self.exhausted = self.exhausted or exhausted or error is not None
        hits: Mapping[int, R] = {}
        if self.prefetch is not None and chunk and self.fatal is None:
            try:
                hits = self.prefetch(chunk)
            except Exception as exc:
                for index, _ in chunk:
                    self.record(Outcome(index, error=exc))
                return
        for index, item in chunk:
            if index in hits:
                self.record(Outcome(index, value=hits[index]))
            else:
                self.queue.append((index, item))
        self._skip_queued()

    def _skip_queued(self) -> None:
        """Once sending stopped, every queued item fails with a copy of the stopping error."""
        if self.fatal is not None:
            while self.queue:
                index, _ = self.queue.popleft()
                self.record(Outcome(index, error=skipped_error(self.fatal, index)))

    def record(self, outcome: Outcome[R]) -> None:
        error = outcome.error
        if isinstance(error, AurousError) and error.index is None:
            error.index = outcome.index  # name the item in whatever reports this error
        self.finished[outcome.index] = outcome
        self.done += 1
        if outcome.value is not None:
            self.credits += self.cost(outcome.value)
        if self.on_progress is not None and self.callback_error is None:
            try:
                self.on_progress(self.done, self.total, self.credits)
            except BaseException as exc:  # the caller's code: stop, and raise it to the caller
                self.callback_error = exc
                self.stopped = True
        if self.fatal is None and isinstance(error, AurousError) and stops_batch(error):
            self.fatal = error
            self._skip_queued()

    def complete(self, outcome: Outcome[R]) -> None:
        self.active -= 1
        self.record(outcome)

    def take_ready(self) -> list[Outcome[R]]:
        """All consecutive finished outcomes from ``next_out`` on."""
        out: list[Outcome[R]] = []
        while self.next_out in self.finished:
            out.append(self.finished.pop(self.next_out))
            self.next_out += 1
        return out

    def finished_run(self) -> bool:
        """Nothing more will come: no request in flight and nothing left that will be sent."""
        if self.active:
            return False
        return self.stopped or (self.exhausted and not self.queue)

    def leftovers(self) -> list[Outcome[R]]:
        """After a stop, what finished beyond the first gap (e.g. cache hits), in index order."""
        return [self.finished.pop(i) for i in sorted(self.finished)]

    def wake_count(self) -> int:
        """How many waiting workers may start now (the AIMD limit may have grown)."""
        return max(1, min(self.concurrency, self.controller.limit) - self.active)


def run_sync(
    items: Iterable[T],
    work: Callable[[int, T], R],
    *,
    concurrency: int,
    controller: Controller | None = None,
    prefetch: Prefetch[T, R] | None = None,
    total: int | None = None,
    on_progress: ProgressCallback | None = None,
    cost: Callable[[object], float] = lambda _: 0.0,
    on_abort: Callable[[], None] | None = None,
) -> Iterator[Outcome[R]]:
    """Run ``work(index, item)`` over ``items`` on at most ``concurrency`` threads, in input order.

    Outcomes come back in input order; the iterable is consumed lazily. If the consumer stops
    early (an exception such as KeyboardInterrupt, or closing the generator), no new work starts,
    ``on_abort`` is called to cut the requests in flight short, and the worker threads are joined
    for at most ``ABORT_JOIN`` seconds (they are daemon threads: a request that cannot be cut short
    never holds the process).
    """
    ctl = controller or Controller(concurrency)
    window: Window[T, R] = Window(concurrency, ctl, prefetch, total, on_progress, cost)
    source = iter(items)
    lock = threading.Lock()
    can_work = threading.Condition(lock)
    can_take = threading.Condition(lock)

    def pull(size: int) -> None:  # called with the lock held: iterators are not thread-safe
        chunk: list[T] = []
        try:
            chunk.extend(itertools.islice(source, size))
        except Exception as exc:
            window.feed(chunk, exhausted=True, error=exc)
        else:
            window.feed(chunk, exhausted=len(chunk) < size)

    def worker() -> None:
        while True:
            with lock:
                got = window.next_work()
                while isinstance(got, _Signal):
                    if got is _PULL:
                        pull(window.pull_size())
                        if window.next_out in window.finished or window.stopped:
                            can_take.notify()  # prefetch answered the next items
                    else:
                        can_work.wait()
                    got = window.next_work()
                if got is None:
                    can_take.notify()
                    return
                index, item = got
            try:
                outcome: Outcome[R] = Outcome(index, value=work(index, item))
            except BaseException as exc:  # whatever it is, the item is accounted for
                outcome = Outcome(index, error=exc)
            if outcome.error is None:
                ctl.success()
            with lock:
                window.complete(outcome)
                can_work.notify(window.wake_count())
                if window.stopped or index == window.next_out or window.active == 0:
                    can_take.notify()

    count = max(1, min(concurrency, total if total is not None else concurrency))
    threads: list[threading.Thread] = []

    def start_workers() -> None:
        if not threads:
            threads.extend(
                threading.Thread(target=worker, name=f"aurous-embed-{n}", daemon=True)
                for n in range(count)
            )
            for thread in threads:
                thread.start()

    if prefetch is None:
        start_workers()
    # With a prefetch (the cache), workers start at the first input it cannot answer: a batch of
    # cache hits runs in the caller's thread alone.
    over = finished = False
    try:
        while True:
            with lock:
                while True:
                    if window.callback_error is not None:
                        raise window.callback_error
                    batch = window.take_ready()
                    if batch or window.finished_run():
                        break
                    if window.wants_pull():
                        # Pull here rather than wait for a worker to: cache hits then come back
                        # without a thread handoff; what is left to send goes to the workers.
                        pull(window.pull_size(consumer=True))
                        if window.queue:
                            start_workers()
                            can_work.notify(len(window.queue))
                        continue
                    # Short waits: Ctrl-C raises KeyboardInterrupt only when the main thread runs
                    # Python code, and a blocked wait is not woken if the signal hit another thread.
                    can_take.wait(0.2)
                if batch:
                    can_work.notify(len(batch))
                else:
                    batch = window.leftovers()
                    over = True
            yield from batch
            if over:
                finished = True
                if window.source_error is not None:
                    raise window.source_error
                return
    finally:
        with lock:
            window.stopped = True
            can_work.notify_all()
        if finished:
            for thread in threads:  # nothing is in flight: they exit at once
                thread.join()
        else:
            if on_abort is not None:
                on_abort()
            deadline = time.monotonic() + ABORT_JOIN
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))


async def run_async(
    items: Iterable[T] | AsyncIterable[T],
    work: Callable[[int, T], Awaitable[R]],
    *,
    concurrency: int,
    controller: Controller | None = None,
    prefetch: Prefetch[T, R] | None = None,
    total: int | None = None,
    on_progress: ProgressCallback | None = None,
    cost: Callable[[object], float] = lambda _: 0.0,
) -> AsyncGenerator[Outcome[R], None]:
    """The async twin of :func:`run_sync`: at most ``concurrency`` worker tasks.

    Cancelling the consumer cancels the requests in flight.
    """
    ctl = controller or Controller(concurrency)
    window: Window[T, R] = Window(concurrency, ctl, prefetch, total, on_progress, cost)
    sync_source = iter(items) if isinstance(items, Iterable) else None
    async_source = aiter(items) if sync_source is None else None  # type: ignore[arg-type]
    lock = asyncio.Lock()
    can_work = asyncio.Condition(lock)
    can_take = asyncio.Condition(lock)  # one lock, two wait queues

    async def pull(size: int) -> None:  # called with the lock held
        chunk: list[T] = []
        try:
            if sync_source is not None:
                chunk.extend(itertools.islice(sync_source, size))
            else:
                assert async_source is not None
                async for item in async_source:
                    chunk.append(item)
                    if len(chunk) >= size:
                        break
        except Exception as exc:
            window.feed(chunk, exhausted=True, error=exc)
        else:
            window.feed(chunk, exhausted=len(chunk) < size)

    async def worker() -> None:
        while True:
            async with can_work:
                got = window.next_work()
                while isinstance(got, _Signal):
                    if got is _PULL:
                        await pull(window.pull_size())
                        if window.next_out in window.finished or window.stopped:
                            can_take.notify()  # prefetch answered the next items
                    else:
                        await can_work.wait()
                    got = window.next_work()
                if got is None:
                    can_take.notify()
                    return
                index, item = got
            try:
                outcome: Outcome[R] = Outcome(index, value=await work(index, item))
            except Exception as exc:
                outcome = Outcome(index, error=exc)
            if outcome.error is None:
                ctl.success()
            async with can_work:
                window.complete(outcome)
                can_work.notify(window.wake_count())
                if window.stopped or index == window.next_out or window.active == 0:
                    can_take.notify()

    count = max(1, min(concurrency, total if total is not None else concurrency))
    tasks = [asyncio.ensure_future(worker()) for _ in range(count)]
    over = False
    try:
        while True:
            async with can_work:
                while True:
                    if window.callback_error is not None:
                        raise window.callback_error
                    batch = window.take_ready()
                    if batch or window.finished_run():
                        break
                    await can_take.wait()
                if batch:
                    can_work.notify(len(batch))
                else:
                    batch = window.leftovers()
                    over = True
            for outcome in batch:
                yield outcome
            if over:
                if window.source_error is not None:
                    raise window.source_error
                return
    finally:
        window.stopped = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
