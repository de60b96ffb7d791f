"""The emulator's HTTP/1.1 connections: every read bounded in time, every refusal an envelope.

uvicorn's protocol answers a request it cannot parse with a plain-text 400, and has no deadline
for a client that opens a connection and trickles its request line and headers (a slowloris holds
the connection forever). This subclass of uvicorn's httptools protocol answers both with the
documented error envelope: ``400 invalid_request`` / ``malformed_request``, and
``408 invalid_request`` / ``request_timeout`` when the request line and headers are not complete
within ``HEADER_TIMEOUT`` seconds of the connection opening (or of the previous answer). Bodies
are bounded in size and time by the app (``_endpoints.read_body``).

It relies on uvicorn's protocol hooks (``connection_made``, ``on_message_begin``,
``on_headers_complete``, ``send_400_response``), stable across the uvicorn versions the
``emulator`` extra allows; the emulator's tests exercise each of them over real sockets.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aurous_embed.testing._envelope import INVALID_REQUEST, ApiError, dumps
from aurous_embed.testing._ids import request_id

#: [ASSUMPTION] the API's timeouts are not documented: the emulator's bounds for slow clients.
HEADER_TIMEOUT = 10.0

#: Set (to ``True``) on uvicorn's ``ServerState`` when the emulator stops: a connection whose
#: accept was still under way when the listener closed is closed as soon as it is made, instead of
#: being left open when the server's event loop ends (a ResourceWarning at garbage collection).
STOPPING = "aurous_emulator_stopping"


def envelope_response(error: ApiError) -> bytes:
    """A complete HTTP/1.1 answer carrying ``error``'s envelope, closing the connection."""
    rid = request_id(time.time())
    body = dumps(error.envelope(rid))
    reason = {400: b"Bad Request", 408: b"Request Timeout"}.get(error.status, b"Error")
    head = [
        b"HTTP/1.1 %d %s" % (error.status, reason),
        b"content-type: application/json",
        b"aurous-request-id: " + rid.encode(),
        b"content-length: %d" % len(body),
        b"connection: close",
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and enveloped protocol errors."""

    header_timeout = HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        if getattr(self.server_state, STOPPING, False):
            self.shutdown()  # no request yet: closes the connection now

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:  # a request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        busy = self.cycle is not None and not self.cycle.response_complete
        if self.transport.is_closing() or busy:
            return
        error = ApiError(
            408,
            INVALID_REQUEST,
            "request_timeout",
            f"The request line and headers did not arrive within {self.header_timeout:g} s.",
        )
        self.transport.write(envelope_response(error))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        error = ApiError(400, INVALID_REQUEST, "malformed_request", f"{msg} (not HTTP/1.1).")
        self.transport.write(envelope_response(error))
        self.transport.close()
