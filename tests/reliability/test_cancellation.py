"""Stopping a batch: Ctrl-C on a sync one, cancelling an async one, breaking out of a stream.

Each stops without waiting for its requests in flight, sends nothing more, and leaves no worker
threads, tasks or "event loop is closed" warnings behind. The emulator holds every request for
30 s before it answers (and charges), so nothing finishes on its own during the test: a stop that
waited for its requests would find them charged (and take 30 s); one that did not finds none.
No test here reads a clock.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
import warnings
from collections.abc import Callable

import pytest

from aurous_embed import AsyncAurousClient, AurousClient
from aurous_embed._connections import HTTPBackend
from aurous_embed.testing import Emulator, Faults

SLOW = 30.0  # seconds each request is held before it is answered and charged
IN_FLIGHT = 8
WAITED = "the stop waited for the requests in flight to be answered"


@pytest.fixture
def slow_emulator(aurous_emulator_factory: Callable[..., Emulator]) -> Emulator:
    # every request is held SLOW seconds (a slow fault, which the emulator ends at once on stop)
    faults = Faults(slow_rate=1.0, slow_seconds=SLOW, seed=1)
    return aurous_emulator_factory(faults=faults, rpm=1e9, rpm_burst=1e9, tpm=1e12)


def workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("aurous-embed-")]


@pytest.mark.usefixtures("sigint_raises_keyboard_interrupt")
def test_ctrl_c_stops_a_sync_batch_without_waiting_for_its_requests(
    slow_emulator: Emulator,
) -> None:
    emu = slow_emulator
    main = threading.get_ident()

    def press_ctrl_c() -> None:
        emu.wait_until(lambda s: s.in_flight >= IN_FLIGHT, timeout=20)
        signal.pthread_kill(main, signal.SIGINT)  # what Ctrl-C delivers

    presser = threading.Thread(target=press_ctrl_c)
    with AurousClient(emu.api_key, base_url=emu.base_url, max_concurrency=IN_FLIGHT) as client:
        presser.start()
        with pytest.raises(KeyboardInterrupt):
            client.embed_many([f"text {i}" for i in range(100)])
        assert emu.stats.charges == 0, WAITED
        presser.join()
        peak = emu.stats.max_concurrency
    assert workers() == []  # every worker thread has ended
    assert peak == IN_FLIGHT  # nothing was sent after the interrupt (no retries either)


def test_breaking_out_of_a_stream_stops_it_without_waiting_for_its_requests(
    slow_emulator: Emulator,
) -> None:
    emu = slow_emulator
    with AurousClient(emu.api_key, base_url=emu.base_url, max_concurrency=IN_FLIGHT) as client:
        # item 0 is invalid: its error comes back at once while items 1..8 are held in flight
        stream = client.embed_iter(["", *(f"text {i}" for i in range(100))], return_exceptions=True)
        first = next(stream)
        assert type(first).__name__ == "InputValidationError"
        emu.wait_until(lambda s: s.in_flight >= IN_FLIGHT, timeout=20)
        stream.close()  # what `break` does
        assert emu.stats.charges == 0, WAITED
    assert workers() == []
    assert emu.stats.max_concurrency == IN_FLIGHT  # nothing sent after the stop


async def test_cancelling_an_async_batch_stops_it_without_waiting_for_its_requests(
    slow_emulator: Emulator, http_backend: HTTPBackend
) -> None:
    emu = slow_emulator
    client = AsyncAurousClient(
        emu.api_key, base_url=emu.base_url, max_concurrency=IN_FLIGHT, http_backend=http_backend
    )
    task = asyncio.ensure_future(client.embed_many([f"text {i}" for i in range(100)]))
    await asyncio.to_thread(emu.wait_until, lambda s: s.in_flight >= IN_FLIGHT, 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert emu.stats.charges == 0, WAITED
    await client.close()
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
