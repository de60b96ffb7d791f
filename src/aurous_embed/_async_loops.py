"""The async client's state per event loop: its connections (closed with the loop), the slots
that bound its requests in flight there, and the threads that convert local images off the loop.
Connections belong to the loop that opened them, so one client used from several loops keeps one
set per loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import threading
from collections.abc import (
    AsyncIterator,
)
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from aurous_embed._connections import (
    ONE_CONNECTION,
    HTTPBackend,
    Lanes,
    abort_in_flight,
    default_ssl_context,
    env_proxies_configured,
    uses_aiohttp,
)
from aurous_embed._errors import ClientClosedError
from aurous_embed._scopes import Scopes

if TYPE_CHECKING:
    pass


def _new_lane(direct: bool, timeout: float) -> httpx.AsyncClient | httpx.AsyncBaseTransport:
    if direct:
        return httpx.AsyncHTTPTransport(verify=default_ssl_context(), limits=ONE_CONNECTION)
    return httpx.AsyncClient(verify=default_ssl_context(), timeout=timeout, limits=ONE_CONNECTION)


class Connections:
    """One event loop's connections (they belong to the loop that opened them).

    Over aiohttp (see :mod:`aurous_embed._aiohttp`): one session, whose pool keeps a connection per
    request in flight. Over httpx: lanes, each a bare one-connection transport that gets requests
    directly (see ``direct_request``), or a small client when the environment names a proxy (the
    client routes through it; aiohttp is not used then).
    """

    def __init__(self, timeout: float, backend: HTTPBackend, base_url: str) -> None:
        self._timeout = timeout
        self._direct = not env_proxies_configured(base_url)
        self._session: httpx.AsyncBaseTransport | None = None
        if self._direct and uses_aiohttp(backend):
            from aurous_embed._aiohttp import AiohttpTransport

            self._session = AiohttpTransport(default_ssl_context())
        # A factory that does not hold `self`: no reference cycle, so the connections are freed
        # (and an aiohttp session detached by its transport first) when their owner drops them,
        # not by the cycle collector in an arbitrary order.
        self._lanes: Lanes[httpx.AsyncClient | httpx.AsyncBaseTransport] = Lanes(
            functools.partial(_new_lane, self._direct, timeout)
        )

    @property
    def closed(self) -> bool:
        return self._lanes.closed

    def _new_lane(self) -> httpx.AsyncClient | httpx.AsyncBaseTransport:
        return _new_lane(self._direct, self._timeout)

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[httpx.AsyncClient | httpx.AsyncBaseTransport]:
        if self._session is not None:
            self._lanes.check_open()
            yield self._session
            return
        http = self._lanes.take()
        try:
            yield http
        finally:
            if not self._lanes.give_back(http):  # closed meanwhile: see aclose
                await http.aclose()

    async def aclose(self) -> None:
        """Close the idle connections now and cut the requests in flight short (their sockets
        are shut; each borrower closes its lane as its request ends, see ``Lanes``)."""
        idle, in_use = self._lanes.close_all()
        abort_in_flight(*in_use)
        for http in idle:
            await http.aclose()
        if self._session is not None:
            await self._session.aclose()


async def _close_at_loop_shutdown(connections: Connections) -> AsyncIterator[None]:
    """Suspended for the loop's lifetime; ``loop.shutdown_asyncgens()`` runs the ``finally``."""
    try:
        yield
    finally:
        await connections.aclose()


_IMAGE_WORKERS: list[ThreadPoolExecutor] = []
_IMAGE_WORKERS_LOCK = threading.Lock()


def image_workers() -> ThreadPoolExecutor:
    """The threads that read and convert local images for async calls (the process's own, not
    the event loop's default executor, which belongs to the application)."""
    with _IMAGE_WORKERS_LOCK:
        if not _IMAGE_WORKERS:
            _IMAGE_WORKERS.append(
                ThreadPoolExecutor(
                    max_workers=min(8, os.cpu_count() or 2), thread_name_prefix="aurous-images"
                )
            )
        return _IMAGE_WORKERS[0]


@dataclass
class LoopState:
    """What the client keeps per event loop: connections (``None``: the caller's ``http_client``),
    the slots that bound requests in flight, and the guard that closes them with the loop."""

    connections: Connections | None
    slots: asyncio.Semaphore
    guard: AsyncIterator[None] | None = None


class Loops:
    """The client's per-event-loop state (several loops may use one client at once, e.g. one per
    thread): connections belong to the loop that opened them, and so do asyncio primitives.

    Kept apart from the client so that nothing here refers back to it: when the client is dropped,
    its connections are freed in order (see ``Connections``).
    """

    def __init__(
        self,
        *,
        timeout: float,
        backend: HTTPBackend,
        base_url: str,
        max_concurrency: int,
        user_http: httpx.AsyncClient | None,
        scopes: Scopes,
    ) -> None:
        self._timeout = timeout
        self._backend = backend
        self._base_url = base_url
        self._max_concurrency = max_concurrency
        self._user_http = user_http
        self._scopes = scopes
        self._states: dict[asyncio.AbstractEventLoop, LoopState] = {}
        self._lock = threading.Lock()

    async def here(self) -> LoopState:
        """This event loop's state, made on first use.

        A client used from a second ``asyncio.run(...)`` (or from several loops at once) gets
        fresh connections there instead of "Event loop is closed" or "attached to a different
        loop". They are closed when their loop shuts down (an async generator that
        ``asyncio.run`` finalises): nothing leaks.
        """
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is not None:
            return state
        with self._lock:
            if self._scopes.closed:
                raise ClientClosedError()
            for old in [old for old in self._states if old.is_closed()]:
                del self._states[old]  # closed with their loop, or left to their transports
            connections = None
            if self._user_http is None:
                connections = Connections(self._timeout, self._backend, self._base_url)
            state = self._states[loop] = LoopState(
                connections, asyncio.Semaphore(self._max_concurrency)
            )
        if connections is not None:
            state.guard = _close_at_loop_shutdown(connections)
            await state.guard.__anext__()
        return state

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[httpx.AsyncClient | httpx.AsyncBaseTransport]:
        connections = (await self.here()).connections
        if connections is None:
            assert self._user_http is not None
            yield self._user_http
            return
        async with connections.lease() as http:
            yield http

    async def close(self) -> None:
        """Close every loop's connections: this loop's here, another loop's there, waited for
        (while that loop runs, up to ``CLOSE_ELSEWHERE_WAIT`` seconds): once ``close()`` returns,
        no loop sends another request. aiohttp has no check just before a request goes out, so
        without the wait a request whose connection another loop was opening went out after
        ``close()`` returned (3 runs in 30)."""
        with self._lock:
            states = list(self._states.items())
            self._states.clear()
        here = asyncio.get_running_loop()
        elsewhere: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        for loop, state in states:
            if state.connections is None:
                continue
            if loop is here:
                await state.connections.aclose()
            elif not loop.is_closed():  # another thread's loop: close them there
                elsewhere.append((loop, _close_there(state.connections, loop)))
        deadline = here.time() + CLOSE_ELSEWHERE_WAIT
        while elsewhere and here.time() < deadline:
            await asyncio.wait([done for _, done in elsewhere], timeout=0.05)
            # a loop that stopped runs our close first when it runs again (or its shutdown does)
            elsewhere = [(loop, done) for loop, done in elsewhere if loop.is_running()]
            elsewhere = [(loop, done) for loop, done in elsewhere if not done.done()]


#: How long ``close()`` waits for another thread's event loop to close its connections (a loop
#: blocked by its thread does not get to them; its requests are stopped all the same).
CLOSE_ELSEWHERE_WAIT = 5.0


def _close_there(connections: Connections, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    """Close ``connections`` on ``loop`` (another thread's); the future ends when they are closed.

    The coroutine is made on ``loop`` itself: one made here and handed over would be left
    "never awaited" (a RuntimeWarning) by a loop that closes before running it; such a loop's
    connections are closed by its own shutdown (see ``_close_at_loop_shutdown``).
    """
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def finished(task: asyncio.Future[None] | None) -> None:
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: closing is best effort, as on this loop's shutdown
        if not done.done():
            done.set_result(None)

    def start() -> None:
        asyncio.ensure_future(connections.aclose()).add_done_callback(finished)

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError:  # it closed in the meantime
        finished(None)
    return asyncio.wrap_future(done)
