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
* the rate-limit pacer (:mod:`aurous_embed._pacing`) sits below this module and the requester:
  it decides when each request may go; this module decides which and how many.

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
    Generator,
    Iterable,
    Mapping,
)
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aurous_embed._config import DEFAULT_MAX_CONCURRENCY
from aurous_embed._errors import AurousError, skipped_error, stops_batch

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


# --- ordering window -----------------------------------------------------------------------------


@dataclass
class Outcome(Generic[R]):
    """What happened to one input: ``value`` or ``error`` (exactly one is set)."""

    index: int
    value: R | None = None
    error: BaseException | None = None


#: ``prefetch(chunk)`` answers some pulled items at once (e.g. cache hits): ``{index: result}``.
Prefetch = Callable[[list[tuple[int, T]]], Mapping[int, R]]
#: What :func:`run_sync` and :func:`run_async` return: the outcomes in input order.
Outcomes = Generator[Outcome[R], None, None]
AsyncOutcomes = AsyncGenerator[Outcome[R], None]


class _Signal(enum.Enum):
    WAIT = "wait"  # nothing to do right now
    PULL = "pull"  # the driver must pull more inputs (``pull_size()``) and ``feed`` them


_WAIT = _Signal.WAIT
_PULL = _Signal.PULL


@dataclass
class Window(Generic[T, R]):
    """The state both drivers share. Not thread-safe: drivers hold their lock around every call.

    ``ordered``: outcomes are handed out in input order (a slow item holds back those after it,
    at most ``buffer_limit`` ahead); otherwise as they finish (in index order among those that
    finished together), and a slow item holds back nothing."""

    concurrency: int
    controller: Controller
    prefetch: Prefetch[T, R] | None = None
    total: int | None = None
    on_progress: ProgressCallback | None = None
    cost: Callable[[object], float] = lambda _: 0.0
    ordered: bool = True
    #: told the error that stops sending (``stops_batch``), so that items already handed to a
    #: worker but not sent yet (waiting for the pacer) are not sent either
    on_fatal: Callable[[AurousError], None] | None = None
    active: int = 0
    pulled: int = 0
    next_out: int = 0
    #: outcomes handed out so far (``next_out`` counts those handed out in order)
    handed: int = 0
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

    def workers(self) -> int:
        """How many workers a driver starts: ``concurrency``, or fewer for fewer inputs."""
        return max(
            1, min(self.concurrency, self.total if self.total is not None else self.concurrency)
        )

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
        return min(size, self.buffer_limit - (self.pulled - self.handed))

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
            if self.on_fatal is not None:
                self.on_fatal(error)
            self._skip_queued()

    def finish(self, outcome: Outcome[R]) -> tuple[int, bool]:
        """A worker's item is done. Returns how many waiting workers may start now (the AIMD
        limit may have grown) and whether the consumer should look (the next outcome in order is
        there, or nothing more will come)."""
        if outcome.error is None:
            self.controller.success()
        self.active -= 1
        self.record(outcome)
        wake_consumer = (
            self.stopped or not self.ordered or outcome.index == self.next_out or self.active == 0
        )
        return max(1, min(self.concurrency, self.controller.limit) - self.active), wake_consumer

    def answered(self) -> bool:
        """After a pull: the consumer should look (a prefetch answered the next items, or a
        progress callback stopped the batch)."""
        return (self.next_out in self.finished if self.ordered else bool(self.finished)) or (
            self.stopped
        )

    def hand_out(self) -> tuple[list[Outcome[R]], bool] | None:
        """For the consumer: the next outcomes in input order and whether they are the last ones
        (after a stop, what finished beyond the first gap, e.g. cache hits, in index order), or
        ``None``: wait. Raises what a progress callback raised."""
        if self.callback_error is not None:
            raise self.callback_error
        batch: list[Outcome[R]] = []
        if self.ordered:
            while self.next_out in self.finished:
                batch.append(self.finished.pop(self.next_out))
                self.next_out += 1
        else:
            batch = [self.finished.pop(i) for i in sorted(self.finished)]
        if batch:
            self.handed += len(batch)
            return batch, False
        if self.active or not (self.stopped or (self.exhausted and not self.queue)):
            return None  # a request is in flight, or something is left that will be sent
        last = [self.finished.pop(i) for i in sorted(self.finished)]
        self.handed += len(last)
        return last, True

    def end(self) -> None:
        """After the last outcome was handed out: raise what the caller's iterable raised."""
        if self.source_error is not None:
            raise self.source_error


def run_sync(
    window: Window[T, R],
    items: Iterable[T],
    work: Callable[[int, T], R],
    *,
    on_abort: Callable[[], None] | None = None,
) -> Outcomes[R]:
    """Run ``work(index, item)`` over ``items`` on at most ``window.concurrency`` threads.

    Outcomes come back in input order; the iterable is consumed lazily. If the consumer stops
    early (an exception such as KeyboardInterrupt, or closing the generator), no new work starts,
    ``on_abort`` is called to cut the requests in flight short, and the worker threads are joined
    for at most ``ABORT_JOIN`` seconds (they are daemon threads: a request that cannot be cut short
    never holds the process).
    """
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
        if window.answered():
            can_take.notify()

    def worker() -> None:
        while True:
            with lock:
                got = window.next_work()
                while isinstance(got, _Signal):
                    if got is _PULL:
                        pull(window.pull_size())
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
            with lock:
                workers, wake_consumer = window.finish(outcome)
                can_work.notify(workers)
                if wake_consumer:
                    can_take.notify()

    count = window.workers()
    threads: list[threading.Thread] = []

    def start_workers() -> None:
        if not threads:
            threads.extend(
                threading.Thread(target=worker, name=f"aurous-embed-{n}", daemon=True)
                for n in range(count)
            )
            for thread in threads:
                thread.start()

    if window.prefetch is None:
        start_workers()
    # With a prefetch (the cache), workers start at the first input it cannot answer: a batch of
    # cache hits runs in the caller's thread alone.
    finished = False
    try:
        while True:
            with lock:
                while (ready := window.hand_out()) is None:
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
                batch, last = ready
                if not last:
                    can_work.notify(len(batch))
            yield from batch
            if last:
                finished = True
                window.end()
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
    window: Window[T, R],
    items: Iterable[T] | AsyncIterable[T],
    work: Callable[[int, T], Awaitable[R]],
    *,
    on_abort: Callable[[], None] | None = None,
) -> AsyncOutcomes[R]:
    """The async twin of :func:`run_sync`: at most ``window.concurrency`` worker tasks.

    Cancelling the consumer (or closing the generator early) calls ``on_abort`` and cancels the
    requests in flight.
    """
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
        if window.answered():
            can_take.notify()

    async def worker() -> None:
        while True:
            async with lock:
                got = window.next_work()
                while isinstance(got, _Signal):
                    if got is _PULL:
                        await pull(window.pull_size())
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
            async with lock:
                workers, wake_consumer = window.finish(outcome)
                can_work.notify(workers)
                if wake_consumer:
                    can_take.notify()

    count = window.workers()
    tasks = [asyncio.ensure_future(worker()) for _ in range(count)]
    finished = False
    try:
        while True:
            async with lock:
                while (ready := window.hand_out()) is None:
                    await can_take.wait()
                batch, last = ready
                if not last:
                    can_work.notify(len(batch))
            for outcome in batch:
                yield outcome
            if last:
                finished = True
                window.end()
                return
    finally:
        window.stopped = True
        if not finished and on_abort is not None:
            on_abort()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
