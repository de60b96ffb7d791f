"""``AsyncAurousClient``: the asynchronous client (the pipeline lives in :mod:`aurous_embed._core`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, Literal, overload

import httpx

from aurous_embed._batch import Controller, Outcome, ProgressCallback, run_async
from aurous_embed._cache import EmbeddingCache
from aurous_embed._config import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
)
from aurous_embed._core import (
    CallOptions,
    ClientCore,
    Item,
    check_file_id,
    credits_of,
    label_error,
    parse_models,
    unpacked,
    upload_form,
)
from aurous_embed._errors import AurousError, InputValidationError
from aurous_embed._http import (
    ONE_CONNECTION,
    AsyncRequester,
    HTTPBackend,
    Lanes,
    check_http_backend,
    default_ssl_context,
    env_proxies_configured,
    new_idempotency_key,
    uses_aiohttp,
)
from aurous_embed._parts import EmbedInput, normalize_input
from aurous_embed._progress import progress_callback
from aurous_embed._retry import Clock
from aurous_embed.types import (
    Balance,
    EmbeddingResult,
    Estimate,
    FileObject,
    ModelInfo,
    parse_balance,
    parse_estimate,
    parse_file,
)

if TYPE_CHECKING:
    from types import TracebackType

    import numpy


class _Connections:
    """One event loop's connections (they belong to the loop that opened them).

    Over aiohttp (see :mod:`aurous_embed._aiohttp`): one session, whose pool keeps a connection per
    request in flight. Over httpx: lanes, each a bare one-connection transport that gets requests
    directly (see ``direct_request``), or a small client when the environment names a proxy (the
    client routes through it; aiohttp is not used then).
    """

    def __init__(self, timeout: float, backend: HTTPBackend) -> None:
        self._timeout = timeout
        self._direct = not env_proxies_configured()
        self._session: httpx.AsyncBaseTransport | None = None
        if self._direct and uses_aiohttp(backend):
            from aurous_embed._aiohttp import AiohttpTransport

            self._session = AiohttpTransport(default_ssl_context())
        self._lanes: Lanes[httpx.AsyncClient | httpx.AsyncBaseTransport] = Lanes(self._new_lane)

    @property
    def closed(self) -> bool:
        return self._lanes.closed

    def _new_lane(self) -> httpx.AsyncClient | httpx.AsyncBaseTransport:
        if self._direct:
            return httpx.AsyncHTTPTransport(verify=default_ssl_context(), limits=ONE_CONNECTION)
        return httpx.AsyncClient(
            verify=default_ssl_context(), timeout=self._timeout, limits=ONE_CONNECTION
        )

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[httpx.AsyncClient | httpx.AsyncBaseTransport]:
        if self._session is not None:
            self._lanes.check_open()
            yield self._session
            return
        with self._lanes.lease() as http:
            yield http

    async def aclose(self) -> None:
        for http in self._lanes.close_all():
            await http.aclose()
        if self._session is not None:
            await self._session.aclose()


async def _close_at_loop_shutdown(connections: _Connections) -> AsyncIterator[None]:
    """Suspended for the loop's lifetime; ``loop.shutdown_asyncgens()`` runs the ``finally``."""
    try:
        yield
    finally:
        await connections.aclose()


class AsyncAurousClient(ClientCore):
    """Asynchronous client; the same parameters and method names as :class:`AurousClient`, plus:

    Args:
        http_backend: which library carries the requests of the client's own connections.
            ``"auto"`` (default): aiohttp when it is installed (extra ``speedups``; about 40% less
            client CPU per request, see :mod:`aurous_embed._aiohttp`), else httpx. ``"httpx"`` or
            ``"aiohttp"`` to choose. The same requests, errors and retries either way; httpx
            whenever the environment names a proxy. Not used with ``http_client=``.

    Example:
        >>> async with AsyncAurousClient() as client:  # doctest: +SKIP
        ...     results = await client.embed_many(["first chunk", "second chunk"])
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        api_version: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        http_client: httpx.AsyncClient | None = None,
        cache: str | os.PathLike[str] | EmbeddingCache | None = None,
        cache_urls: bool = False,
        max_credits: float | None = None,
        clock: Clock | None = None,
        http_backend: HTTPBackend = "auto",
    ) -> None:
        super().__init__(
            api_key,
            base_url=base_url,
            model=model,
            api_version=api_version,
            timeout=timeout,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
            cache=cache,
            cache_urls=cache_urls,
            max_credits=max_credits,
            clock=clock,
        )
        self.http_backend = check_http_backend(http_backend)
        if http_client is not None and http_backend == "aiohttp":
            raise InputValidationError(
                'http_backend="aiohttp" and http_client= are exclusive (requests go through '
                "the http_client you pass)",
                param="http_backend",
            )
        self._user_http = http_client
        self._connections: _Connections | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_guard: AsyncIterator[None] | None = None
        # max_concurrency bounds the requests in flight for the whole client (per event loop).
        self._slots: asyncio.Semaphore | None = None
        self._requester = AsyncRequester(self._settings, self._lease, timeout=self.timeout)

    async def _for_loop(self) -> _Connections | None:
        """This event loop's connections and slots (``None``: the caller's ``http_client``).

        Connections belong to the loop that opened them, so a client used from a second
        ``asyncio.run(...)`` gets fresh ones instead of "Event loop is closed". They are closed when
        their loop shuts down (an async generator that ``asyncio.run`` finalises): nothing leaks.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._slots = loop, asyncio.Semaphore(self.max_concurrency)
            self._connections = None
            if self._user_http is None:
                self._connections = _Connections(self.timeout, self.http_backend)
                # Held here so it lives as long as the loop (dropping the previous one lets its
                # loop finalise it, which closes the previous connections).
                self._loop_guard = _close_at_loop_shutdown(self._connections)
                await self._loop_guard.__anext__()
        return self._connections

    @contextlib.asynccontextmanager
    async def _lease(self) -> AsyncIterator[httpx.AsyncClient | httpx.AsyncBaseTransport]:
        connections = await self._for_loop()
        if connections is None:
            assert self._user_http is not None
            yield self._user_http
            return
        async with connections.lease() as http:
            yield http

    async def close(self) -> None:
        """Close the connections (not a caller's ``http_client``) and a cache opened from a path."""
        if self._connections is not None:
            await self._connections.aclose()
            self._connections, self._loop = None, None
        self._close_cache()

    async def __aenter__(self) -> AsyncAurousClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _run(
        self, item: Item, call: CallOptions, idempotency_key: str | None = None
    ) -> EmbeddingResult:
        if item.error is not None:
            raise item.error
        hit = self._lookup_one(item, call) if not item.keyed else None
        if hit is not None:
            return hit
        if item.error is not None:
            raise item.error
        assert item.value is not None
        estimate = self._hold(item, call)
        charged = 0.0
        try:
            body = self._embed_body(item.value, call)
            await self._for_loop()  # makes this loop's slots
            assert self._slots is not None
            async with self._slots:
                response = await self._requester.request(
                    "POST",
                    "/embeddings",
                    content=body,
                    idempotency_key=idempotency_key or new_idempotency_key(),
                    pacing=self._pacing(estimate, call),
                )
            result, charged = self._result(response, call)
        finally:
            self._release(estimate, call, charged)
        self._store(item, result)
        return result

    async def embed(
        self,
        input: EmbedInput,
        *,
        model: str | None = None,
        dimensions: int | None = None,
        user: str | None = None,
        idempotency_key: str | None = None,
        max_credits: float | None = None,
    ) -> EmbeddingResult:
        """Embed ONE input into ONE vector; see :meth:`AurousClient.embed`."""
        call = self._call(model, dimensions, user, max_credits, idempotency_key)
        return await self._run(Item(normalize_input(input)), call, idempotency_key)

    def _engine(
        self,
        items: Iterable[Item] | AsyncIterable[Item],
        call: CallOptions,
        *,
        concurrency: int | None,
        total: int | None,
        on_progress: ProgressCallback | None,
    ) -> AsyncGenerator[Outcome[EmbeddingResult], None]:
        limit = self._concurrency(concurrency)
        call = CallOptions(call.model, call.dimensions, call.user, call.budget, Controller(limit))

        async def work(_: int, item: Item) -> EmbeddingResult:
            return await self._run(item, call)

        return run_async(
            items,
            work,
            concurrency=limit,
            controller=call.controller,
            prefetch=self._prefetch(call),
            total=total,
            on_progress=on_progress,
            cost=credits_of,
        )

    @overload
    async def embed_many(
        self,
        inputs: Iterable[EmbedInput],
        *,
        model: str | None = ...,
        dimensions: int | None = ...,
        user: str | None = ...,
        concurrency: int | None = ...,
        on_progress: ProgressCallback | None = ...,
        show_progress: bool = ...,
        max_credits: float | None = ...,
        as_numpy: Literal[False] = ...,
    ) -> list[EmbeddingResult]: ...
    @overload
    async def embed_many(
        self,
        inputs: Iterable[EmbedInput],
        *,
        model: str | None = ...,
        dimensions: int | None = ...,
        user: str | None = ...,
        concurrency: int | None = ...,
        on_progress: ProgressCallback | None = ...,
        show_progress: bool = ...,
        max_credits: float | None = ...,
        as_numpy: Literal[True],
    ) -> numpy.ndarray[Any, Any]: ...
    @overload
    async def embed_many(
        self,
        inputs: Iterable[EmbedInput],
        *,
        model: str | None = ...,
        dimensions: int | None = ...,
        user: str | None = ...,
        concurrency: int | None = ...,
        on_progress: ProgressCallback | None = ...,
        show_progress: bool = ...,
        max_credits: float | None = ...,
        as_numpy: bool,
    ) -> list[EmbeddingResult] | numpy.ndarray[Any, Any]: ...
    async def embed_many(
        self,
        inputs: Iterable[EmbedInput],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        user: str | None = None,
        concurrency: int | None = None,
        on_progress: ProgressCallback | None = None,
        show_progress: bool = False,
        max_credits: float | None = None,
        as_numpy: bool = False,
    ) -> list[EmbeddingResult] | numpy.ndarray[Any, Any]:
        """Embed N inputs with N concurrent requests; see :meth:`AurousClient.embed_many`."""
        call = self._call(model, dimensions, user, max_credits)
        if as_numpy:
            self._numpy()
        items = self._normalize_all(inputs)
        callback, close = progress_callback(on_progress, show_progress, len(items), "embedding")
        try:
            stream = self._engine(
                items, call, concurrency=concurrency, total=len(items), on_progress=callback
            )
            async with contextlib.aclosing(stream):  # cancelled: stop the workers now, not at GC
                outcomes = [outcome async for outcome in stream]
            if as_numpy:
                return self._collect_array(outcomes, len(items), call.model)
            return self._collect(outcomes, len(items))
        finally:
            close()

    def embed_iter(
        self,
        inputs: Iterable[EmbedInput] | AsyncIterable[EmbedInput],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        user: str | None = None,
        concurrency: int | None = None,
        on_progress: ProgressCallback | None = None,
        show_progress: bool = False,
        max_credits: float | None = None,
        return_exceptions: bool = False,
    ) -> AsyncIterator[Any]:
        """Stream results in input order; see :meth:`AurousClient.embed_iter`.

        ``inputs`` may also be an async iterable. Use as ``async for result in client.embed_iter(...)``.
        """
        call = self._call(model, dimensions, user, max_credits)
        total = len(inputs) if isinstance(inputs, Sequence) else None
        callback, close = progress_callback(on_progress, show_progress, total, "embedding")
        items: Iterable[Item] | AsyncIterable[Item]
        if isinstance(inputs, AsyncIterable):
            source = inputs

            async def lazy() -> AsyncIterator[Item]:
                async for value in source:
                    yield self._lazy_item(value)

            items = lazy()
        else:
            items = (self._lazy_item(value) for value in inputs)
        return self._iterate(items, call, concurrency, total, callback, close, return_exceptions)

    async def _iterate(
        self,
        items: Iterable[Item] | AsyncIterable[Item],
        call: CallOptions,
        concurrency: int | None,
        total: int | None,
        on_progress: ProgressCallback | None,
        close: Any,
        return_exceptions: bool,
    ) -> AsyncIterator[Any]:
        stream = self._engine(
            items, call, concurrency=concurrency, total=total, on_progress=on_progress
        )
        try:
            async for outcome in stream:
                if outcome.error is None:
                    yield unpacked(outcome.value)  # type: ignore[arg-type]
                elif return_exceptions and isinstance(outcome.error, AurousError):
                    yield label_error(outcome.error, outcome.index)
                else:
                    raise label_error(outcome.error, outcome.index)
        finally:
            await stream.aclose()
            close()

    async def estimate(
        self, input: EmbedInput, *, model: str | None = None, dimensions: int | None = None
    ) -> Estimate:
        """Tokens and credits an input would cost; see :meth:`AurousClient.estimate`."""
        call = self._call(model, dimensions, None, None)
        body = self._embed_body(normalize_input(input), call, estimate=True)
        response = await self._requester.request("POST", "/embeddings/estimate", content=body)
        return parse_estimate(
            response.data, request_id=response.request_id, api_version=response.api_version
        )

    async def list_models(self) -> list[ModelInfo]:
        """The models available to the team (``GET /v1/models``)."""
        return parse_models((await self._requester.request("GET", "/models")).data)

    async def get_balance(self) -> Balance:
        """The team's credit balance (``GET /v1/balance``)."""
        return parse_balance((await self._requester.request("GET", "/balance")).data)

    async def upload_file(
        self,
        image: object,
        *,
        purpose: str = "reference",
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> FileObject:
        """Upload an image once; see :meth:`AurousClient.upload_file`."""
        files, data = upload_form(image, purpose, metadata)
        response = await self._requester.request(
            "POST",
            "/files",
            files=files,
            data=data,
            idempotency_key=idempotency_key or new_idempotency_key(),
        )
        return parse_file(response.data)

    async def get_file(self, file_id: str) -> FileObject:
        """The file with a freshly minted 1 h ``url``."""
        return parse_file(
            (await self._requester.request("GET", f"/files/{check_file_id(file_id)}")).data
        )

    async def delete_file(self, file_id: str) -> None:
        """Purge a file now (idempotent)."""
        await self._requester.request("DELETE", f"/files/{check_file_id(file_id)}")


__all__ = ["AsyncAurousClient"]
