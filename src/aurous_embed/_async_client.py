"""``AsyncAurousClient``: the asynchronous client (the pipeline lives in :mod:`aurous_embed._core`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Mapping,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
from aurous_embed._connections import (
    ONE_CONNECTION,
    HTTPBackend,
    Lanes,
    check_http_backend,
    default_ssl_context,
    env_proxies_configured,
    uses_aiohttp,
)
from aurous_embed._core import (
    CallOptions,
    ClientCore,
    Item,
    check_file_id,
    credits_of,
    parse_models,
    unpacked,
    upload_form,
)
from aurous_embed._errors import AurousError, ClientClosedError, InputValidationError
from aurous_embed._http import AsyncRequester
from aurous_embed._parts import EmbedInput, check_batch, has_local_image, normalize_input
from aurous_embed._progress import progress_callback
from aurous_embed._retry import Clock
from aurous_embed._scopes import CallScope, ChargeRisk, Scopes
from aurous_embed._wire import new_idempotency_key
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

    from aurous_embed._client import AurousClient


def _new_lane(direct: bool, timeout: float) -> httpx.AsyncClient | httpx.AsyncBaseTransport:
    if direct:
        return httpx.AsyncHTTPTransport(verify=default_ssl_context(), limits=ONE_CONNECTION)
    return httpx.AsyncClient(verify=default_ssl_context(), timeout=timeout, limits=ONE_CONNECTION)


class _Connections:
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


_IMAGE_WORKERS: list[ThreadPoolExecutor] = []
_IMAGE_WORKERS_LOCK = threading.Lock()


def _image_workers() -> ThreadPoolExecutor:
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
class _LoopState:
    """What the client keeps per event loop: connections (``None``: the caller's ``http_client``),
    the slots that bound requests in flight, and the guard that closes them with the loop."""

    connections: _Connections | None
    slots: asyncio.Semaphore
    guard: AsyncIterator[None] | None = None


class _Loops:
    """The client's per-event-loop state (several loops may use one client at once, e.g. one per
    thread): connections belong to the loop that opened them, and so do asyncio primitives.

    Kept apart from the client so that nothing here refers back to it: when the client is dropped,
    its connections are freed in order (see ``_Connections``).
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
        self._states: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._lock = threading.Lock()

    async def here(self) -> _LoopState:
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
                connections = _Connections(self._timeout, self._backend, self._base_url)
            state = self._states[loop] = _LoopState(
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
        """Close every loop's connections: this loop's now, another running loop's there."""
        with self._lock:
            states = list(self._states.items())
            self._states.clear()
        here = asyncio.get_running_loop()
        for loop, state in states:
            if state.connections is None:
                continue
            if loop is here:
                await state.connections.aclose()
            elif not loop.is_closed():  # another thread's loop: close them there
                with contextlib.suppress(RuntimeError):  # it closed in the meantime
                    asyncio.run_coroutine_threadsafe(state.connections.aclose(), loop)


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
        replay_identical: bool = False,
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
            replay_identical=replay_identical,
        )
        self.http_backend = check_http_backend(http_backend)
        if http_client is not None and http_backend == "aiohttp":
            raise InputValidationError(
                'http_backend="aiohttp" and http_client= are exclusive (requests go through '
                "the http_client you pass)",
                param="http_backend",
            )
        self._requester = AsyncRequester(self._settings, timeout=self.timeout)
        self._loops = _Loops(
            timeout=self.timeout,
            backend=self.http_backend,
            base_url=self.base_url,
            max_concurrency=self.max_concurrency,
            user_http=http_client,
            scopes=self._requester.scopes,
        )
        self._requester.lease = self._loops.lease

    async def _for_loop(self) -> _LoopState:
        """This event loop's connections and slots (see ``_Loops.here``)."""
        return await self._loops.here()

    async def close(self) -> None:
        """Close the client: calls still running stop (on every event loop; what they have in
        flight is cut short and nothing more is sent; their items fail with
        ``ClientClosedError``), later calls raise ``ClientClosedError``. Closes the connections
        (not a caller's ``http_client``) and a cache opened from a path. Idempotent."""
        self._requester.scopes.close()
        await self._loops.close()
        self._close_cache()

    def to_sync(self) -> AurousClient:
        """An :class:`AurousClient` with this client's settings sharing its cache, budget and
        ``usage`` totals; see :meth:`AurousClient.to_async`."""
        from aurous_embed._client import AurousClient

        twin = AurousClient(**self._twin_options())
        self._share_with(twin)
        return twin

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
        result: EmbeddingResult | None = None
        charged = 0.0
        risk = ChargeRisk()
        try:
            if has_local_image(item.value):
                # Reading, decoding and re-encoding an image can take seconds of CPU: off the
                # event loop, which keeps serving the other requests (and their deadlines).
                body = await asyncio.get_running_loop().run_in_executor(
                    _image_workers(), self._embed_body, item.value, call
                )
            else:
                body = self._embed_body(item.value, call)
            async with (await self._for_loop()).slots:
                response = await self._requester.request(
                    "POST",
                    "/embeddings",
                    content=body,
                    idempotency_key=self._request_key(body, idempotency_key),
                    shared_key=self.replay_identical and idempotency_key is None,
                    pacing=self._pacing(estimate, call),
                    scope=call.scope,
                    risk=risk,
                )
            result, charged = self._result(response, call)
        finally:
            self._release(estimate, call, result, charged, risk)
        assert result is not None
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
        try:
            return await self._run(Item(normalize_input(input)), call, idempotency_key)
        finally:
            self._flush_cache()

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
        call = CallOptions(
            call.model, call.dimensions, call.user, call.budget, Controller(limit), CallScope()
        )

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
            self._flush_cache()

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
        check_batch(inputs, "embed_iter")
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
                    yield outcome.error
                else:
                    raise outcome.error
        finally:
            await stream.aclose()
            close()
            self._flush_cache()

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
