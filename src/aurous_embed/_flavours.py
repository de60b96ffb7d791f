"""What truly differs between the two clients, written by hand once per flavour.

:class:`~aurous_embed.AsyncAurousClient` (``_async_client.py``) is written on top of
:class:`AsyncFlavour`; :class:`~aurous_embed.AurousClient` (``_client.py``) is generated from it
by ``scripts/unasync.py`` and stands on :class:`SyncFlavour`. Each flavour says how requests are
carried (one semaphore and one-connection lanes for all threads; connections and slots per event
loop), how a request body is built (a local image is encoded off the event loop), how the
connections close, how ``embed_iter`` reads its inputs (the async client also takes an async
iterable) and how a batch's outcomes reach the collector.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

import httpx

from aurous_embed._async_loops import Loops, LoopState, image_workers
from aurous_embed._batch import Outcome
from aurous_embed._connections import (
    ONE_CONNECTION,
    HTTPBackend,
    Lanes,
    check_http_backend,
    default_ssl_context,
    env_proxies_configured,
)
from aurous_embed._core import CallOptions, ClientCore, Item
from aurous_embed._errors import InputValidationError
from aurous_embed._http import AsyncRequester, SyncRequester
from aurous_embed._parts import EmbedInput, Normalized, has_local_image
from aurous_embed.types import EmbeddingResult

#: The items of one batch call, as each flavour's engine takes them.
Items = Iterable[Item]
AsyncItems = Iterable[Item] | AsyncIterable[Item]


class SyncFlavour(ClientCore):
    """The thread-based half of :class:`~aurous_embed.AurousClient`."""

    _requester: SyncRequester
    _slots: threading.BoundedSemaphore

    def _connect(self, http_client: httpx.Client | None) -> None:
        # max_concurrency bounds the requests in flight for the whole client, across calls.
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        lanes: Lanes[httpx.BaseTransport | httpx.Client] | None = None
        if http_client is None:
            # Each request in flight borrows a one-connection lane (see Lanes): a bare transport
            # that gets requests directly (see direct_request), or, when the environment names a
            # proxy, a one-connection httpx.Client that routes through it. Stopping one call
            # cuts its own lanes' sockets and no other call's.
            context = default_ssl_context()
            timeout = self.timeout
            if env_proxies_configured(self.base_url):
                lanes = Lanes(
                    lambda: httpx.Client(verify=context, timeout=timeout, limits=ONE_CONNECTION)
                )
            else:
                lanes = Lanes(lambda: httpx.HTTPTransport(verify=context, limits=ONE_CONNECTION))
        self._requester = SyncRequester(
            self._settings, http_client, lanes=lanes, timeout=self.timeout
        )

    def _close_connections(self) -> None:
        self._requester.close()

    def _request_slots(self) -> threading.BoundedSemaphore:
        return self._slots

    def _encode(self, value: Normalized, call: CallOptions) -> bytes:
        return self._embed_body(value, call)

    def _items(self, inputs: Iterable[EmbedInput]) -> Items:
        return (self._lazy_item(value) for value in inputs)

    @staticmethod
    def _outcomes(
        stream: Iterator[Outcome[EmbeddingResult]],
    ) -> Iterator[Outcome[EmbeddingResult]]:
        # As they come: the collector fills its list or array without holding every outcome.
        return stream


class AsyncFlavour(ClientCore):
    """The event-loop half of :class:`~aurous_embed.AsyncAurousClient`."""

    _requester: AsyncRequester
    _loops: Loops
    http_backend: HTTPBackend

    def _connect(self, http_client: httpx.AsyncClient | None, http_backend: HTTPBackend) -> None:
        self.http_backend = check_http_backend(http_backend)
        if http_client is not None and http_backend == "aiohttp":
            raise InputValidationError(
                'http_backend="aiohttp" and http_client= are exclusive (requests go through '
                "the http_client you pass)",
                param="http_backend",
            )
        self._requester = AsyncRequester(self._settings, timeout=self.timeout)
        self._loops = Loops(
            timeout=self.timeout,
            backend=self.http_backend,
            base_url=self.base_url,
            max_concurrency=self.max_concurrency,
            user_http=http_client,
            scopes=self._requester.scopes,
        )
        self._requester.lease = self._loops.lease

    async def _for_loop(self) -> LoopState:
        """This event loop's connections and slots (see ``Loops.here``)."""
        return await self._loops.here()

    async def _close_connections(self) -> None:
        self._requester.scopes.close()
        await self._loops.close()

    async def _request_slots(self) -> asyncio.Semaphore:
        return (await self._for_loop()).slots

    async def _encode(self, value: Normalized, call: CallOptions) -> bytes:
        if has_local_image(value):
            # Reading, decoding and re-encoding an image can take seconds of CPU: off the event
            # loop, which keeps serving the other requests (and their deadlines).
            return await asyncio.get_running_loop().run_in_executor(
                image_workers(), self._embed_body, value, call
            )
        return self._embed_body(value, call)

    def _items(self, inputs: Iterable[EmbedInput] | AsyncIterable[EmbedInput]) -> AsyncItems:
        if isinstance(inputs, AsyncIterable):
            source = inputs

            async def lazy() -> AsyncIterator[Item]:
                async for value in source:
                    yield self._lazy_item(value)

            return lazy()
        return (self._lazy_item(value) for value in inputs)

    @staticmethod
    async def _outcomes(
        stream: AsyncIterator[Outcome[EmbeddingResult]],
    ) -> list[Outcome[EmbeddingResult]]:
        return [outcome async for outcome in stream]


__all__ = ["AsyncFlavour", "AsyncItems", "Items", "SyncFlavour"]
