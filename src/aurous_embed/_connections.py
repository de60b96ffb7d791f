"""The client's connections: TLS contexts, the pools shared by Chroma's rebuilt functions, one-
connection lanes, the async backend choice, proxies from the environment, and requests sent
straight to a transport. What one API call does with them lives in :mod:`aurous_embed._http`.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import socket
import ssl
import threading
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Generic, Literal, TypeVar

import httpx

from aurous_embed._errors import ClientClosedError, InputValidationError, MissingDependencyError

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

    A lane in use is closed by its borrower, never under it (see :meth:`give_back`): httpcore's
    pool forgets a connection that is still being opened when the pool is closed, and that
    connection, opened a moment later, would carry its request and then leak its socket.
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

    def take(self) -> LaneT:
        """Borrow a lane (the warmest idle one, or a new one); hand it back with
        :meth:`give_back`."""
        with self._lock:
            self.check_open()
            lane = self._idle.pop() if self._idle else None
        if lane is None:
            lane = self._new()
            with self._lock:
                self._all.append(lane)
        return lane

    def give_back(self, lane: LaneT) -> bool:
        """End a loan: ``True`` if ``lane`` is idle again; ``False`` if it was retired or the
        lanes were closed meanwhile, and the borrower must close it."""
        with self._lock:
            if not self.closed and any(lane is kept for kept in self._all):
                self._idle.append(lane)
                return True
            self._all = [kept for kept in self._all if kept is not lane]
            return False

    def retire(self, lane: LaneT) -> None:
        """Never lend ``lane`` again (its socket may have been shut); its borrower closes it."""
        with self._lock:
            self._all = [kept for kept in self._all if kept is not lane]

    def every(self) -> list[LaneT]:
        """Every lane made so far (in use or idle)."""
        with self._lock:
            return list(self._all)

    def close_all(self) -> tuple[list[LaneT], list[LaneT]]:
        """Refuse further loans. Returns the idle lanes, for the caller to close now, and those
        in use, whose borrowers close them as their requests end (see :meth:`give_back`)."""
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
            busy = [lane for lane in self._all if not any(lane is i for i in idle)]
            self._all = busy
            return idle, busy


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
    extensions: Mapping[str, Any] | None = None,
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
        extensions={**(extensions or {}), "timeout": _timeout_extension(timeout)},
    )
