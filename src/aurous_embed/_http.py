"""One logical API call: send, retry loop, status to exception, pacing around each attempt.

The sync and async requesters are thin twins around the pure policy in :mod:`aurous_embed._retry`.
Every attempt of one call carries the same ``Idempotency-Key``, so a retry after a lost answer gets
the server's replay instead of a second charge. Below this module: :mod:`._wire` (keys, headers,
codec, bounded reads), :mod:`._scopes` (stopping a call, charge risk) and :mod:`._connections`
(TLS, pools, lanes, backends).
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from aurous_embed._config import MAX_RETRY_AFTER
from aurous_embed._connections import Lanes, direct_request
from aurous_embed._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AurousError,
    ClientClosedError,
    RateLimitError,
    error_from_response,
    stops_batch,
)
from aurous_embed._pacing import Pacer, Ticket
from aurous_embed._retry import RetryState, asked_wait, decide
from aurous_embed._scopes import CallScope, ChargeRisk, Scopes
from aurous_embed._wire import (
    HTTPSettings,
    aread_bounded,
    build_headers,
    decode_json,
    read_bounded,
)

logger = logging.getLogger("aurous_embed")


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


#: httpcore's trace event just before an HTTP/1.1 request's first byte is written.
_BEFORE_FIRST_BYTE = "http11.send_request_headers.started"


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
    #: every attempt so far was refused by a rate limit (none yet: a first attempt): nothing of
    #: this call was processed, so a halt of its batch keeps the next attempt from going
    refused_only: bool = True

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
        trace: Callable[[str, Mapping[str, Any]], object],
    ) -> dict[str, Any]:
        """One attempt's request parts, as both ``httpx.Client.request`` and
        :func:`direct_request` take them; ``trace`` is :meth:`trace` or :meth:`atrace`."""
        return {
            "content": content,
            "files": files,
            "data": data,
            "headers": self.headers(),
            "extensions": {"trace": trace},
        }

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore's request trace (the ``trace`` request extension), told of each step of an
        attempt. Its last step before the first byte goes out: a call stopped by then is not
        sent. Closing a client cuts its requests in flight short by shutting their sockets, and a
        connection still being opened has none yet: without this check its request would go out
        (and be charged) after ``close()`` returned."""
        if event == _BEFORE_FIRST_BYTE and self.scope.stopped():
            raise httpx.ConnectError(f"not sent: {self.scope.stop_error()}")

    async def atrace(self, event: str, info: Mapping[str, Any]) -> None:
        """The async twin of :meth:`trace` (httpcore awaits an async client's trace)."""
        self.trace(event, info)

    def sent(self) -> None:
        """An attempt goes on the wire now."""
        self.risk.sending = True
        self.risk.attempts += 1

    def answered(self, result: APIResponse | AurousError) -> None:
        """The attempt ended: an answer, or a failure that may have left it charged."""
        self.risk.sending = False
        if isinstance(result, APIConnectionError) and result.may_have_reached_server:
            self.risk.lost = True
        self.refused_only = self.refused_only and isinstance(result, RateLimitError)

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

    def check_halted(self) -> None:
        """The next attempt is not sent once its batch is halted, unless an earlier attempt may
        have been processed (a 5xx, a lost answer: the retry gets its answer, or its replay);
        after a rate limit's refusal nothing was, so a 429 then a halt is not sent again."""
        if self.refused_only and (error := self.scope.halt_error()) is not None:
            raise error

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
        # An error that stops the batch and is never retried (a bad key, no credits) halts it
        # before this answer opens the pacer's gate to the requests waiting behind it.
        if (
            isinstance(result, AurousError)
            and not isinstance(result, RateLimitError)
            and stops_batch(result)
        ):
            self.scope.halt(result)
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
        lane = self.lanes.take()
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
            if not self.lanes.give_back(lane):
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
                    own.sleep(clock, wait, halts=call.refused_only)
                    waited += wait
                    call.check_stopped()
                    call.check_halted()
                call.check_stopped()
                call.check_halted()
                result: APIResponse | AurousError
                try:
                    response = self._send(
                        call, call.parts(content=content, files=files, data=data, trace=call.trace)
                    )
                    result = _outcome(response, state, idempotency_key)
                    call.observe(response, result)
                except httpx.TransportError as exc:
                    result = _transport_error(exc)
                call.answered(result)
                final, delay, state = call.judge(attempt, state, result)
                if final is not None:
                    return final
                own.sleep(clock, delay, halts=call.refused_only)

    def close(self) -> None:
        """Refuse new calls, stop the running ones, close the lanes."""
        self.scopes.close()  # shuts the sockets of the requests in flight
        if self.lanes is not None:
            idle, _in_use = self.lanes.close_all()  # those in use are closed by their borrowers
            for lane in idle:
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
                    await own.asleep(clock, wait, halts=call.refused_only)
                    waited += wait
                    call.check_stopped()
                    call.check_halted()
                call.check_stopped()
                call.check_halted()
                result: APIResponse | AurousError
                try:
                    async with self.lease() as http:
                        call.sent()
                        response = await self._send(
                            http,
                            method,
                            call.url,
                            call.parts(content=content, files=files, data=data, trace=call.atrace),
                        )
                    result = _outcome(response, state, idempotency_key)
                    call.observe(response, result)
                except httpx.TransportError as exc:
                    result = _transport_error(exc)
                call.answered(result)
                final, delay, state = call.judge(attempt, state, result)
                if final is not None:
                    return final
                await own.asleep(clock, delay, halts=call.refused_only)
