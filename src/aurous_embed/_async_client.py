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

from aurous_embed._async_loops import Loops, LoopState, image_workers
from aurous_embed._batch import Controller, Outcome, ProgressCallback, run_async
from aurous_embed._cache import EmbeddingCache
from aurous_embed._config import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
)
from aurous_embed._connections import (
    HTTPBackend,
    check_http_backend,
)
from aurous_embed._core import CallOptions, ClientCore, Item, credits_of, unpacked
from aurous_embed._errors import AurousError, InputValidationError
from aurous_embed._files import check_file_id, parse_models, upload_form
from aurous_embed._http import AsyncRequester
from aurous_embed._parts import EmbedInput, check_batch, has_local_image, normalize_input
from aurous_embed._progress import progress_callback
from aurous_embed._retry import Clock
from aurous_embed._scopes import CallScope, ChargeRisk
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
                    image_workers(), self._embed_body, item.value, call
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
