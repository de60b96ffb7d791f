"""``AurousClient`` and ``AsyncAurousClient``: the API, exactly as documented, and nothing else.

Both share :class:`_ClientCore`: configuration, request bodies, result parsing, usage accounting,
the cache, budgets and the rate-limit pacer. What differs is only ``await``. One input goes through
the same pipeline wherever it comes from (``embed``, ``embed_many``, ``embed_iter``, an adapter):

    normalise + check  ->  cache lookup  ->  budget hold  ->  pacer  ->  POST (retries)  ->  usage,
    cache store, budget settle
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

import httpx

from aurous_embed._batch import (
    FATAL_ERRORS,
    Controller,
    Outcome,
    Pacer,
    ProgressCallback,
    run_async,
    run_sync,
)
from aurous_embed._budget import Budget, LocalEstimate, check_max_credits, local_estimate
from aurous_embed._cache import (
    CacheStats,
    EmbeddingCache,
    StatsCounter,
    cache_key,
    get_many,
    open_cache,
)
from aurous_embed._config import (
    API_VERSION_PATTERN,
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
    ENV_API_KEY,
    ENV_API_VERSION,
    ENV_BASE_URL,
)
from aurous_embed._errors import (
    APIError,
    AurousError,
    BatchEmbeddingError,
    BudgetExceededError,
    InputValidationError,
    MissingAPIKeyError,
    MissingDependencyError,
)
from aurous_embed._http import (
    APIResponse,
    AsyncRequester,
    HTTPSettings,
    Pacing,
    SyncRequester,
    abort_in_flight,
    encode_json,
    new_idempotency_key,
)
from aurous_embed._images import IMAGES_EXTRA_HINT, encode_image, sniff_mime
from aurous_embed._parts import EmbedInput, Normalized, input_to_wire, normalize_input
from aurous_embed._progress import progress_callback
from aurous_embed._retry import Clock, SystemClock
from aurous_embed._secrets import Secret
from aurous_embed.types import (
    Balance,
    EmbeddingResult,
    Estimate,
    FileObject,
    ModelInfo,
    Usage,
    UsageTotals,
    parse_balance,
    parse_embedding_response,
    parse_estimate,
    parse_file,
    parse_model,
)

if TYPE_CHECKING:
    from types import TracebackType

    import numpy

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _resolve_base_url(base_url: str | None) -> str:
    url = (base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InputValidationError(f"base_url is not a URL: {exc}", param="base_url") from None
    if parsed.scheme == "https" and parsed.host:
        return url
    if parsed.scheme == "http" and _is_loopback(parsed.host):
        return url
    if parsed.scheme == "http":
        raise InputValidationError(
            f"refusing to send the API key over plain http to {parsed.host}: use https "
            "(plain http is allowed only to a loopback host such as the local emulator)",
            param="base_url",
        )
    raise InputValidationError(
        f"base_url must be an https:// URL, got {url[:80]!r}", param="base_url"
    )


def _check_api_version(api_version: str | None) -> str | None:
    value = api_version if api_version is not None else os.environ.get(ENV_API_VERSION) or None
    if value is not None and not (isinstance(value, str) and API_VERSION_PATTERN.match(value)):
        raise InputValidationError(
            f"api_version must be a YYYY-MM-DD date such as 2026-05-15, got {value!r}",
            param="Aurous-Version",
        )
    return value


def _check_int(value: object, *, param: str, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputValidationError(
            f"{param} must be an integer >= {minimum}, got {value!r}", param=param
        )
    return value


class _UsageCounter:
    """Thread-safe running totals of what this client was actually charged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._tokens = 0
        self._credits = 0.0

    def add(self, result: EmbeddingResult, *, charged: bool) -> None:
        with self._lock:
            self._requests += 1
            if charged:
                self._tokens += result.usage.prompt_tokens
                self._credits += result.usage.credits_charged

    def snapshot(self) -> UsageTotals:
        with self._lock:
            return UsageTotals(self._requests, self._tokens, self._credits)


@dataclass(slots=True)
class _Item:
    """One input on its way through the pipeline."""

    value: Normalized | None
    estimate: LocalEstimate | None = None
    key: str | None = None
    keyed: bool = False
    error: AurousError | None = None


@dataclass(frozen=True, slots=True)
class _Call:
    """The options of one logical call (embed, embed_many, embed_iter)."""

    model: str
    dimensions: int | None
    user: str | None
    budget: Budget
    controller: Controller | None = None
    #: set when the batch this call belongs to is cancelled (sync only: asyncio cancels tasks)
    stop: threading.Event | None = None


class _ArrayResults(Sequence["EmbeddingResult | None"]):
    """``BatchEmbeddingError.results`` for ``as_numpy=True``: results built on access from rows."""

    def __init__(self, array: Any, failed: Iterable[int], model: str) -> None:
        self._array, self._failed, self._model = array, frozenset(failed), model

    def __len__(self) -> int:
        return int(self._array.shape[0])

    @overload
    def __getitem__(self, index: int) -> EmbeddingResult | None: ...
    @overload
    def __getitem__(self, index: slice) -> list[EmbeddingResult | None]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        position = index + len(self) if index < 0 else index
        if position in self._failed:
            return None
        return EmbeddingResult(self._array[position].tolist(), self._model, Usage())


class _ClientCore:
    """Configuration and the I/O-free parts of every call, shared by both clients."""

    def __init__(
        self,
        api_key: str | None,
        *,
        base_url: str | None,
        model: str,
        api_version: str | None,
        timeout: float,
        max_retries: int,
        max_concurrency: int,
        cache: str | os.PathLike[str] | EmbeddingCache | None,
        cache_urls: bool,
        max_credits: float | None,
        clock: Clock | None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(ENV_API_KEY, "")
        if not isinstance(key, str) or not key.strip():
            raise MissingAPIKeyError(
                f"no Aurous API key: pass api_key=... or set the {ENV_API_KEY} environment "
                "variable (for offline work, start the emulator: aurous-embed serve)"
            )
        self.model = self._check_model(model)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
            raise InputValidationError(f"timeout must be > 0, got {timeout!r}", param="timeout")
        self.timeout = float(timeout)
        self.max_retries = _check_int(max_retries, param="max_retries", minimum=0)
        self.max_concurrency = _check_int(max_concurrency, param="max_concurrency")
        self.base_url = _resolve_base_url(base_url)
        self.api_version = _check_api_version(api_version)
        self._settings = HTTPSettings(
            base_url=self.base_url,
            api_key=Secret(key.strip()),
            api_version=self.api_version,
            max_retries=self.max_retries,
            clock=clock or SystemClock(),
        )
        self._usage = _UsageCounter()
        self._pacer = Pacer()
        self._cache = open_cache(cache)
        self._cache_urls = bool(cache_urls)
        self._cache_stats = StatsCounter()
        self._budget = Budget(check_max_credits(max_credits), scope="client")

    # --- public state ----------------------------------------------------------------------------

    @property
    def usage(self) -> UsageTotals:
        """Requests made, tokens and credits actually charged so far (safe under concurrency)."""
        return self._usage.snapshot()

    @property
    def cache_stats(self) -> CacheStats:
        """Hits, misses, writes and bypassed inputs of the embedding cache."""
        return self._cache_stats.snapshot()

    @property
    def max_credits(self) -> float | None:
        """The client-wide credit budget (``None``: unlimited)."""
        return self._budget.limit

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, "
            f"api_version={self.api_version!r}, api_key='***')"
        )

    # --- checks ------------------------------------------------------------------------------

    @staticmethod
    def _check_model(model: object) -> str:
        if not isinstance(model, str) or not model.strip():
            raise InputValidationError(
                f"model must be a non-empty str, got {model!r}", param="model"
            )
        return model

    def _call(
        self,
        model: str | None,
        dimensions: int | None,
        user: str | None,
        max_credits: float | None,
        idempotency_key: str | None = None,
    ) -> _Call:
        """Per-call options, checked before any input is touched or anything is sent."""
        if model is not None:
            self._check_model(model)
        if dimensions is not None:
            _check_int(dimensions, param="dimensions")
        if user is not None and (not isinstance(user, str) or not user):
            raise InputValidationError(f"user must be a non-empty str, got {user!r}", param="user")
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= 256
        ):
            raise InputValidationError(
                "idempotency_key must be a str of 1 to 256 characters", param="idempotency_key"
            )
        budget = Budget(check_max_credits(max_credits), scope="call")
        return _Call(model or self.model, dimensions, user, budget)

    def _concurrency(self, concurrency: int | None) -> int:
        if concurrency is None:
            return self.max_concurrency
        return min(_check_int(concurrency, param="concurrency"), self.max_concurrency)

    @staticmethod
    def _normalize_all(inputs: Iterable[EmbedInput]) -> list[_Item]:
        """Check every input of a batch before anything is sent."""
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Iterable):
            raise InputValidationError(
                "embed_many takes a list of inputs; for one input use embed()", param="inputs"
            )
        items = []
        for index, value in enumerate(inputs):
            try:
                items.append(_Item(normalize_input(value)))
            except InputValidationError as exc:
                raise exc.at_index(index) from None
        return items

    @staticmethod
    def _lazy_item(value: EmbedInput) -> _Item:
        """For streams: a bad input becomes that item's error instead of stopping the stream."""
        try:
            return _Item(normalize_input(value))
        except InputValidationError as exc:
            return _Item(None, error=exc)

    # --- cache -------------------------------------------------------------------------------

    def _key(self, item: _Item, call: _Call) -> str | None:
        if not item.keyed and item.value is not None and self._cache is not None:
            item.keyed = True
            try:
                item.key = cache_key(
                    item.value,
                    model=call.model,
                    api_version=self.api_version,
                    dimensions=call.dimensions,
                    cache_urls=self._cache_urls,
                )
            except OSError as exc:  # an image file vanished or became unreadable since the check
                item.error = InputValidationError(f"cannot read image: {exc}", param="input")
            if item.key is None and item.error is None:
                self._cache_stats.add(bypassed=1)
        return item.key

    def _cached(self, vector: Sequence[float], call: _Call) -> EmbeddingResult:
        return EmbeddingResult(
            embedding=vector if isinstance(vector, list) else list(vector),
            model=call.model,
            usage=Usage(),
            api_version=self.api_version,
            cached=True,
        )

    def _lookup_one(self, item: _Item, call: _Call) -> EmbeddingResult | None:
        key = self._key(item, call)
        if key is None or self._cache is None:
            return None
        vector = self._cache.get(key)
        self._cache_stats.add(hits=vector is not None, misses=vector is None)
        return self._cached(vector, call) if vector is not None else None

    def _prefetch(self, call: _Call) -> Any:
        """The engine's ``prefetch``: answer a whole chunk of a batch from the cache at once."""
        if self._cache is None:
            return None
        cache = self._cache

        def prefetch(chunk: list[tuple[int, _Item]]) -> dict[int, EmbeddingResult]:
            keyed = {i: k for i, item in chunk if (k := self._key(item, call)) is not None}
            found = get_many(cache, list(set(keyed.values()))) if keyed else {}
            hits = {i: self._cached(found[k], call) for i, k in keyed.items() if k in found}
            self._cache_stats.add(hits=len(hits), misses=len(keyed) - len(hits))
            return hits

        return prefetch

    # --- one request -------------------------------------------------------------------------

    def _embed_body(self, value: Normalized, call: _Call, *, estimate: bool = False) -> bytes:
        body: dict[str, Any] = {"model": call.model, "input": input_to_wire(value)}
        if call.dimensions is not None:
            body["dimensions"] = call.dimensions
        if call.user is not None and not estimate:  # the estimate body has no `user` [DOC]
            body["user"] = call.user
        return encode_json(body)

    def _hold(self, item: _Item, call: _Call) -> LocalEstimate:
        """Reserve the item's estimated cost in both budgets (call and client)."""
        assert item.value is not None
        estimate = item.estimate or local_estimate(item.value)
        item.estimate = estimate
        call.budget.reserve(estimate.credits)
        try:
            self._budget.reserve(estimate.credits)
        except BudgetExceededError:
            call.budget.settle(estimate.credits, 0.0)
            raise
        return estimate

    def _release(self, estimate: LocalEstimate, call: _Call, charged: float) -> None:
        call.budget.settle(estimate.credits, charged)
        self._budget.settle(estimate.credits, charged)

    def _pacing(self, estimate: LocalEstimate, call: _Call) -> Pacing:
        controller = call.controller
        return Pacing(
            self._pacer,
            tokens=float(estimate.tokens),
            on_rate_limited=controller.rate_limited if controller is not None else None,
        )

    def _result(self, response: APIResponse, call: _Call) -> tuple[EmbeddingResult, float]:
        """The parsed result and what it actually cost this client."""
        try:
            result = parse_embedding_response(
                response.data,
                request_id=response.request_id,
                replayed=response.replayed,
                api_version=response.api_version,
                idempotency_key=response.idempotency_key,
                fallback_model=call.model,
            )
        except ValueError as exc:
            raise APIError(
                f"unexpected embedding response: {exc}", request_id=response.request_id
            ) from exc
        # A replay answering a fresh call costs nothing; a replay standing in for an earlier attempt
        # whose answer was lost is that attempt's (single) charge.
        charged = not response.replayed or response.charged_earlier
        self._usage.add(result, charged=charged)
        return result, result.usage.credits_charged if charged else 0.0

    def _store(self, item: _Item, result: EmbeddingResult) -> None:
        if self._cache is not None and item.key is not None:
            self._cache.put(item.key, result.embedding)
            self._cache_stats.add(writes=1)

    # --- collecting a batch ------------------------------------------------------------------

    @staticmethod
    def _fail(
        results: Sequence[EmbeddingResult | None],
        errors: dict[int, BaseException],
        total: int,
    ) -> None:
        """Raise the batch's error, every item accounted for; return if nothing failed."""
        if not errors:
            return
        fatal = next((e for e in errors.values() if isinstance(e, FATAL_ERRORS)), None)
        if fatal is not None:  # the batch stopped: what was never sent failed for that reason
            for index in range(total):
                if results[index] is None and index not in errors:
                    errors[index] = fatal
        budget = next((e for e in errors.values() if isinstance(e, BudgetExceededError)), None)
        if budget is not None:
            raise BudgetExceededError(
                str(budget),
                results=results,
                credits_spent=budget.credits_spent,
                max_credits=budget.max_credits,
            ) from budget
        raise BatchEmbeddingError(results, errors)

    def _collect(
        self, outcomes: Iterable[Outcome[EmbeddingResult]], total: int
    ) -> list[EmbeddingResult]:
        results: list[EmbeddingResult | None] = [None] * total
        errors: dict[int, BaseException] = {}
        for outcome in outcomes:
            if outcome.error is not None:
                errors[outcome.index] = outcome.error
            else:
                results[outcome.index] = outcome.value
        self._fail(results, errors, total)
        return results  # type: ignore[return-value]  # no None left when nothing failed

    @staticmethod
    def _numpy() -> Any:
        try:
            import numpy
        except ImportError:
            raise MissingDependencyError(
                f"as_numpy=True needs numpy: {IMAGES_EXTRA_HINT}"
            ) from None
        return numpy

    def _collect_array(
        self, outcomes: Iterable[Outcome[EmbeddingResult]], total: int, model: str
    ) -> numpy.ndarray[Any, Any]:
        np = self._numpy()
        array: Any = None
        errors: dict[int, BaseException] = {}
        for outcome in outcomes:
            if outcome.error is not None:
                errors[outcome.index] = outcome.error
                continue
            assert outcome.value is not None
            vector = outcome.value.embedding
            if array is None:
                array = np.full((total, len(vector)), np.nan, dtype=np.float32)
            if len(vector) != array.shape[1]:
                errors[outcome.index] = APIError(
                    f"vector of length {len(vector)} in a batch of length {array.shape[1]}",
                    request_id=outcome.value.request_id,
                )
                continue
            array[outcome.index] = vector
        if array is None:
            array = np.zeros((total, 0), dtype=np.float32)
        if errors:
            self._fail(_ArrayResults(array, errors, model), errors, total)
        result: numpy.ndarray[Any, Any] = array
        return result


def _credits_of(value: object) -> float:
    return value.usage.credits_charged if isinstance(value, EmbeddingResult) else 0.0


def _label(error: BaseException, index: int) -> BaseException:
    if isinstance(error, AurousError) and error.index is None:
        error.index = index
    return error


class AurousClient(_ClientCore):
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
        http_client: an ``httpx.Client`` to use (tests pass one with a ``MockTransport``); it stays
            the caller's to close.
        cache: a path (SQLite file, shared safely by threads and processes) or an object with
            ``get(key)``/``put(key, vector)``. Hits send nothing and cost nothing.
        cache_urls: also cache inputs with URL parts, keyed by URL (off: a URL's content can change).
        max_credits: a client-wide budget; a request that could exceed it is not sent.
        clock: time source for retry and pacing waits (tests pass a fake).

    Example:
        >>> with AurousClient() as client:  # doctest: +SKIP
        ...     vector = client.embed("a leather messenger bag").embedding
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
        # max_concurrency bounds the requests in flight for the whole client, across calls.
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=self.timeout,
            limits=httpx.Limits(
                max_connections=self.max_concurrency * 2,
                max_keepalive_connections=self.max_concurrency * 2,
            ),
        )
        self._requester = SyncRequester(self._settings, self._http)

    def close(self) -> None:
        """Close the connection pool (unless the caller passed ``http_client``)."""
        if self._owns_http:
            self._http.close()

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

    def _run(self, item: _Item, call: _Call, idempotency_key: str | None = None) -> EmbeddingResult:
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
            with self._slots:
                response = self._requester.request(
                    "POST",
                    "/embeddings",
                    content=body,
                    idempotency_key=idempotency_key or new_idempotency_key(),
                    pacing=self._pacing(estimate, call),
                    stop=call.stop,
                )
            result, charged = self._result(response, call)
        finally:
            self._release(estimate, call, charged)
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
        return self._run(_Item(normalize_input(input)), call, idempotency_key)

    def _engine(
        self,
        items: Iterable[_Item],
        call: _Call,
        *,
        concurrency: int | None,
        total: int | None,
        on_progress: ProgressCallback | None,
    ) -> Iterator[Outcome[EmbeddingResult]]:
        limit = self._concurrency(concurrency)
        stop = threading.Event()
        call = _Call(call.model, call.dimensions, call.user, call.budget, Controller(limit), stop)

        def abort() -> None:
            # The caller stopped early (Ctrl-C, an exception, closing the stream): no retries, and
            # requests in flight on our own pool are cut short so the worker threads end now.
            stop.set()
            if self._owns_http:
                abort_in_flight(self._http)

        return run_sync(
            items,
            lambda _, item: self._run(item, call),
            concurrency=limit,
            controller=call.controller,
            prefetch=self._prefetch(call),
            total=total,
            on_progress=on_progress,
            cost=_credits_of,
            on_abort=abort,
        )

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
            outcomes = self._engine(
                items, call, concurrency=concurrency, total=len(items), on_progress=callback
            )
            if as_numpy:
                return self._collect_array(outcomes, len(items), call.model)
            return self._collect(outcomes, len(items))
        finally:
            close()

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
        total = len(inputs) if isinstance(inputs, Sequence) else None
        callback, close = progress_callback(on_progress, show_progress, total, "embedding")
        return self._iterate(
            (self._lazy_item(value) for value in inputs),
            call,
            concurrency,
            total,
            callback,
            close,
            return_exceptions,
        )

    def _iterate(
        self,
        items: Iterator[_Item],
        call: _Call,
        concurrency: int | None,
        total: int | None,
        on_progress: ProgressCallback | None,
        close: Any,
        return_exceptions: bool,
    ) -> Iterator[Any]:
        try:
            for outcome in self._engine(
                items, call, concurrency=concurrency, total=total, on_progress=on_progress
            ):
                if outcome.error is None:
                    yield outcome.value
                elif return_exceptions and isinstance(outcome.error, AurousError):
                    yield _label(outcome.error, outcome.index)
                else:
                    raise _label(outcome.error, outcome.index)
        finally:
            close()

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
        return _models(self._requester.request("GET", "/models").data)

    def get_balance(self) -> Balance:
        """The team's credit balance (``GET /v1/balance``)."""
        return parse_balance(self._requester.request("GET", "/balance").data)

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
        files, data = _upload_form(image, purpose, metadata)
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
        return parse_file(self._requester.request("GET", f"/files/{_file_id(file_id)}").data)

    def delete_file(self, file_id: str) -> None:
        """Purge a file now (``DELETE /v1/files/{id}``; idempotent)."""
        self._requester.request("DELETE", f"/files/{_file_id(file_id)}")


def _models(data: Any) -> list[ModelInfo]:
    rows = data.get("data") if isinstance(data, dict) else None
    return [m for m in map(parse_model, rows if isinstance(rows, list) else []) if m]


def _file_id(file_id: object) -> str:
    if not isinstance(file_id, str) or not file_id or "/" in file_id:
        raise InputValidationError(f"not a file id: {file_id!r}", param="file_id")
    return file_id


_PURPOSES = ("reference", "first_frame", "last_frame")


def _upload_form(
    image: object, purpose: str, metadata: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, str]]:
    if purpose not in _PURPOSES:
        raise InputValidationError(
            f"purpose must be one of {', '.join(_PURPOSES)}", param="purpose"
        )
    data = encode_image(image, fit=True, param="file")
    mime = sniff_mime(data) or "application/octet-stream"
    name = "image." + mime.rsplit("/", 1)[-1]
    form = {"purpose": purpose}
    if metadata is not None:
        try:
            form["metadata"] = json.dumps(dict(metadata))
        except (TypeError, ValueError) as exc:
            raise InputValidationError(
                f"metadata is not JSON-serialisable: {exc}", param="metadata"
            ) from None
    return {"file": (name, data, mime)}, form


async def _close_at_loop_shutdown(http: httpx.AsyncClient) -> AsyncIterator[None]:
    """Suspended for the loop's lifetime; ``loop.shutdown_asyncgens()`` runs the ``finally``."""
    try:
        yield
    finally:
        await http.aclose()


class AsyncAurousClient(_ClientCore):
    """Asynchronous client; the same parameters and method names as :class:`AurousClient`.

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
        self._user_http = http_client
        self._http: httpx.AsyncClient | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self._loop_guard: AsyncIterator[None] | None = None
        # max_concurrency bounds the requests in flight for the whole client (per event loop).
        self._slots: asyncio.Semaphore | None = None
        self._slots_loop: asyncio.AbstractEventLoop | None = None
        self._requester = AsyncRequester(self._settings, self._client_for_loop)

    async def _client_for_loop(self) -> httpx.AsyncClient:
        """The pool for the running event loop.

        A pool's connections belong to the loop that opened them, so a client used from a second
        ``asyncio.run(...)`` gets a fresh pool instead of "Event loop is closed". Each pool is closed
        when its loop shuts down (an async generator that ``asyncio.run`` finalises), so nothing leaks.
        """
        loop = asyncio.get_running_loop()
        if self._slots_loop is not loop:
            self._slots, self._slots_loop = asyncio.Semaphore(self.max_concurrency), loop
        if self._user_http is not None:
            return self._user_http
        if self._http is None or self._http_loop is not loop or self._http.is_closed:
            self._http = httpx.AsyncClient(
                timeout=self.timeout,
                limits=httpx.Limits(
                    max_connections=self.max_concurrency * 2,
                    max_keepalive_connections=self.max_concurrency * 2,
                ),
            )
            self._http_loop = loop
            # Held here so it lives as long as the loop (dropping the previous one lets its loop
            # finalise it, which closes the previous pool).
            self._loop_guard = _close_at_loop_shutdown(self._http)
            await self._loop_guard.__anext__()
        return self._http

    async def close(self) -> None:
        """Close the connection pool (unless the caller passed ``http_client``)."""
        if self._http is not None:
            await self._http.aclose()

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
        self, item: _Item, call: _Call, idempotency_key: str | None = None
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
            await self._client_for_loop()  # makes this loop's slots
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
        return await self._run(_Item(normalize_input(input)), call, idempotency_key)

    def _engine(
        self,
        items: Iterable[_Item] | AsyncIterable[_Item],
        call: _Call,
        *,
        concurrency: int | None,
        total: int | None,
        on_progress: ProgressCallback | None,
    ) -> AsyncGenerator[Outcome[EmbeddingResult], None]:
        limit = self._concurrency(concurrency)
        call = _Call(call.model, call.dimensions, call.user, call.budget, Controller(limit))

        async def work(_: int, item: _Item) -> EmbeddingResult:
            return await self._run(item, call)

        return run_async(
            items,
            work,
            concurrency=limit,
            controller=call.controller,
            prefetch=self._prefetch(call),
            total=total,
            on_progress=on_progress,
            cost=_credits_of,
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
        items: Iterable[_Item] | AsyncIterable[_Item]
        if isinstance(inputs, AsyncIterable):
            source = inputs

            async def lazy() -> AsyncIterator[_Item]:
                async for value in source:
                    yield self._lazy_item(value)

            items = lazy()
        else:
            items = (self._lazy_item(value) for value in inputs)
        return self._iterate(items, call, concurrency, total, callback, close, return_exceptions)

    async def _iterate(
        self,
        items: Iterable[_Item] | AsyncIterable[_Item],
        call: _Call,
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
                    yield outcome.value
                elif return_exceptions and isinstance(outcome.error, AurousError):
                    yield _label(outcome.error, outcome.index)
                else:
                    raise _label(outcome.error, outcome.index)
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
        return _models((await self._requester.request("GET", "/models")).data)

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
        files, data = _upload_form(image, purpose, metadata)
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
            (await self._requester.request("GET", f"/files/{_file_id(file_id)}")).data
        )

    async def delete_file(self, file_id: str) -> None:
        """Purge a file now (idempotent)."""
        await self._requester.request("DELETE", f"/files/{_file_id(file_id)}")


__all__ = ["AsyncAurousClient", "AurousClient"]
