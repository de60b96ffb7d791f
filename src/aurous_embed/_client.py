"""``AurousClient`` and ``AsyncAurousClient``: the API, exactly as documented, and nothing else.

Both share :class:`_ClientCore` (configuration, request bodies, result parsing, usage accounting),
so the only difference between them is ``await``.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import httpx

from aurous_embed._batch import FATAL_ERRORS, Outcome, ProgressCallback, run_async, run_sync
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
    BatchEmbeddingError,
    InputValidationError,
    MissingAPIKeyError,
)
from aurous_embed._http import (
    APIResponse,
    AsyncRequester,
    HTTPSettings,
    SyncRequester,
    encode_json,
    new_idempotency_key,
)
from aurous_embed._parts import EmbedInput, Normalized, input_to_wire, normalize_input
from aurous_embed._retry import Clock, SystemClock
from aurous_embed._secrets import Secret
from aurous_embed.types import (
    Balance,
    EmbeddingResult,
    Estimate,
    ModelInfo,
    UsageTotals,
    parse_balance,
    parse_embedding_response,
    parse_estimate,
    parse_model,
)

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


def _check_positive_int(value: object, *, param: str, minimum: int = 1) -> int:
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


class _ClientCore:
    """Configuration and the pure parts of every call, shared by both clients."""

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
        clock: Clock | None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(ENV_API_KEY, "")
        if not isinstance(key, str) or not key.strip():
            raise MissingAPIKeyError(
                f"no Aurous API key: pass api_key=... or set the {ENV_API_KEY} environment "
                "variable (for offline work, start the emulator: aurous-embed serve)"
            )
        self.model = self._check_model(model)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise InputValidationError(f"timeout must be > 0, got {timeout!r}", param="timeout")
        self.timeout = float(timeout)
        self.max_retries = _check_positive_int(max_retries, param="max_retries", minimum=0)
        self.max_concurrency = _check_positive_int(max_concurrency, param="max_concurrency")
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

    @staticmethod
    def _check_model(model: object) -> str:
        if not isinstance(model, str) or not model.strip():
            raise InputValidationError(
                f"model must be a non-empty str, got {model!r}", param="model"
            )
        return model

    @property
    def usage(self) -> UsageTotals:
        """Requests made, tokens and credits actually charged so far (safe under concurrency)."""
        return self._usage.snapshot()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, "
            f"api_version={self.api_version!r}, api_key='***')"
        )

    def _limits(self) -> httpx.Limits:
        return httpx.Limits(
            max_connections=self.max_concurrency * 2,
            max_keepalive_connections=self.max_concurrency * 2,
        )

    # --- request bodies ----------------------------------------------------------------------

    def _embed_body(
        self,
        value: Normalized,
        *,
        model: str | None,
        dimensions: int | None,
        user: str | None,
        estimate: bool = False,
    ) -> bytes:
        body: dict[str, Any] = {
            "model": self._check_model(model) if model is not None else self.model,
            "input": input_to_wire(value),
        }
        if dimensions is not None:
            body["dimensions"] = _check_positive_int(dimensions, param="dimensions")
        if user is not None and not estimate:  # estimate's body has no `user` [DOC]
            if not isinstance(user, str) or not user:
                raise InputValidationError(
                    f"user must be a non-empty str, got {user!r}", param="user"
                )
            body["user"] = user
        return encode_json(body)

    def _check_options(
        self, model: str | None, dimensions: int | None, user: str | None, key: str | None
    ) -> None:
        """Per-call options, checked before any input is touched or anything is sent."""
        if model is not None:
            self._check_model(model)
        if dimensions is not None:
            _check_positive_int(dimensions, param="dimensions")
        if user is not None and (not isinstance(user, str) or not user):
            raise InputValidationError(f"user must be a non-empty str, got {user!r}", param="user")
        if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 256):
            raise InputValidationError(
                "idempotency_key must be a str of 1 to 256 characters", param="idempotency_key"
            )

    def _result(self, response: APIResponse, model: str | None) -> EmbeddingResult:
        try:
            result = parse_embedding_response(
                response.data,
                request_id=response.request_id,
                replayed=response.replayed,
                api_version=response.api_version,
                idempotency_key=response.idempotency_key,
                fallback_model=model or self.model,
            )
        except ValueError as exc:
            raise APIError(
                f"unexpected embedding response: {exc}", request_id=response.request_id
            ) from exc
        # A replay answering a fresh call costs nothing; a replay standing in for an earlier attempt
        # whose answer was lost is that attempt's (single) charge.
        self._usage.add(result, charged=not response.replayed or response.charged_earlier)
        return result

    def _concurrency(self, concurrency: int | None) -> int:
        if concurrency is None:
            return self.max_concurrency
        return min(_check_positive_int(concurrency, param="concurrency"), self.max_concurrency)

    @staticmethod
    def _models(data: Any) -> list[ModelInfo]:
        rows = data.get("data") if isinstance(data, dict) else None
        return [m for m in map(parse_model, rows if isinstance(rows, list) else []) if m]

    @staticmethod
    def _normalize_all(inputs: Iterable[EmbedInput]) -> list[Normalized]:
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Iterable):
            raise InputValidationError(
                "embed_many takes a list of inputs; for one input use embed()", param="inputs"
            )
        normalized = []
        for index, value in enumerate(inputs):
            try:
                normalized.append(normalize_input(value))
            except InputValidationError as exc:
                raise exc.at_index(index) from None
        return normalized

    @staticmethod
    def _collect(outcomes: Iterable[Outcome[EmbeddingResult]], total: int) -> list[EmbeddingResult]:
        results: list[EmbeddingResult | None] = [None] * total
        errors: dict[int, BaseException] = {}
        for outcome in outcomes:
            if outcome.error is not None:
                errors[outcome.index] = outcome.error
            else:
                results[outcome.index] = outcome.value
        return _ClientCore._finish(results, errors)

    @staticmethod
    def _finish(
        results: list[EmbeddingResult | None], errors: dict[int, BaseException]
    ) -> list[EmbeddingResult]:
        if errors:
            fatal = next((e for e in errors.values() if isinstance(e, FATAL_ERRORS)), None)
            if fatal is not None:  # the batch stopped: what was never sent failed for that reason
                for index, value in enumerate(results):
                    if value is None and index not in errors:
                        errors[index] = fatal
            raise BatchEmbeddingError(results, errors)
        return [r for r in results if r is not None]


def _credits_of(value: object) -> float:
    return value.usage.credits_charged if isinstance(value, EmbeddingResult) else 0.0


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
        max_concurrency: upper bound of requests in flight in ``embed_many``.
        http_client: an ``httpx.Client`` to use (tests pass one with a ``MockTransport``); it stays
            the caller's to close.
        clock: time source for retry waits (tests pass a fake).

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
            clock=clock,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=self.timeout, limits=self._limits())
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

    def _send(
        self,
        value: Normalized,
        *,
        model: str | None,
        dimensions: int | None,
        user: str | None,
        idempotency_key: str | None,
    ) -> EmbeddingResult:
        body = self._embed_body(value, model=model, dimensions=dimensions, user=user)
        response = self._requester.request(
            "POST",
            "/embeddings",
            content=body,
            idempotency_key=idempotency_key or new_idempotency_key(),
        )
        return self._result(response, model)

    def embed(
        self,
        input: EmbedInput,
        *,
        model: str | None = None,
        dimensions: int | None = None,
        user: str | None = None,
        idempotency_key: str | None = None,
    ) -> EmbeddingResult:
        """Embed ONE input into ONE vector.

        Args:
            input: a ``str``; one part (``Text``, ``Image``, ``ImageURL``, ``VideoURL``); or a list of
                parts the API combines, in order, into one vector. A list of plain strings is
                refused: N strings are N inputs (``embed_many``).
            model: model slug for this call.
            dimensions: validated by the API against the model's supported set.
            user: end-user tag stored with the request.
            idempotency_key: reuse a key to make a repeated call a free replay; by default a uuid4
                per call, the same on every retry.

        Raises:
            InputValidationError: the input breaks a documented rule (nothing was sent).
            APIStatusError: the API refused (a subclass per status/code); see ``aurous_embed``.
            APIConnectionError: no answer after all retries.
        """
        self._check_options(model, dimensions, user, idempotency_key)
        value = normalize_input(input)
        return self._send(
            value, model=model, dimensions=dimensions, user=user, idempotency_key=idempotency_key
        )

    def embed_many(
        self,
        inputs: Iterable[EmbedInput],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        user: str | None = None,
        concurrency: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[EmbeddingResult]:
        """Embed N inputs with N requests in parallel; results come back in input order.

        Every input is checked before anything is sent. If some items then fail permanently,
        :class:`BatchEmbeddingError` carries every result that succeeded (``.results``, ``None`` at
        failed positions) and each failure (``.errors``, by index).

        Args:
            inputs: each item is one input, as for :meth:`embed`.
            concurrency: requests in flight (default and upper bound: ``max_concurrency``).
            on_progress: ``callback(done, total, credits_so_far)`` after each item.
        """
        self._check_options(model, dimensions, user, None)
        values = self._normalize_all(inputs)
        limit = self._concurrency(concurrency)

        def work(_: int, value: Normalized) -> EmbeddingResult:
            return self._send(
                value, model=model, dimensions=dimensions, user=user, idempotency_key=None
            )

        outcomes = run_sync(
            values,
            work,
            concurrency=limit,
            total=len(values),
            on_progress=on_progress,
            cost=_credits_of,
        )
        return self._collect(outcomes, len(values))

    def estimate(
        self, input: EmbedInput, *, model: str | None = None, dimensions: int | None = None
    ) -> Estimate:
        """Tokens and credits an input would cost (``POST /v1/embeddings/estimate``); free."""
        self._check_options(model, dimensions, None, None)
        body = self._embed_body(
            normalize_input(input), model=model, dimensions=dimensions, user=None, estimate=True
        )
        response = self._requester.request("POST", "/embeddings/estimate", content=body)
        return parse_estimate(
            response.data, request_id=response.request_id, api_version=response.api_version
        )

    def list_models(self) -> list[ModelInfo]:
        """The models available to the team (``GET /v1/models``)."""
        return self._models(self._requester.request("GET", "/models").data)

    def get_balance(self) -> Balance:
        """The team's credit balance (``GET /v1/balance``)."""
        return parse_balance(self._requester.request("GET", "/balance").data)


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
            clock=clock,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=self.timeout, limits=self._limits())
        self._requester = AsyncRequester(self._settings, self._http)

    async def close(self) -> None:
        """Close the connection pool (unless the caller passed ``http_client``)."""
        if self._owns_http:
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

    async def _send(
        self,
        value: Normalized,
        *,
        model: str | None,
        dimensions: int | None,
        user: str | None,
        idempotency_key: str | None,
    ) -> EmbeddingResult:
        body = self._embed_body(value, model=model, dimensions=dimensions, user=user)
        response = await self._requester.request(
            "POST",
            "/embeddings",
            content=body,
            idempotency_key=idempotency_key or new_idempotency_key(),
        )
        return self._result(response, model)

    async def embed(
        self,
        input: EmbedInput,
        *,
        model: str | None = None,
        dimensions: int | None = None,
        user: str | None = None,
        idempotency_key: str | None = None,
    ) -> EmbeddingResult:
        """Embed ONE input into ONE vector; see :meth:`AurousClient.embed`."""
        self._check_options(model, dimensions, user, idempotency_key)
        value = normalize_input(input)
        return await self._send(
            value, model=model, dimensions=dimensions, user=user, idempotency_key=idempotency_key
        )

    async def embed_many(
        self,
        inputs: Iterable[EmbedInput],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        user: str | None = None,
        concurrency: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[EmbeddingResult]:
        """Embed N inputs with N concurrent requests; see :meth:`AurousClient.embed_many`."""
        self._check_options(model, dimensions, user, None)
        values = self._normalize_all(inputs)
        limit = self._concurrency(concurrency)

        async def work(_: int, value: Normalized) -> EmbeddingResult:
            return await self._send(
                value, model=model, dimensions=dimensions, user=user, idempotency_key=None
            )

        outcomes = [
            outcome
            async for outcome in run_async(
                values,
                work,
                concurrency=limit,
                total=len(values),
                on_progress=on_progress,
                cost=_credits_of,
            )
        ]
        return self._collect(outcomes, len(values))

    async def estimate(
        self, input: EmbedInput, *, model: str | None = None, dimensions: int | None = None
    ) -> Estimate:
        """Tokens and credits an input would cost; see :meth:`AurousClient.estimate`."""
        self._check_options(model, dimensions, None, None)
        body = self._embed_body(
            normalize_input(input), model=model, dimensions=dimensions, user=None, estimate=True
        )
        response = await self._requester.request("POST", "/embeddings/estimate", content=body)
        return parse_estimate(
            response.data, request_id=response.request_id, api_version=response.api_version
        )

    async def list_models(self) -> list[ModelInfo]:
        """The models available to the team (``GET /v1/models``)."""
        return self._models((await self._requester.request("GET", "/models")).data)

    async def get_balance(self) -> Balance:
        """The team's credit balance (``GET /v1/balance``)."""
        return parse_balance((await self._requester.request("GET", "/balance")).data)


__all__ = ["AsyncAurousClient", "AurousClient"]
