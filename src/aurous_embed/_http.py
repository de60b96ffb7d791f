"""One logical API call: headers, idempotency key, send, retry loop, status to exception.

The sync and async requesters are thin twins around the pure policy in :mod:`aurous_embed._retry`.
Every attempt of one call carries the same ``Idempotency-Key``, so a retry after a lost answer gets
the server's replay instead of a second charge.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import platform
import random
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from aurous_embed._batch import Pacer, Ticket
from aurous_embed._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AurousError,
    RateLimitError,
    error_from_response,
)
from aurous_embed._retry import Clock, RetryState, decide
from aurous_embed._secrets import Secret
from aurous_embed._version import __version__

logger = logging.getLogger("aurous_embed")

USER_AGENT = (
    f"aurous-embed/{__version__} python/{platform.python_version()} httpx/{httpx.__version__}"
)


@dataclass(frozen=True, slots=True)
class Pacing:
    """Rate-limit awareness for one call: every attempt waits for the pacer and feeds it back.

    Attributes:
        pacer: the client's model of the server's request and token buckets.
        tokens: this request's (estimated) token cost, for the TPM bucket.
        on_rate_limited: told about every 429 / 503 ``rate_limit`` answer (the AIMD controller).
    """

    pacer: Pacer
    tokens: float = 0.0
    on_rate_limited: Callable[[], None] | None = None


# Transport failures after which the request certainly never reached the server.
_NEVER_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


@dataclass(frozen=True, slots=True)
class APIResponse:
    """A successful (2xx) answer, parsed.

    Attributes:
        charged_earlier: an earlier attempt of this call may have been charged (its answer was lost),
            so a replayed answer here stands for that charge.
    """

    status_code: int
    headers: Mapping[str, str]  # lower-cased names
    data: Any
    request_id: str | None
    api_version: str | None
    replayed: bool
    idempotency_key: str | None
    charged_earlier: bool


@dataclass(frozen=True, slots=True)
class HTTPSettings:
    """Everything a requester needs besides the httpx client."""

    base_url: str
    api_key: Secret
    api_version: str | None
    max_retries: int
    clock: Clock


_SHARED: dict[tuple[float, int], httpx.Client] = {}
_SHARED_LOCK = threading.Lock()


def shared_http_client(*, timeout: float, max_connections: int) -> httpx.Client:
    """A process-wide connection pool for clients that are created and dropped often.

    Chroma rebuilds an embedding function from its stored config on every call to a reopened
    collection; a pool per rebuild would mean a new TLS handshake per query. Pools are keyed by
    their settings, thread-safe, and closed at interpreter exit.
    """
    key = (timeout, max_connections)
    with _SHARED_LOCK:
        client = _SHARED.get(key)
        if client is None or client.is_closed:
            client = httpx.Client(
                timeout=timeout,
                limits=httpx.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                ),
            )
            if not _SHARED:
                atexit.register(close_shared_http_clients)
            _SHARED[key] = client
        return client


def close_shared_http_clients() -> None:
    """Close the process-wide pools (at exit; tests call it between tests). Reopened on demand."""
    with _SHARED_LOCK:
        for client in _SHARED.values():
            client.close()
        _SHARED.clear()


def abort_in_flight(client: httpx.Client) -> int:
    """Cut the requests in flight on ``client``'s pool short; returns how many sockets were shut.

    Closing a pool does not wake a thread blocked reading a socket; shutting the socket down does.
    httpx has no public way to reach the sockets, so this walks httpcore's pool (read-only, every
    step guarded): if those internals change, it does nothing and requests end on their own.
    """
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    count = 0
    for connection in list(getattr(pool, "connections", ())):
        stream = getattr(getattr(connection, "_connection", None), "_network_stream", None)
        get_info = getattr(stream, "get_extra_info", None)
        sock = get_info("socket") if callable(get_info) else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
                count += 1
    return count


def new_idempotency_key() -> str:
    """A uuid4: 36 characters, valid under both documented length limits (64 and 256)."""
    return str(uuid.uuid4())


def build_headers(
    settings: HTTPSettings, *, idempotency_key: str | None, json_body: bool
) -> dict[str, str]:
    headers = {
        "X-Api-Key": settings.api_key.reveal(),
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    if json_body:
        headers["Content-Type"] = "application/json"
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    if settings.api_version is not None:
        headers["Aurous-Version"] = settings.api_version
    return headers


def _stdlib_dumps(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_dumps: Callable[[Mapping[str, Any]], bytes] = _stdlib_dumps
_loads: Callable[[bytes], Any] = json.loads
try:  # orjson (extra "speedups") parses a 2,048-float answer about 9x faster than json
    import orjson

    _dumps, _loads = orjson.dumps, orjson.loads
except ImportError:  # pragma: no cover - exercised when the extra is not installed
    pass


def encode_json(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON of a request body."""
    return _dumps(body)


def decode_json(content: bytes) -> Any:
    """A response body (a ValueError subclass when it is not JSON)."""
    return _loads(content)


def _transport_error(exc: httpx.TransportError) -> APIConnectionError:
    sent = not isinstance(exc, _NEVER_SENT)
    if isinstance(exc, httpx.TimeoutException):
        error: APIConnectionError = APITimeoutError(
            f"Request timed out ({type(exc).__name__}).", may_have_reached_server=sent
        )
    else:
        error = APIConnectionError(
            f"Connection error ({type(exc).__name__}: {exc}).", may_have_reached_server=sent
        )
    error.__cause__ = exc
    return error


def _outcome(
    response: httpx.Response, state: RetryState, idempotency_key: str | None
) -> APIResponse | APIStatusError:
    # One pass over the headers; httpx.Headers lookups re-decode every header each time.
    headers = dict(response.headers.items())
    if not 200 <= response.status_code < 300:
        return error_from_response(response.status_code, headers, response.content)
    try:
        data = decode_json(response.content) if response.content else None
    except ValueError as exc:
        raise APIError(
            f"the API answered {response.status_code} with a body that is not JSON",
            request_id=headers.get("aurous-request-id"),
        ) from exc
    return APIResponse(
        status_code=response.status_code,
        headers=headers,
        data=data,
        request_id=headers.get("aurous-request-id"),
        api_version=headers.get("aurous-version"),
        replayed=headers.get("aurous-idempotent-replayed", "").lower() == "true",
        idempotency_key=idempotency_key,
        charged_earlier=state.maybe_in_flight,
    )


def _log_attempt(method: str, url: str, attempt: int, result: object) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        if isinstance(result, APIResponse):
            what = f"{result.status_code} {result.request_id}"
            what += " (replayed)" if result.replayed else ""
        else:
            what = str(result)
        logger.debug("%s %s attempt %d -> %s", method, url, attempt, what)


@dataclass
class _Call:
    """The per-call pieces shared by both loops."""

    settings: HTTPSettings
    method: str
    path: str
    idempotency_key: str | None
    json_body: bool
    pacing: Pacing | None
    stop: threading.Event | None = None
    ticket: Ticket | None = None

    @property
    def url(self) -> str:
        return f"{self.settings.base_url}{self.path}"

    def headers(self) -> dict[str, str]:
        return build_headers(
            self.settings, idempotency_key=self.idempotency_key, json_body=self.json_body
        )

    def judge(
        self, attempt: int, state: RetryState, result: APIResponse | AurousError
    ) -> tuple[APIResponse | None, float, RetryState]:
        """Return the final response, or the delay before the next attempt (raising when done)."""
        _log_attempt(self.method, self.url, attempt, result)
        if isinstance(result, APIResponse):
            return result, 0.0, state
        decision = decide(
            result,
            state,
            max_retries=self.settings.max_retries,
            now=self.settings.clock.time(),
            rand=random.random,
        )
        if decision.delay is None or self.stopped():
            raise result
        logger.info(
            "%s %s: %s; retrying in %.2fs (retry %d of %d)",
            self.method,
            self.path,
            decision.reason,
            decision.delay,
            decision.state.retries,
            self.settings.max_retries,
        )
        return None, decision.delay, decision.state

    def stopped(self) -> bool:
        """The batch this call belongs to was cancelled: no new attempt, no retry."""
        return self.stop is not None and self.stop.is_set()

    def check_stopped(self) -> None:
        if self.stopped():
            raise APIConnectionError(
                "not sent: the batch was cancelled", may_have_reached_server=False
            )

    def sleep(self, seconds: float) -> None:
        """A sync wait that a cancelled batch cuts short (slices of at most 0.25 s)."""
        clock = self.settings.clock
        if self.stop is None:
            clock.sleep(seconds)
            return
        end = clock.monotonic() + seconds
        while not self.stop.is_set() and (left := end - clock.monotonic()) > 0:
            clock.sleep(min(left, 0.25))

    def wait_for_pacer(self, waited: float) -> float:
        """Seconds to wait before this attempt may be sent (0: reserved, send now)."""
        if self.pacing is None:
            return 0.0
        clock = self.settings.clock
        wait, self.ticket = self.pacing.pacer.reserve(
            self.pacing.tokens, clock.monotonic(), waited=waited
        )
        return wait

    def observe(self, response: httpx.Response, result: APIResponse | AurousError) -> None:
        if self.pacing is None:
            return
        clock = self.settings.clock
        headers = result.headers if isinstance(result, (APIResponse, APIStatusError)) else {}
        self.pacing.pacer.observe(
            response.status_code, headers, self.ticket, clock.monotonic(), clock.time()
        )
        if isinstance(result, RateLimitError) and self.pacing.on_rate_limited is not None:
            self.pacing.on_rate_limited()


class SyncRequester:
    """Sends one logical call with retries, on a caller-owned :class:`httpx.Client`."""

    def __init__(self, settings: HTTPSettings, client: httpx.Client) -> None:
        self.settings = settings
        self.client = client

    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        pacing: Pacing | None = None,
        stop: threading.Event | None = None,
    ) -> APIResponse:
        call = _Call(
            self.settings, method, path, idempotency_key, content is not None, pacing, stop
        )
        state = RetryState()
        attempt = 0
        while True:
            attempt += 1
            waited = 0.0
            while (wait := call.wait_for_pacer(waited)) > 0:
                call.sleep(wait)
                waited += wait
            call.check_stopped()
            result: APIResponse | AurousError
            try:
                response = self.client.request(
                    method,
                    call.url,
                    content=content,
                    files=files,
                    data=data,
                    headers=call.headers(),
                    # Never follow: httpx strips only Authorization on a cross-origin redirect,
                    # and a caller's http_client may follow redirects by default.
                    follow_redirects=False,
                )
                result = _outcome(response, state, idempotency_key)
                call.observe(response, result)
            except httpx.TransportError as exc:
                result = _transport_error(exc)
            final, delay, state = call.judge(attempt, state, result)
            if final is not None:
                return final
            call.sleep(delay)


class AsyncRequester:
    """The async twin of :class:`SyncRequester`.

    ``lease`` lends an :class:`httpx.AsyncClient` for one attempt (connections belong to the event
    loop that opened them; the client decides how they are pooled).
    """

    def __init__(
        self,
        settings: HTTPSettings,
        lease: Callable[[], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]],
    ) -> None:
        self.settings = settings
        self.lease = lease

    async def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        pacing: Pacing | None = None,
    ) -> APIResponse:
        call = _Call(self.settings, method, path, idempotency_key, content is not None, pacing)
        state = RetryState()
        attempt = 0
        while True:
            attempt += 1
            waited = 0.0
            while (wait := call.wait_for_pacer(waited)) > 0:
                await self.settings.clock.asleep(wait)
                waited += wait
            result: APIResponse | AurousError
            try:
                async with self.lease() as http:
                    response = await http.request(
                        method,
                        call.url,
                        content=content,
                        files=files,
                        data=data,
                        headers=call.headers(),
                        follow_redirects=False,  # see SyncRequester.request
                    )
                result = _outcome(response, state, idempotency_key)
                call.observe(response, result)
            except httpx.TransportError as exc:
                result = _transport_error(exc)
            final, delay, state = call.judge(attempt, state, result)
            if final is not None:
                return final
            await self.settings.clock.asleep(delay)
