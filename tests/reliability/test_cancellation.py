"""Stopping a batch: Ctrl-C on a sync one, cancelling an async one, breaking out of a stream.

Each stops within a second, sends nothing more, and leaves no worker threads, tasks or
"event loop is closed" warnings behind. The emulator holds every request for 30 s, so nothing
finishes on its own during the test.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
import time
import warnings
from collections.abc import Iterator

import pytest

from aurous_embed import AsyncAurousClient, AurousClient
from aurous_embed._connections import HTTPBackend
from aurous_embed.testing import Emulator, Faults

SLOW = 30.0  # seconds each request would take
IN_FLIGHT = 8


@pytest.fixture
def slow_emulator() -> Iterator[Emulator]:
    # every request is held SLOW seconds (a slow fault, which the emulator ends at once on stop)
    faults = Faults(slow_rate=1.0, slow_seconds=SLOW, seed=1)
    with Emulator(faults=faults, rpm=1e9, rpm_burst=1e9, tpm=1e12) as emu:
        yield emu


def workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("aurous-embed-")]


def test_ctrl_c_stops_a_sync_batch_within_a_second(slow_emulator: Emulator) -> None:
    emu = slow_emulator
    main = threading.get_ident()
    interrupted_at: list[float] = []

    def press_ctrl_c() -> None:
        emu.wait_until(lambda s: s.in_flight >= IN_FLIGHT, timeout=20)
        interrupted_at.append(time.monotonic())
        signal.pthread_kill(main, signal.SIGINT)  # what Ctrl-C delivers

    presser = threading.Thread(target=press_ctrl_c)
    with AurousClient(emu.api_key, base_url=emu.base_url, max_concurrency=IN_FLIGHT) as client:
        presser.start()
        with pytest.raises(KeyboardInterrupt):
            client.embed_many([f"text {i}" for i in range(100)])
        stopped_after = time.monotonic() - interrupted_at[0]
        presser.join()
        peak = emu.stats.max_concurrency
    assert stopped_after < 1.0
    assert workers() == []  # every worker thread has ended
    assert peak == IN_FLIGHT  # nothing was sent after the interrupt (no retries either)


def test_breaking_out_of_a_stream_stops_it_within_a_second(slow_emulator: Emulator) -> None:
    emu = slow_emulator
    with AurousClient(emu.api_key, base_url=emu.base_url, max_concurrency=IN_FLIGHT) as client:
        # item 0 is invalid: its error comes back at once while items 1..8 are held in flight
        stream = client.embed_iter(["", *(f"text {i}" for i in range(100))], return_exceptions=True)
        first = next(stream)
        assert type(first).__name__ == "InputValidationError"
        emu.wait_until(lambda s: s.in_flight >= IN_FLIGHT, timeout=20)
        started = time.monotonic()
        stream.close()  # what `break` does
        took = time.monotonic() - started
    assert took < 1.0
    assert workers() == []
    assert emu.stats.max_concurrency == IN_FLIGHT  # nothing sent after the stop


async def test_cancelling_an_async_batch_stops_it_within_a_second(
    slow_emulator: Emulator, http_backend: HTTPBackend
) -> None:
    emu = slow_emulator
    client = AsyncAurousClient(
        emu.api_key, base_url=emu.base_url, max_concurrency=IN_FLIGHT, http_backend=http_backend
    )
    task = asyncio.ensure_future(client.embed_many([f"text {i}" for i in range(100)]))
    await asyncio.to_thread(emu.wait_until, lambda s: s.in_flight >= IN_FLIGHT, 20)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    took = time.monotonic() - started
    await client.close()
    assert took < 1.0
    assert asyncio.all_tasks() == {asyncio.current_task()}  # no worker task left behind
    assert emu.stats.max_concurrency == IN_FLIGHT  # nothing sent after the stop
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unclosed transport would warn here
        gc.collect()


def test_a_cancelled_async_batch_in_asyncio_run_leaves_no_warnings(
    slow_emulator: Emulator, http_backend: HTTPBackend
) -> None:
    emu = slow_emulator
    client = AsyncAurousClient(
        emu.api_key, base_url=emu.base_url, max_concurrency=IN_FLIGHT, http_backend=http_backend
    )

    async def main() -> None:
        task = asyncio.ensure_future(client.embed_many([f"text {i}" for i in range(50)]))
        await asyncio.to_thread(emu.wait_until, lambda s: s.in_flight >= IN_FLIGHT, 20)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(main())  # the loop closes; its pool is closed with it, not left to GC
        gc.collect()
    assert emu.stats.max_concurrency == IN_FLIGHT  # nothing sent after the stop
