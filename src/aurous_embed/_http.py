"""One logical API call: headers, idempotency key, send, retry loop, status to exception.

The sync and async requesters are thin twins around the pure policy in :mod:`aurous_embed._retry`.
Every attempt of one call carries the same ``Idempotency-Key``, so a retry after a lost answer gets
the server's replay instead of a second charge.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import logging
import os
import platform
import random
import socket
import ssl
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import httpx

from aurous_embed._batch import Pacer, Ticket
from aurous_embed._config import MAX_RESPONSE_BYTES, MAX_RETRY_AFTER
from aurous_embed._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AurousError,
    ClientClosedError,
    InputValidationError,
    MissingDependencyError,
    RateLimitError,
    error_from_response,
)
from aurous_embed._retry import Clock, RetryState, asked_wait, decide
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
        pacer: the model of the server's request and token buckets (see ``shared_pacer``).
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


_SHARED_LOCK = threading.Lock()
_SSL_LOCK = threading.Lock()  # not _SHARED_LOCK: shared_http_client holds that one while asking
_SSL_CONTEXTS: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def default_ssl_context() -> ssl.SSLContext:
    """httpx's default verifying TLS context, built once per process and shared by every pool.

    Building one loads the whole CA bundle (tens of milliseconds of CPU); the async client opens a
    one-connection client per request in flight, so 32 of them cost more than a second of CPU
    before the first answer. An ``SSLContext`` is safe to share between connections and threads.
    Keyed by ``SSL_CERT_FILE``/``SSL_CERT_DIR`` so a changed CA setting still takes effect.
    """
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _SSL_LOCK:
        context = _SSL_CONTEXTS.get(key)
        if context is None:
            context = _SSL_CONTEXTS[key] = httpx.create_ssl_context()
        return context


_SHARED: dict[tuple[float, int], httpx.Client] = {}


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
                verify=default_ssl_context(),
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


def abort_in_flight(*owners: object) -> int:
    """Cut the requests in flight on these clients' or transports' pools short; returns how many
    sockets were shut.

    Closing a pool does not wake a thread blocked reading a socket; shutting the socket down does.
    httpx has no public way to reach the sockets, so this walks httpcore's pool (read-only, every
    step guarded): if those internals change, it does nothing and requests end on their own.
    """
    count = 0
    transports: list[object] = []
    for owner in owners:  # a client's own transport and its proxy mounts, or a bare transport
        transports.append(getattr(owner, "_transport", owner))
        transports.extend(getattr(owner, "_mounts", {}).values())
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        for connection in list(getattr(pool, "connections", ())):
            stream = getattr(getattr(connection, "_connection", None), "_network_stream", None)
            get_info = getattr(stream, "get_extra_info", None)
            sock = get_info("socket") if callable(get_info) else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    count += 1
    return count


LaneT = TypeVar("LaneT")
#: A lane holds one connection.
ONE_CONNECTION = httpx.Limits(max_connections=1, max_keepalive_connections=1)


class Lanes(Generic[LaneT]):
    """One-connection transports (or clients) lent to one request at a time; thread-safe.

    httpcore's pool rescans every connection for every waiting request (with a socket readability
    check per idle connection), so one pool of 32 connections spends more CPU per request than
    parsing the answer. A lane per request in flight keeps each scan to one connection. Measured at
    32 in flight: async about 3x less client CPU and 2x the throughput; sync about a fifth less CPU
    and 3-4% less wall time. LIFO: the warmest connection goes out first.
    """

    def __init__(self, new: Callable[[], LaneT]) -> None:
        self._new = new
        self._lock = threading.Lock()
        self._idle: list[LaneT] = []
        self._all: list[LaneT] = []
        self.closed = False

    def check_open(self) -> None:
        if self.closed:
            raise ClientClosedError()

    @contextlib.contextmanager
    def lease(self) -> Iterator[LaneT]:
        with self._lock:
            self.check_open()
            lane = self._idle.pop() if self._idle else None
        if lane is None:
            lane = self._new()
            with self._lock:
                self._all.append(lane)
        try:
            yield lane
        finally:
            with self._lock:
                if any(lane is kept for kept in self._all):  # not retired meanwhile
                    self._idle.append(lane)

    def retire(self, lane: LaneT) -> None:
        """Never lend ``lane`` again (its socket may have been shut); the caller closes it."""
        with self._lock:
            self._all = [kept for kept in self._all if kept is not lane]

    def every(self) -> list[LaneT]:
        """Every lane made so far (in use or idle)."""
        with self._lock:
            return list(self._all)

    def close_all(self) -> list[LaneT]:
        """Refuse further leases and return every lane, for the caller to close."""
        with self._lock:
            self.closed = True
            self._idle.clear()
            return list(self._all)


class CallScope:
    """The requests of one call (a batch, or one request): what stopping that call reaches.

    Stopping a call (Ctrl-C, ``break``, an exception in the caller) ends its retries and cuts short
    the requests it has in flight, on the lanes they borrowed, and no other call's: one client may
    serve several calls at once. Closing the client stops every call it runs (``closed``).
    """

    def __init__(self, *, interruptible: bool = True) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._lanes: list[object] = []
        #: stopped because the client was closed (the call's errors say so)
        self.closed = False
        #: waits are cut into slices so that a stop is noticed (batches; a single call's
        #: retry wait runs whole and its next attempt sees the stop)
        self.interruptible = interruptible

    def stopped(self) -> bool:
        return self._event.is_set()

    @contextlib.contextmanager
    def using(self, lane: object) -> Iterator[None]:
        """Register ``lane`` as carrying one of this call's requests while the block runs."""
        with self._lock:
            self._lanes.append(lane)
        try:
            if self.stopped():  # stopped between the last check and now: do not send
                raise self.stop_error()
            yield
        finally:
            with self._lock:
                self._lanes.remove(lane)

    def stop(self, *, closed: bool = False) -> None:
        """No more attempts; cut this call's requests in flight short.

        The lock is held while their sockets are shut, so none of these lanes can go back to the
        pool (and to another call) half way; a lane whose socket was shut is then retired.
        """
        with self._lock:
            self.closed = self.closed or closed
            self._event.set()
            abort_in_flight(*self._lanes)

    def stop_error(self) -> AurousError:
        """The error of an attempt that was not sent because the call stopped."""
        if self.closed:
            return ClientClosedError("not sent: the client was closed")
        return APIConnectionError(
            "not sent: the batch was cancelled", may_have_reached_server=False
        )

    def sleep(self, clock: Clock, seconds: float) -> None:
        """A wait that a stop cuts short (within a quarter of a second), if ``interruptible``."""
        if not self.interruptible:
            clock.sleep(seconds)
            return
        end = clock.monotonic() + seconds
        while not self.stopped() and (left := end - clock.monotonic()) > 0:
            clock.sleep(min(left, 0.25))

    async def asleep(self, clock: Clock, seconds: float) -> None:
        """The async twin of :meth:`sleep`."""
        if not self.interruptible:
            await clock.asleep(seconds)
            return
        end = clock.monotonic() + seconds
        while not self.stopped() and (left := end - clock.monotonic()) > 0:
            await clock.asleep(min(left, 0.25))


class Scopes:
    """The calls a client is running, so that closing it stops them (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[CallScope, int] = {}
        self.closed = False

    @contextlib.contextmanager
    def enter(self, scope: CallScope) -> Iterator[CallScope]:
        with self._lock:
            if self.closed:
                raise ClientClosedError()
            self._live[scope] = self._live.get(scope, 0) + 1
        try:
            yield scope
        finally:
            with self._lock:
                if self._live[scope] == 1:
                    del self._live[scope]
                else:
                    self._live[scope] -= 1

    def close(self) -> None:
        """Refuse new calls and stop the running ones."""
        with self._lock:
            self.closed = True
            live = list(self._live)
        for scope in live:
            scope.stop(closed=True)


@dataclass
class ChargeRisk:
    """Whether a call may have been charged although no answer says so.

    ``lost``: an attempt may have reached the server and its answer never came (a reset, a
    timeout, a cut answer); ``sending``: an attempt is on the wire now (the call was interrupted
    there). A budget counts such a call as spent (its upper-bound estimate).
    """

    lost: bool = False
    sending: bool = False

    @property
    def uncertain(self) -> bool:
        return self.lost or self.sending


#: What an ``httpx.Client`` adds to every request that our own headers do not already set.
_CLIENT_DEFAULT_HEADERS = {"Accept-Encoding": "gzip, deflate", "Connection": "keep-alive"}


#: Which library carries the async client's requests (``AsyncAurousClient(http_backend=...)``).
HTTPBackend = Literal["auto", "httpx", "aiohttp"]
HTTP_BACKENDS: tuple[HTTPBackend, ...] = ("auto", "httpx", "aiohttp")
AIOHTTP_EXTRA_HINT = 'pip install "aurous-embed[speedups]"'


@functools.lru_cache(maxsize=1)
def _aiohttp_available() -> bool:
    try:
        import aiohttp
    except ImportError:
        return False
    # 3.10 added the exception types aurous_embed._aiohttp maps; an older one (installed by
    # something else) is left alone rather than half-used.
    return hasattr(aiohttp, "ConnectionTimeoutError")


def check_http_backend(backend: object) -> HTTPBackend:
    """``backend`` if it is one of :data:`HTTP_BACKENDS` (and installed, for ``"aiohttp"``)."""
    if backend not in HTTP_BACKENDS:
        raise InputValidationError(
            f"http_backend must be one of {', '.join(map(repr, HTTP_BACKENDS))}, got {backend!r}",
            param="http_backend",
        )
    if backend == "aiohttp" and not _aiohttp_available():
        raise MissingDependencyError(
            f'http_backend="aiohttp" needs aiohttp>=3.10: {AIOHTTP_EXTRA_HINT}'
        )
    return backend


def uses_aiohttp(backend: HTTPBackend) -> bool:
    """``"auto"`` means aiohttp when it is installed (about 40% less client CPU per request, see
    :mod:`aurous_embed._aiohttp`), else httpx; either way the same requests and behaviour."""
    return backend == "aiohttp" or (backend == "auto" and _aiohttp_available())


def env_proxies_configured(base_url: str) -> bool:
    """Whether requests to ``base_url`` should go through a proxy the environment names
    (``HTTPS_PROXY``, ``ALL_PROXY``, ...).

    httpx reads the same source (``urllib.request.getproxies()``) when it builds a client's proxy
    routes; with none, a client sends every request to its one transport, and so may we. A plain
    http base URL (allowed only to a loopback host) never goes through a proxy: the proxy would see
    the API key in the clear, and a loopback server is no proxy's business.
    """
    return not base_url.startswith("http://") and bool(urllib.request.getproxies())


@functools.lru_cache(maxsize=64)
def _parsed_url(url: str) -> httpx.URL:
    """httpx's URL parser, once per URL (immutable objects; parsing is a third of the cost below)."""
    return httpx.URL(url)


@functools.lru_cache(maxsize=8)
def _timeout_extension(timeout: float) -> dict[str, float | None]:
    return httpx.Timeout(timeout).as_dict()


def direct_request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    timeout: float,
    content: bytes | None = None,
    files: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
) -> httpx.Request:
    """The request an ``httpx.Client(timeout=timeout)`` of ours would send, built without it.

    ``httpx.Client.send`` (cookies, auth and redirect flows, hooks, proxy routing) costs as much
    CPU per request as the transport itself: at 32 requests in flight the client's GIL is the
    bottleneck, and skipping it took about a fifth off the client's CPU and 7% off the wall time
    of ``embed_many`` (benchmarks/throughput.py). Used only on pools this package owns, with no
    proxy configured, where the client would add nothing but these headers and the timeout.
    """
    return httpx.Request(
        method,
        _parsed_url(url),
        content=content,
        files=files,
        data=data,
        headers={**_CLIENT_DEFAULT_HEADERS, **headers},
        extensions={"timeout": _timeout_extension(timeout)},
    )


def new_idempotency_key() -> str:
    """A uuid4: 36 characters, valid under both documented length limits (64 and 256)."""
    return str(uuid.uuid4())


def content_idempotency_key(base_url: str, api_version: str | None, body: bytes) -> str:
    """A key derived from the request itself (endpoint, version pin, body): the same request sent
    again, by a rerun or another process, within the API's 24 h window is a free replay.
    64 characters, valid under both documented length limits."""
    digest = hashlib.sha256()
    for part in (base_url.encode(), (api_version or "").encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return "c-" + digest.hexdigest()[:62]


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


_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _too_large(size: int) -> httpx.ReadError:
    return httpx.ReadError(
        f"the answer is over {MAX_RESPONSE_BYTES:,} bytes ({size:,} so far): not read further"
    )


def _declared_size(response: httpx.Response) -> int:
    declared = response.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else 0


def _with_body(response: httpx.Response, body: bytes) -> httpx.Response:
    """A read response holding ``body`` (already decoded: the encoding headers are dropped)."""
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _BODY_HEADERS]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=body,
        request=response.request,
        extensions=response.extensions,
    )


def read_bounded(response: httpx.Response) -> httpx.Response:
    """Read a streamed answer, at most ``MAX_RESPONSE_BYTES`` decoded (a gzip bomb or an endless
    body is cut off with an ``httpx.ReadError``), and close it."""
    try:
        if _declared_size(response) > MAX_RESPONSE_BYTES:
            raise _too_large(_declared_size(response))
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_RESPONSE_BYTES:
                raise _too_large(len(body))
    finally:
        response.close()
    return _with_body(response, bytes(body))


async def aread_bounded(response: httpx.Response) -> httpx.Response:
    """The async twin of :func:`read_bounded`."""
    try:
        if _declared_size(response) > MAX_RESPONSE_BYTES:
            raise _too_large(_declared_size(response))
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_RESPONSE_BYTES:
                raise _too_large(len(body))
    finally:
        await response.aclose()
    return _with_body(response, bytes(body))


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
) -> APIResponse | APIStatusError | APIConnectionError:
    # One pass over the headers; httpx.Headers lookups re-decode every header each time.
    headers = dict(response.headers.items())
    if not 200 <= response.status_code < 300:
        return error_from_response(response.status_code, headers, response.content)
    try:
        if not response.content and response.status_code != 204:
            raise ValueError("empty body")
        data = decode_json(response.content) if response.content else None
    except ValueError as exc:
        # A success whose body ends early (a connection closed mid-answer with no Content-Length
        # reads as a short body) was processed, and maybe charged: retry with the same key and
        # take the free replay, as after any lost answer.
        error = APIConnectionError(
            f"the API's {response.status_code} answer was cut short or is not JSON "
            f"({len(response.content)} bytes read)",
            may_have_reached_server=True,
        )
        error.request_id = headers.get("aurous-request-id")
        error.__cause__ = exc
        return error
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
    scope: CallScope
    risk: ChargeRisk = field(default_factory=ChargeRisk)
    ticket: Ticket | None = None

    @property
    def url(self) -> str:
        return f"{self.settings.base_url}{self.path}"

    def headers(self) -> dict[str, str]:
        return build_headers(
            self.settings, idempotency_key=self.idempotency_key, json_body=self.json_body
        )

    def parts(
        self,
        *,
        content: bytes | None,
        files: Mapping[str, Any] | None,
        data: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """One attempt's request parts, as both ``httpx.Client.request`` and
        :func:`direct_request` take them."""
        return {"content": content, "files": files, "data": data, "headers": self.headers()}

    def sent(self) -> None:
        """An attempt goes on the wire now."""
        self.risk.sending = True

    def answered(self, result: APIResponse | AurousError) -> None:
        """The attempt ended: an answer, or a failure that may have left it charged."""
        self.risk.sending = False
        if isinstance(result, APIConnectionError) and result.may_have_reached_server:
            self.risk.lost = True

    def judge(
        self, attempt: int, state: RetryState, result: APIResponse | AurousError
    ) -> tuple[APIResponse | None, float, RetryState]:
        """Return the final response, or the delay before the next attempt (raising when done)."""
        _log_attempt(self.method, self.url, attempt, result)
        if isinstance(result, APIResponse):
            return result, 0.0, state
        if self.scope.stopped():
            if self.scope.closed:  # the client was closed under this request
                raise ClientClosedError(
                    f"the client was closed while this request was in flight ({result})"
                ) from result
            raise result
        now = self.settings.clock.time()
        decision = decide(
            result, state, max_retries=self.settings.max_retries, now=now, rand=random.random
        )
        if decision.delay is None:
            if isinstance(result, RateLimitError):
                asked = asked_wait(
                    result.headers, now, tpm=result.code == "tpm_rate_limit_exceeded"
                )
                if asked is not None and asked > MAX_RETRY_AFTER:
                    result.retry_after = asked
                result.give_up_reason = decision.reason
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

    def check_stopped(self) -> None:
        if self.scope.stopped():
            raise self.scope.stop_error()

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
    """Sends one logical call with retries.

    With ``lanes`` (pools this package built), each attempt borrows a one-connection lane: a bare
    transport that gets the request straight (see :func:`direct_request`), or a one-connection
    ``httpx.Client`` when the environment names a proxy (the client routes through it). Otherwise
    (the caller's ``http_client``), requests go through ``client``.
    """

    def __init__(
        self,
        settings: HTTPSettings,
        client: httpx.Client | None,
        *,
        lanes: Lanes[httpx.BaseTransport | httpx.Client] | None = None,
        timeout: float = 0.0,
    ) -> None:
        self.settings = settings
        self.client = client
        self.lanes = lanes
        self.timeout = timeout
        self.scopes = Scopes()

    def _send(self, call: _Call, parts: dict[str, Any]) -> httpx.Response:
        method, url = call.method, call.url
        if self.lanes is None:
            assert self.client is not None
            call.sent()
            # Never follow: httpx strips only Authorization on a cross-origin redirect, and a
            # caller's http_client may follow redirects by default.
            request = self.client.build_request(method, url, **parts)
            return read_bounded(self.client.send(request, follow_redirects=False, stream=True))
        with self.lanes.lease() as lane:
            try:
                with call.scope.using(lane):
                    call.sent()
                    if isinstance(lane, httpx.Client):
                        request = lane.build_request(method, url, **parts)
                        response = lane.send(request, follow_redirects=False, stream=True)
                    else:
                        request = direct_request(method, url, timeout=self.timeout, **parts)
                        response = lane.handle_request(request)
                        response.request = request
                    return read_bounded(response)
            finally:
                if call.scope.stopped():  # its socket may have been shut: never lend it again
                    self.lanes.retire(lane)
                    with contextlib.suppress(Exception):
                        lane.close()

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
        scope: CallScope | None = None,
        risk: ChargeRisk | None = None,
        shared_key: bool = False,
    ) -> APIResponse:
        own = scope or CallScope(interruptible=False)
        call = _Call(
            self.settings,
            method,
            path,
            idempotency_key,
            content is not None,
            pacing,
            own,
            risk or ChargeRisk(),
        )
        clock = self.settings.clock
        with self.scopes.enter(own):
            # A key other requests may carry too (derived from the request: replay_identical):
            # a 409 "in use" means an identical request is running; wait for its replay.
            state = RetryState(shared_key=shared_key)
            attempt = 0
            while True:
                attempt += 1
                waited = 0.0
                while (wait := call.wait_for_pacer(waited)) > 0:
                    own.sleep(clock, wait)
                    waited += wait
                    call.check_stopped()
                call.check_stopped()
                result: APIResponse | AurousError
                try:
                    response = self._send(call, call.parts(content=content, files=files, data=data))
                    result = _outcome(response, state, idempotency_key)
                    call.observe(response, result)
                except httpx.TransportError as exc:
                    result = _transport_error(exc)
                call.answered(result)
                final, delay, state = call.judge(attempt, state, result)
                if final is not None:
                    return final
                own.sleep(clock, delay)

    def close(self) -> None:
        """Refuse new calls, stop the running ones, close the lanes."""
        self.scopes.close()
        for lane in self.lanes.close_all() if self.lanes is not None else ():
            lane.close()


class AsyncRequester:
    """The async twin of :class:`SyncRequester`.

    ``lease`` lends an :class:`httpx.AsyncClient` for one attempt (connections belong to the event
    loop that opened them; the client decides how they are pooled), or a transport of a pool this
    package built, which gets requests directly (see :func:`direct_request`).
    """

    #: lends what one attempt is sent on (set by the client that owns the connections)
    lease: Callable[
        [], contextlib.AbstractAsyncContextManager[httpx.AsyncClient | httpx.AsyncBaseTransport]
    ]

    def __init__(self, settings: HTTPSettings, *, timeout: float = 0.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self.scopes = Scopes()

    async def _send(
        self,
        http: httpx.AsyncClient | httpx.AsyncBaseTransport,
        method: str,
        url: str,
        parts: dict[str, Any],
    ) -> httpx.Response:
        if isinstance(http, httpx.AsyncClient):  # never follow redirects: see SyncRequester._send
            request = http.build_request(method, url, **parts)
            response = await http.send(request, follow_redirects=False, stream=True)
        else:
            request = direct_request(method, url, timeout=self.timeout, **parts)
            response = await http.handle_async_request(request)
            response.request = request
        return await aread_bounded(response)

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
        scope: CallScope | None = None,
        risk: ChargeRisk | None = None,
        shared_key: bool = False,
    ) -> APIResponse:
        own = scope or CallScope(interruptible=False)
        call = _Call(
            self.settings,
            method,
            path,
            idempotency_key,
            content is not None,
            pacing,
            own,
            risk or ChargeRisk(),
        )
        clock = self.settings.clock
        with self.scopes.enter(own):
            # A key other requests may carry too (derived from the request: replay_identical):
            # a 409 "in use" means an identical request is running; wait for its replay.
            state = RetryState(shared_key=shared_key)
            attempt = 0
            while True:
                attempt += 1
                waited = 0.0
                while (wait := call.wait_for_pacer(waited)) > 0:
                    await own.asleep(clock, wait)
                    waited += wait
                    call.check_stopped()
                call.check_stopped()
                result: APIResponse | AurousError
                try:
                    async with self.lease() as http:
                        call.sent()
                        response = await self._send(
                            http,
                            method,
                            call.url,
                            call.parts(content=content, files=files, data=data),
                        )
                    result = _outcome(response, state, idempotency_key)
                    call.observe(response, result)
                except httpx.TransportError as exc:
                    result = _transport_error(exc)
                call.answered(result)
                final, delay, state = call.judge(attempt, state, result)
                if final is not None:
                    return final
                await own.asleep(clock, delay)
