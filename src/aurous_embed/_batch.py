"""The N→N engine: one request per input, run concurrently, results handed back in input order.

Shared by the sync client (a fixed set of worker threads, never one per request) and the async
client (worker tasks). Both pull inputs lazily from any iterable and hold at most a bounded window of
inputs and results, so a generator of a million items streams through in O(concurrency) memory.

A failed item does not stop the others; a *fatal* error (the key is bad, the balance is empty) stops
new items from being sent, and every item not embedded is reported with that error.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aurous_embed._errors import (
    AuthenticationError,
    InsufficientCreditsError,
    MissingDependencyError,
    PermissionDeniedError,
)

T = TypeVar("T")
R = TypeVar("R")

#: ``on_progress(done, total, credits)``: items finished (ok or failed), total if known, credits so far.
ProgressCallback = Callable[[int, "int | None", float], None]

# Errors after which every further request would fail the same way.
FATAL_ERRORS = (
    AuthenticationError,
    PermissionDeniedError,
    InsufficientCreditsError,
    MissingDependencyError,
)


@dataclass
class Outcome(Generic[R]):
    """What happened to one input: ``value`` or ``error`` (exactly one is set)."""

    index: int
    value: R | None = None
    error: BaseException | None = None


@dataclass
class _Progress:
    total: int | None
    callback: ProgressCallback | None
    cost: Callable[[object], float]
    done: int = 0
    credits: float = 0.0

    def record(self, value: object) -> None:
        self.done += 1
        if value is not None:
            self.credits += self.cost(value)
        if self.callback is not None:
            self.callback(self.done, self.total, self.credits)


@dataclass
class _Window(Generic[T, R]):
    """The state both drivers share: what was pulled, what finished, what is still to hand back."""

    concurrency: int
    pulled: int = 0
    next_out: int = 0
    exhausted: bool = False
    stopped: bool = False
    fatal: BaseException | None = None
    source_error: BaseException | None = None
    finished: dict[int, Outcome[R]] = field(default_factory=dict)

    @property
    def buffer_limit(self) -> int:
        # Results may finish out of order; cap how far ahead of the consumer the workers may run.
        return self.concurrency * 4

    def may_pull(self) -> bool:
        return (
            not self.stopped
            and not self.exhausted
            and self.fatal is None
            and self.pulled - self.next_out < self.buffer_limit
        )

    def ready(self) -> bool:
        """The consumer can act: the next result is in, or there is nothing more to wait for."""
        if self.next_out in self.finished:
            return True
        nothing_pending = self.next_out >= self.pulled
        return nothing_pending and (self.exhausted or self.fatal is not None or self.stopped)

    def take(self) -> Outcome[R] | None:
        """The next outcome in input order, or ``None`` when the run is over."""
        outcome = self.finished.pop(self.next_out, None)
        if outcome is not None:
            self.next_out += 1
            return outcome
        if self.source_error is not None:
            raise self.source_error
        if self.fatal is not None and not self.exhausted:
            # Items that were never pulled cannot be reported by index; the caller reports the
            # fatal error for the rest of its (known) inputs.
            return None
        return None

    def finish(self, outcome: Outcome[R]) -> None:
        self.finished[outcome.index] = outcome
        if isinstance(outcome.error, FATAL_ERRORS) and self.fatal is None:
            self.fatal = outcome.error


def run_sync(
    items: Iterable[T],
    work: Callable[[int, T], R],
    *,
    concurrency: int,
    total: int | None = None,
    on_progress: ProgressCallback | None = None,
    cost: Callable[[object], float] = lambda _: 0.0,
) -> Iterator[Outcome[R]]:
    """Run ``work(index, item)`` over ``items`` on at most ``concurrency`` threads, in input order."""
    source = iter(enumerate(items))
    window: _Window[T, R] = _Window(concurrency)
    progress = _Progress(total, on_progress, cost)
    cond = threading.Condition()

    def worker() -> None:
        while True:
            with cond:
                while not window.may_pull():
                    if window.stopped or window.exhausted or window.fatal is not None:
                        return
                    cond.wait()
                try:
                    index, item = next(source)
                except StopIteration:
                    window.exhausted = True
                    cond.notify_all()
                    return
                except Exception as exc:  # the caller's iterator failed: surface it, stop
                    window.source_error, window.exhausted = exc, True
                    cond.notify_all()
                    return
                window.pulled += 1
            try:
                outcome: Outcome[R] = Outcome(index, value=work(index, item))
            except Exception as exc:
                outcome = Outcome(index, error=exc)
            with cond:
                window.finish(outcome)
                progress.record(outcome.value)
                cond.notify_all()

    threads = [
        threading.Thread(target=worker, name=f"aurous-embed-{n}", daemon=True)
        for n in range(max(1, min(concurrency, total if total is not None else concurrency)))
    ]
    for thread in threads:
        thread.start()
    try:
        while True:
            with cond:
                while not window.ready():
                    cond.wait()
                outcome = window.take()
                cond.notify_all()
            if outcome is None:
                return
            yield outcome
    finally:
        with cond:
            window.stopped = True
            cond.notify_all()
        for thread in threads:
            thread.join()


async def run_async(
    items: Iterable[T],
    work: Callable[[int, T], Awaitable[R]],
    *,
    concurrency: int,
    total: int | None = None,
    on_progress: ProgressCallback | None = None,
    cost: Callable[[object], float] = lambda _: 0.0,
) -> AsyncIterator[Outcome[R]]:
    """The async twin of :func:`run_sync`: at most ``concurrency`` worker tasks."""
    source = iter(enumerate(items))
    window: _Window[T, R] = _Window(concurrency)
    progress = _Progress(total, on_progress, cost)
    cond = asyncio.Condition()

    async def worker() -> None:
        while True:
            async with cond:
                while not window.may_pull():
                    if window.stopped or window.exhausted or window.fatal is not None:
                        return
                    await cond.wait()
                try:
                    index, item = next(source)
                except StopIteration:
                    window.exhausted = True
                    cond.notify_all()
                    return
                except Exception as exc:
                    window.source_error, window.exhausted = exc, True
                    cond.notify_all()
                    return
                window.pulled += 1
            try:
                outcome: Outcome[R] = Outcome(index, value=await work(index, item))
            except Exception as exc:
                outcome = Outcome(index, error=exc)
            async with cond:
                window.finish(outcome)
                progress.record(outcome.value)
                cond.notify_all()

    tasks = [
        asyncio.ensure_future(worker())
        for _ in range(max(1, min(concurrency, total if total is not None else concurrency)))
    ]
    try:
        while True:
            async with cond:
                while not window.ready():
                    await cond.wait()
                outcome = window.take()
                cond.notify_all()
            if outcome is None:
                return
            yield outcome
    finally:
        window.stopped = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
