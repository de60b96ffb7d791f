"""What both clients share: configuration, request bodies, result parsing, usage accounting, the
cache, budgets and the rate-limit pacer, so ``AurousClient`` and ``AsyncAurousClient`` differ only
by ``await``. One input goes through the same pipeline wherever it comes from (``embed``,
``embed_many``, ``embed_iter``, an adapter):

    normalise + check  ->  cache lookup  ->  budget hold  ->  pacer  ->  POST (retries)  ->  usage,
    cache store, budget settle

Collecting a batch's outcomes lives in :mod:`._results`; the cache's sharing in :mod:`._cache`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aurous_embed._batch import Controller
from aurous_embed._budget import Budget, LocalEstimate, check_max_credits, local_estimate
from aurous_embed._cache import (
    CacheHandle,
    CacheStats,
    EmbeddingCache,
    PackedVector,
    StatsCounter,
    cache_key,
    get_many,
    open_cache,
)
from aurous_embed._config import (
    ENV_API_KEY,
    MAX_TIMEOUT,
    MAX_USER_CHARS,
)
from aurous_embed._errors import (
    APIError,
    AurousError,
    BudgetExceededError,
    InputValidationError,
)
from aurous_embed._http import APIResponse, Pacing
from aurous_embed._machine_pacer import process_pacer
from aurous_embed._pacing import Pacer
from aurous_embed._part_checks import check_utf8
from aurous_embed._parts import (
    EmbedInput,
    Normalized,
    input_to_wire,
    normalize_input,
    normalize_inputs,
)
from aurous_embed._results import (
    UsageCounter,
    collect_array,
    collect_results,
    credits_of,
    numpy_module,
    unpacked,
)
from aurous_embed._retry import Clock, SystemClock
from aurous_embed._scopes import CallScope, ChargeRisk
from aurous_embed._secrets import Secret
from aurous_embed._settings import (
    check_api_key,
    check_api_version,
    check_int,
    resolve_base_url,
    visible_ascii,
)
from aurous_embed._wire import (
    HTTPSettings,
    content_idempotency_key,
    encode_json,
    new_idempotency_key,
)
from aurous_embed.types import (
    EmbeddingResult,
    Usage,
    UsageTotals,
    parse_embedding_response,
)

# What the clients take from here (``credits_of`` and ``unpacked`` live in ``_results``).
__all__ = ["CallOptions", "ClientCore", "Item", "credits_of", "unpacked"]


@dataclass(slots=True)
class Item:
    """One input on its way through the pipeline."""

    value: Normalized | None
    estimate: LocalEstimate | None = None
    key: str | None = None
    keyed: bool = False
    error: AurousError | None = None


@dataclass(frozen=True, slots=True)
class CallOptions:
    """The options of one logical call (embed, embed_many, embed_iter)."""

    model: str
    dimensions: int | None
    user: str | None
    budget: Budget
    controller: Controller | None = None
    #: the batch this call belongs to: stopping it cuts its requests (and no other call's) short
    scope: CallScope | None = None


class ClientCore:
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
        replay_identical: bool = False,
    ) -> None:
        key = check_api_key(api_key if api_key is not None else os.environ.get(ENV_API_KEY, ""))
        self.model = self._check_model(model)
        if (
            not isinstance(timeout, (int, float))
            or isinstance(timeout, bool)
            or not 0 < timeout <= MAX_TIMEOUT
        ):
            raise InputValidationError(
                f"timeout must be > 0 and at most {MAX_TIMEOUT:,.0f} seconds, got {timeout!r}",
                param="timeout",
            )
        self.timeout = float(timeout)
        self.max_retries = check_int(max_retries, param="max_retries", minimum=0)
        self.max_concurrency = check_int(max_concurrency, param="max_concurrency")
        self.base_url = resolve_base_url(base_url)
        self.api_version = check_api_version(api_version)
        secret = Secret(key)
        self._settings = HTTPSettings(
            base_url=self.base_url,
            api_key=secret,
            api_version=self.api_version,
            max_retries=self.max_retries,
            clock=clock or SystemClock(),
        )
        self._usage = UsageCounter()
        # One model of the team's buckets per process, or per machine when the user names a
        # directory (see process_pacer); a client on an injected clock keeps its own, as its
        # times mean nothing to the others.
        real_time = clock is None or type(clock) is SystemClock
        self._pacer = process_pacer(self.base_url, secret) if real_time else Pacer()
        # A cache opened from a path is ours to close (when the last client sharing it closes).
        self._cache_handle = CacheHandle(open_cache(cache), isinstance(cache, (str, os.PathLike)))
        self._cache = self._cache_handle.cache
        self._cache_urls = bool(cache_urls)
        self._cache_stats = StatsCounter()
        self._budget = Budget(check_max_credits(max_credits), scope="client")
        self.replay_identical = bool(replay_identical)
        self._cache_released = False

    def _twin_options(self) -> dict[str, Any]:
        """Constructor options of a client of the other kind with this one's settings."""
        return {
            "api_key": self._settings.api_key.reveal(),
            "base_url": self.base_url,
            "model": self.model,
            "api_version": self.api_version,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "max_concurrency": self.max_concurrency,
            "replay_identical": self.replay_identical,
            "clock": self._settings.clock
            if type(self._settings.clock) is not SystemClock
            else None,
        }

    def _request_key(self, body: bytes, given: str | None) -> str:
        """The idempotency key of one request: the caller's, one derived from the request
        (``replay_identical``), or a fresh uuid4."""
        if given is not None:
            return given
        if self.replay_identical:
            return content_idempotency_key(self.base_url, self.api_version, body)
        return new_idempotency_key()

    def _share_with(self, twin: ClientCore) -> None:
        """Make ``twin`` use this client's cache, budget and running totals (its pacer is shared
        already: one per key and base URL)."""
        twin._cache_handle.release()
        twin._cache_handle = self._cache_handle.share()
        twin._cache = self._cache
        twin._cache_urls = self._cache_urls
        twin._cache_stats = self._cache_stats
        twin._budget = self._budget
        twin._usage = self._usage

    # --- public state ----------------------------------------------------------------------------

    def _flush_cache(self) -> None:
        """Commit the cache's pending writes at the end of a call (see ``SQLiteCache``), so that
        other cache objects and processes see them."""
        flush = getattr(self._cache, "flush", None)
        if callable(flush):
            flush()

    def _close_cache(self) -> None:
        if not self._cache_released:
            self._cache_released = True
            self._cache_handle.release()

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
        return check_utf8(model, param="model", what="model")

    def _call(
        self,
        model: str | None,
        dimensions: int | None,
        user: str | None,
        max_credits: float | None,
        idempotency_key: str | None = None,
    ) -> CallOptions:
        """Per-call options, checked before any input is touched or anything is sent."""
        if model is not None:
            self._check_model(model)
        if dimensions is not None:
            check_int(dimensions, param="dimensions")
        if user is not None and (not isinstance(user, str) or not 1 <= len(user) <= MAX_USER_CHARS):
            raise InputValidationError(
                f"user must be a str of 1 to {MAX_USER_CHARS} characters", param="user"
            )
        if user is not None:
            check_utf8(user, param="user", what="user")
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str)
            or not 1 <= len(idempotency_key) <= 256
            or not visible_ascii(idempotency_key)
        ):
            raise InputValidationError(
                "idempotency_key must be 1 to 256 printable ASCII characters without spaces "
                "(it is sent as a header)",
                param="idempotency_key",
            )
        budget = Budget(check_max_credits(max_credits), scope="call")
        return CallOptions(model or self.model, dimensions, user, budget)

    def _concurrency(self, concurrency: int | None) -> int:
        if concurrency is None:
            return self.max_concurrency
        return min(check_int(concurrency, param="concurrency"), self.max_concurrency)

    @staticmethod
    def _normalize_all(inputs: Iterable[EmbedInput]) -> list[Item]:
        """Check every input of a batch before anything is sent."""
        return [Item(value) for value in normalize_inputs(inputs)]

    @staticmethod
    def _lazy_item(value: EmbedInput) -> Item:
        """For streams: a bad input becomes that item's error instead of stopping the stream."""
        try:
            return Item(normalize_input(value))
        except InputValidationError as exc:
            return Item(None, error=exc)

    # --- cache -------------------------------------------------------------------------------

    def _key(self, item: Item, call: CallOptions) -> str | None:
        if not item.keyed and item.value is not None and self._cache is not None:
            item.keyed = True
            try:
                item.key = cache_key(
                    item.value,
                    endpoint=self.base_url,
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

    def _cached(self, vector: Sequence[float], call: CallOptions) -> EmbeddingResult:
        # A PackedVector stays packed through the engine; `unpacked` turns it into floats once,
        # when the result is handed out (and as_numpy never does).
        return EmbeddingResult(
            embedding=vector if isinstance(vector, (list, PackedVector)) else list(vector),  # type: ignore[arg-type]
            model=call.model,
            usage=Usage(),
            api_version=self.api_version,
            cached=True,
        )

    def _lookup_one(self, item: Item, call: CallOptions) -> EmbeddingResult | None:
        key = self._key(item, call)
        if key is None or self._cache is None:
            return None
        vector = self._cache.get(key)
        self._cache_stats.add(hits=vector is not None, misses=vector is None)
        return unpacked(self._cached(vector, call)) if vector is not None else None

    def _prefetch(self, call: CallOptions) -> Any:
        """The engine's ``prefetch``: answer a whole chunk of a batch from the cache at once."""
        if self._cache is None:
            return None
        cache = self._cache

        def prefetch(chunk: list[tuple[int, Item]]) -> dict[int, EmbeddingResult]:
            keyed = {i: k for i, item in chunk if (k := self._key(item, call)) is not None}
            found = get_many(cache, list(set(keyed.values()))) if keyed else {}
            hits = {i: self._cached(found[k], call) for i, k in keyed.items() if k in found}
            self._cache_stats.add(hits=len(hits), misses=len(keyed) - len(hits))
            return hits

        return prefetch

    # --- one request -------------------------------------------------------------------------

    def _embed_body(self, value: Normalized, call: CallOptions, *, estimate: bool = False) -> bytes:
        body: dict[str, Any] = {"model": call.model, "input": input_to_wire(value)}
        if call.dimensions is not None:
            body["dimensions"] = call.dimensions
        if call.user is not None and not estimate:  # the estimate body has no `user` [DOC]
            body["user"] = call.user
        return encode_json(body)

    def _hold(self, item: Item, call: CallOptions) -> LocalEstimate:
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

    def _release(
        self,
        estimate: LocalEstimate,
        call: CallOptions,
        result: EmbeddingResult | None,
        charged: float,
        risk: ChargeRisk,
        body_bytes: int,
    ) -> None:
        """Settle the item's hold: what it was charged, or, when it failed after a request may
        have reached the server without an answer, its whole (upper-bound) estimate; count what
        went on the wire (a body built but never sent is not counted)."""
        if risk.attempts:
            self._usage.add_sent(risk.attempts, body_bytes)
        if result is None and risk.uncertain:
            charged = estimate.credits
            self._usage.add_unconfirmed(charged)
        call.budget.settle(estimate.credits, charged)
        self._budget.settle(estimate.credits, charged)

    def _pacing(self, estimate: LocalEstimate, call: CallOptions) -> Pacing:
        controller = call.controller
        return Pacing(
            self._pacer,
            tokens=float(estimate.tokens),
            on_rate_limited=controller.rate_limited if controller is not None else None,
        )

    def _result(self, response: APIResponse, call: CallOptions) -> tuple[EmbeddingResult, float]:
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

    def _store(self, item: Item, result: EmbeddingResult) -> None:
        if self._cache is not None and item.key is not None:
            self._cache.put(item.key, result.embedding)
            self._cache_stats.add(writes=1)

    # --- collecting a batch (see _results) ---------------------------------------------------

    _numpy = staticmethod(numpy_module)
    _collect = staticmethod(collect_results)
    _collect_array = staticmethod(collect_array)
