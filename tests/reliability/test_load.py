"""The emulator under load: 200 concurrent connections, no errors, bounded memory.

One asyncio process opens 200 connections (loopback only); 200 tasks each send
``REQUESTS_PER_CONNECTION`` requests back to back on their own connection. The emulator holds
each request 0.5 s (its ``latency``), so all 200 are in flight at once, not just open. The test
counts requests, never seconds: how many requests per second the emulator sustains is a speed
goal, measured by ``python -m benchmarks.emulator`` (256 in flight at 100 ms).

Each task has its own ``AsyncAurousClient`` over a one-connection ``httpx.AsyncClient``: one
httpcore pool of 200 connections spends its time in ``_assign_requests_to_connections`` (quadratic
in connections x queued requests, encode/httpcore#1035) and evicts busy keep-alive connections,
which would measure httpcore, not the emulator.

Memory: every request carries a fresh ``Idempotency-Key``, and the emulator's own clock (manual,
injected) moves 24 h forward every ``WINDOW_REQUESTS`` requests, so records must expire for the
store to stay bounded; the store's size is sampled after every request.
"""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest

from aurous_embed import AsyncAurousClient
from aurous_embed._config import IDEMPOTENCY_WINDOW_SECONDS
from aurous_embed.testing import Clock, Emulator
from tests.reliability.helpers import UNLIMITED

pytestmark = [pytest.mark.slow, pytest.mark.allow_hosts(["127.0.0.1"])]

CONNECTIONS = 200
LATENCY = 0.5  # seconds the emulator holds each request
WINDOW_REQUESTS = 1000  # requests per 24 h of emulator time
# Three windows' worth of requests in all: records must expire twice for the store to stay small.
REQUESTS_PER_CONNECTION = 3 * WINDOW_REQUESTS // CONNECTIONS + 1


async def test_200_connections_at_once_without_errors_or_unbounded_records() -> None:
    clock = Clock()
    emulator = Emulator(clock=clock, latency=LATENCY, **UNLIMITED)
    store = emulator.app.idempotency  # type: ignore[attr-defined]  # the in-process record store
    peers: set[tuple[str, int]] = set()

    async def remember_peer(response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        if stream is not None:
            peers.add(stream.get_extra_info("client_addr"))

    step = IDEMPOTENCY_WINDOW_SECONDS / WINDOW_REQUESTS
    done = 0
    peak = 0

    # Plain-http loopback never uses TLS, but every httpx client builds an SSL context unless given
    # one (tens of ms each): one shared context keeps 200 clients cheap to make.
    tls = ssl.create_default_context()
    async with emulator:
        pools = [
            httpx.AsyncClient(
                verify=tls,
                timeout=30.0,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                event_hooks={"response": [remember_peer]},
            )
            for _ in range(CONNECTIONS)
        ]
        clients = [
            AsyncAurousClient(
                emulator.api_key,
                base_url=emulator.base_url,
                http_client=pool,
                max_retries=0,  # any error is a failure of the test, not something to retry
            )
            for pool in pools
        ]

        async def connection(number: int) -> int:
            nonlocal done, peak
            sent = 0
            while sent < REQUESTS_PER_CONNECTION:
                result = await clients[number].embed(f"connection {number}, request {sent}")
                assert not result.replayed and result.idempotency_key
                sent += 1
                done += 1
                clock.advance(step)
                peak = max(peak, len(store))
            return sent

        try:
            per_connection = await asyncio.gather(*(connection(n) for n in range(CONNECTIONS)))
            # A client has the whole answer a moment before the emulator's thread finishes the
            # request's bookkeeping: wait for that (woken on each change, no polling).
            stats = await asyncio.to_thread(emulator.wait_until, lambda s: s.in_flight == 0)

            # No errors: every request answered 200 and was charged once.
            total = sum(per_connection)
            assert total == done == stats.requests == stats.charges
            assert stats.by_status == {200: total}
            assert per_connection == [REQUESTS_PER_CONNECTION] * CONNECTIONS
            # 200 connections, all busy at once.
            assert len(peers) == CONNECTIONS
            assert stats.max_concurrency == CONNECTIONS
            # Bounded memory: idempotency records expire. At most one window of requests (plus
            # what is in flight) is ever held, while far more keys than that were used.
            assert total >= 3 * WINDOW_REQUESTS, total
            assert peak <= WINDOW_REQUESTS + 2 * CONNECTIONS, peak
            assert len(set(stats.charges_by_idempotency_key)) == total
            clock.advance(IDEMPOTENCY_WINDOW_SECONDS + 1)
            await clients[0].embed("after a quiet day")
            assert len(store) == 1
        finally:  # a failure must not leave 200 open sockets to warn in a later test
            for pool in pools:
                await pool.aclose()
