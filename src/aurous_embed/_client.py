# GENERATED FILE, DO NOT EDIT: scripts/unasync.py writes it from _async_client.py.
# Edit _async_client.py (or _flavours.py, or the script's tables), then run
# `python scripts/unasync.py`; CI runs `python scripts/unasync.py --check`.
"""``AurousClient``: the synchronous client (the pipeline lives in :mod:`aurous_embed._core`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

import httpx

from aurous_embed._batch import Controller, Outcomes, ProgressCallback, Window, run_sync
from aurous_embed._cache import EmbeddingCache
from aurous_embed._config import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
)
from aurous_embed._core import CallOptions, Item, credits_of, unpacked
from aurous_embed._errors import AurousError
from aurous_embed._files import check_file_id, parse_models, upload_form
from aurous_embed._flavours import Items, SyncFlavour
from aurous_embed._parts import EmbedInput, check_batch, normalize_input
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

    from aurous_embed._async_client import AsyncAurousClient


class AurousClient(SyncFlavour):
    """Synchronous client of the Aurous embeddings API.

    Args:
        api_key: the key (``al_live_...``); defaults to ``$AUROUS_API_KEY``. Sent as ``X-Api-Key``,
            never over plain http to a host that is not loopback.
        base_url: API base including ``/v1``; defaults to ``$AUROUS_BASE_URL`` or production.
        model: default model slug, passed through unchanged.
        api_version: ``Aurous-Version`` pin (``YYYY-MM-DD``); defaults to ``$AUROUS_API_VERSION``.
        timeout: seconds per attempt.
        max_retries: retries (not attempts) of one call on 429/5xx/timeouts.
        max_concurrency: upper bound of requests in flight in ``embed_many``/``embed_iter``.
        http_client: an ``httpx.Client`` to use (tests pass one with a ``MockTransport``); it
            stays the caller's to close.
        cache: a path (SQLite file, shared safely by threads and processes) or an object with
            ``get(key)``/``put(key, vector)``. Hits send nothing and cost nothing.
        cache_urls: also cache inputs with URL parts, keyed by URL (off: a URL's content can change).
        max_credits: a client-wide budget; a request that could exceed it is not sent.
        clock: time source for retry and pacing waits (tests pass a fake).
        replay_identical: derive each request's idempotency key from the request itself (endpoint,
            version pin and body) instead of a random one: sending the same request again within
            the API's 24 h idempotency window (a rerun of an interrupted job, another process) is
            a free replay of the first answer. ``aurous-embed index`` uses it.

    Example:
        >>> with AurousClient() as client:  # doctest: +SKIP
        ...     result = client.embed("a leather messenger bag")
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
        http_client: httpx.Client | None = None,
        cache: str | os.PathLike[str] | EmbeddingCache | None = None,
        cache_urls: bool = False,
        max_credits: float | None = None,
        clock: Clock | None = None,
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
        self._connect(http_client)

    def close(self) -> None:
        """Close the client: calls still running stop (what they have in flight is cut short and
        nothing more is sent; their items fail with ``ClientClosedError``), later calls raise
        ``ClientClosedError``. Closes the connections (not a caller's ``http_client``) and a cache
        opened from a path. Idempotent."""
        self._close_connections()
        self._close_cache()

    def to_async(self) -> AsyncAurousClient:
        """An :class:`AsyncAurousClient` with this client's settings that shares its cache, its
        ``max_credits`` budget and its ``usage`` totals (and, like every client with the same key
        and base URL, its model of the rate limits): one logical client for sync and async code.
        Close both; a cache opened from a path closes with the last of them."""
        from aurous_embed._async_client import AsyncAurousClient

        twin = AsyncAurousClient(**self._twin_options())
        self._share_with(twin)
        return twin

    def __enter__(self) -> AurousClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the pipeline for one input ------------------------------------------------------------

    def _run(
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
        size = 0
        try:
            body = self._encode(item.value, call)
            size = len(body)
            with self._request_slots():
                response = self._requester.request(
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
            self._release(estimate, call, result, charged, risk, size)
        assert result is not None
        self._store(item, result)
        return result

    # --- public methods --------------------------------------------------------------------------

    def embed(
        self,
        input: EmbedInput,
        *,
        model: str | None = None,
        dimensions: int | None = None,
        user: str | None = None,
        idempotency_key: str | None = None,
        max_credits: float | None = None,
    ) -> EmbeddingResult:
        """Embed ONE input into ONE vector.

        Args:
            input: a ``str``; one part (``Text``, ``Image``, ``ImageURL``, ``VideoURL``); or a list
                of parts the API combines, in order, into one vector. A list of plain strings is
                refused: N strings are N inputs (``embed_many``).
            model: model slug for this call.
            dimensions: validated by the API against the model's supported set.
            user: end-user tag stored with the request.
            idempotency_key: reuse a key to make a repeated call a free replay; by default a uuid4
                per call, the same on every retry.
            max_credits: refuse to send if this input could cost more.

        Raises:
            InputValidationError: the input breaks a documented rule (nothing was sent).
            APIStatusError: the API refused (a subclass per status/code); see ``aurous_embed``.
            APIConnectionError: no answer after all retries.
            BudgetExceededError: the input could take spending over ``max_credits``.
        """
        call = self._call(model, dimensions, user, max_credits, idempotency_key)
        try:
            return self._run(Item(normalize_input(input)), call, idempotency_key)
        finally:
            self._flush_cache()

    def _engine(
        self,
        items: Items,
        call: CallOptions,
        *,
        concurrency: int | None,
        total: int | None,
        on_progress: ProgressCallback | None,
        ordered: bool = True,
    ) -> Outcomes[EmbeddingResult]:
        limit = self._concurrency(concurrency)
        scope = CallScope()
        controller = Controller(limit)
        call = CallOptions(call.model, call.dimensions, call.user, call.budget, controller, scope)
        window: Window[Item, EmbeddingResult] = Window(
            limit,
            controller,
            self._prefetch(call),
            total,
            on_progress,
            credits_of,
            ordered,
            on_fatal=scope.halt,
        )

        def work(_: int, item: Item) -> EmbeddingResult:
            return self._run(item, call)

        # The caller stopped early (Ctrl-C, an exception, closing the stream): no retries, and this
        # call's requests in flight are cut short so the workers end now.
        return run_sync(window, items, work, on_abort=scope.stop)

    @overload
    def embed_many(
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
    def embed_many(
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
    def embed_many(
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
    def embed_many(
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
        """Embed N inputs with N requests in parallel; results come back in input order.

        Every input is checked before anything is sent. Concurrency adapts to rate limits (up to
        ``concurrency``/``max_concurrency``); cached inputs send nothing. If some items fail
        permanently, :class:`BatchEmbeddingError` carries every result that succeeded
        (``.results``, ``None`` at failed positions) and each failure (``.errors``, by index).

        Args:
            inputs: each item is one input, as for :meth:`embed`.
            concurrency: most requests in flight (default and upper bound: ``max_concurrency``).
            on_progress: ``callback(done, total, credits_so_far)`` after each item.
            show_progress: draw a progress bar (tqdm or rich).
            max_credits: a budget for this call; :class:`BudgetExceededError` (carrying the
                results so far) instead of overspending.
            as_numpy: return a float32 ``(N, D)`` array instead of result objects.
        """
        call = self._call(model, dimensions, user, max_credits)
        if as_numpy:
            self._numpy()
        items = self._normalize_all(inputs)
        callback, close = progress_callback(on_progress, show_progress, len(items), "embedding")
        try:
            stream = self._engine(
                items, call, concurrency=concurrency, total=len(items), on_progress=callback
            )
            # Stopped or failed: the workers stop now, not when the stream is collected.
            with contextlib.closing(stream):
                outcomes = self._outcomes(stream)
                if as_numpy:
                    return self._collect_array(outcomes, len(items), call.model)
                return self._collect(outcomes, len(items))
        finally:
            close()
            self._flush_cache()

    @overload
    def embed_iter(
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
        return_exceptions: Literal[False] = ...,
    ) -> Iterator[EmbeddingResult]: ...
    @overload
    def embed_iter(
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
        return_exceptions: Literal[True],
    ) -> Iterator[EmbeddingResult | AurousError]: ...
    def embed_iter(
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
        return_exceptions: bool = False,
    ) -> Iterator[EmbeddingResult] | Iterator[EmbeddingResult | AurousError]:
        """Stream results in input order from any iterable (a generator of millions is fine).

        Inputs are pulled lazily and at most O(concurrency) inputs and results are held at once.
        A failed item raises its error (``.index`` names it) when its turn comes, after every
        earlier result was yielded; with ``return_exceptions=True`` the error is yielded in its
        place and the stream goes on. Stopping early (``break``) cancels what was not sent.
        """
        call = self._call(model, dimensions, user, max_credits)
        check_batch(inputs, "embed_iter")
        total = len(inputs) if isinstance(inputs, Sequence) else None
        callback, close = progress_callback(on_progress, show_progress, total, "embedding")
        return self._iterate(
            self._items(inputs), call, concurrency, total, callback, close, return_exceptions
        )

    def embed_as_completed(
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
    ) -> Iterator[tuple[int, EmbeddingResult | AurousError]]:
        """Stream ``(index, result or error)`` pairs as the requests finish, not in input order.

        As :meth:`embed_iter` with ``return_exceptions=True`` (lazy, at most O(concurrency)
        inputs and results held, stopping early cancels what was not sent), except that a slow
        input holds back nothing: each result is handed out as soon as it is there, with its
        position in ``inputs``. For writing results somewhere as they arrive (a vector store, a
        file) when a late one must not delay the others.
        """
        call = self._call(model, dimensions, user, max_credits)
        check_batch(inputs, "embed_as_completed")
        total = len(inputs) if isinstance(inputs, Sequence) else None
        callback, close = progress_callback(on_progress, show_progress, total, "embedding")
        return self._iterate(
            self._items(inputs), call, concurrency, total, callback, close, True, ordered=False
        )

    def _iterate(
        self,
        items: Items,
        call: CallOptions,
        concurrency: int | None,
        total: int | None,
        on_progress: ProgressCallback | None,
        close: Any,
        return_exceptions: bool,
        *,
        ordered: bool = True,
    ) -> Iterator[Any]:
        try:
            stream = self._engine(
                items,
                call,
                concurrency=concurrency,
                total=total,
                on_progress=on_progress,
                ordered=ordered,
            )
            with contextlib.closing(stream):
                for outcome in stream:
                    value: Any
                    if outcome.error is None:
                        value = unpacked(outcome.value)  # type: ignore[arg-type]
                    elif return_exceptions and isinstance(outcome.error, AurousError):
                        value = outcome.error
                    else:
                        raise outcome.error
                    yield value if ordered else (outcome.index, value)
        finally:
            close()
            self._flush_cache()

    def estimate(
        self, input: EmbedInput, *, model: str | None = None, dimensions: int | None = None
    ) -> Estimate:
        """Tokens and credits an input would cost (``POST /v1/embeddings/estimate``); free."""
        call = self._call(model, dimensions, None, None)
        body = self._embed_body(normalize_input(input), call, estimate=True)
        response = self._requester.request("POST", "/embeddings/estimate", content=body)
        return parse_estimate(
            response.data, request_id=response.request_id, api_version=response.api_version
        )

    def list_models(self) -> list[ModelInfo]:
        """The models available to the team (``GET /v1/models``)."""
        response = self._requester.request("GET", "/models")
        return parse_models(response.data)

    def get_balance(self) -> Balance:
        """The team's credit balance (``GET /v1/balance``)."""
        response = self._requester.request("GET", "/balance")
        return parse_balance(response.data)

    def upload_file(
        self,
        image: object,
        *,
        purpose: str = "reference",
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> FileObject:
        """Upload an image once (``POST /v1/files``); embed it with ``ImageURL(file.url)``.

        The signed ``url`` is valid about an hour (re-mint it with :meth:`get_file`); the file is
        purged after 24 h. Inline images (``Image``) are usually simpler and the default.
        """
        files, data = upload_form(image, purpose, metadata)
        response = self._requester.request(
            "POST",
            "/files",
            files=files,
            data=data,
            idempotency_key=idempotency_key or new_idempotency_key(),
        )
        return parse_file(response.data)

    def get_file(self, file_id: str) -> FileObject:
        """The file with a freshly minted 1 h ``url`` (``GET /v1/files/{id}``)."""
        response = self._requester.request("GET", f"/files/{check_file_id(file_id)}")
        return parse_file(response.data)

    def delete_file(self, file_id: str) -> None:
        """Purge a file now (``DELETE /v1/files/{id}``; idempotent)."""
        self._requester.request("DELETE", f"/files/{check_file_id(file_id)}")


__all__ = ["AurousClient"]
