"""The async client's connections over aiohttp (extra ``speedups``), behind httpx's transport API.

Why: at 32 requests in flight the async client's one thread is the bottleneck, and most of its
CPU is httpx's async stack (httpcore's pure-Python HTTP parser and anyio's cancel scopes on every
socket read and write). Over aiohttp's C parser the whole client takes about 0.83 ms of CPU per
request at 32 in flight against 1.38 ms over httpx (benchmarks/overhead.py); the transports alone,
about 0.35 ms against 0.9 ms. The core keeps speaking httpx (``httpx.Request`` in, ``httpx.Response``
out, httpx's exception types), so retries, error mapping and tests are the same for both.

Why not ``httpx-aiohttp`` (the transport the OpenAI SDK offers): it maps every aiohttp connection
error, a server disconnect after the request was sent included, to ``httpx.ConnectTimeout``, which
would tell a user that a request that may have been charged never left (see
``APIConnectionError.may_have_reached_server``). The mapping below keeps that distinction; the
rest is one call to aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping

import aiohttp
import httpx

# httpx's default for idle keep-alive connections (aiohttp's is 15 s): a server that closes idle
# connections after 5 s (uvicorn's default) would otherwise race us on every reuse after a pause.
KEEPALIVE_SECONDS = 5.0


def _mapped(exc: BaseException) -> httpx.TransportError:
    """The httpx exception httpcore would have raised for the same failure."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc) or "Timed out while connecting.")
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS: nothing was sent
        return httpx.ConnectError(str(exc))
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's read timeouts subclass it
        return httpx.ReadTimeout(str(exc) or "Timed out while reading the response.")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError("Server disconnected without sending a response.")
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ClientResponseError)):
        return httpx.RemoteProtocolError(str(exc))
    if isinstance(exc, aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(str(exc))
    return httpx.ReadError(str(exc) or type(exc).__name__)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (its own keep-alive pool) for one event loop's requests.

    Requests are sent as they are built by :func:`aurous_embed._connections.direct_request` (headers,
    body, timeouts); no cookies are kept, no proxy is used (the caller chooses httpx when the
    environment names one), redirects are never followed and bodies are decoded by httpx, as on
    the httpx path. Created inside the event loop that uses it.
    """

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                ssl=ssl_context, limit=0, keepalive_timeout=KEEPALIVE_SECONDS
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            auto_decompress=False,
        )
        # Answers being read. Closing the session does not wake a read of an answer whose headers
        # have arrived (aiohttp drops the protocol's payload before the connection is lost, so
        # the body's reader is never told): aclose() closes them first, which does.
        self._reading: set[aiohttp.ClientResponse] = set()
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout: Mapping[str, float | None] = request.extensions.get("timeout", {})
        try:
            body = request.content
        except httpx.RequestNotRead:  # multipart uploads are streams until read
            body = await request.aread()
        answered = False
        try:
            async with self._session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                compress=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            ) as response:
                answered = True
                self._reading.add(response)
                try:
                    content = await response.read()
                finally:
                    self._reading.discard(response)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _mapped(exc) from exc
        except RuntimeError as exc:
            if not self._closed:
                raise
            # aiohttp's words for a request made after close() ("Session is closed") and for a
            # read that starts after close() shut its connection ("Connection closed.").
            if answered:
                raise httpx.ReadError(f"closed while the answer was read ({exc})") from exc
            raise httpx.ConnectError(f"not sent: closed ({exc})") from exc
        return httpx.Response(
            response.status,
            headers=list(response.headers.items()),
            stream=httpx.ByteStream(content),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        self._closed = True
        for response in list(self._reading):  # their reads end with a connection error
            response.close()
        await self._session.close()

    def __del__(self) -> None:
        # Closed with aclose(), or its loop is still running: nothing to do (a client dropped while
        # its loop runs has its connections closed by that loop, see _async_client). Left here:
        # the loop was closed without shutting down async generators, so nothing could close the
        # session (LlamaIndex runs coroutines from inside a running loop on a thread's loop that
        # it closes so). Nothing can be awaited on a closed loop; mark the session and its pool
        # closed so aiohttp does not log "Unclosed client session" / "Unclosed connector" errors
        # at garbage collection. Their sockets go with the objects, as httpx's would.
        session = self._session
        if session.closed or not self._loop.is_closed():
            return
        connector = session.connector
        session.detach()
        if connector is not None:
            # On a closed loop close() only marks the pool closed and returns a finished no-op
            # awaitable; run it to its end so it does not warn that it was never awaited.
            with contextlib.suppress(StopIteration):
                connector.close().__await__().send(None)
