"""The emulator's ASGI application: routing, shared state, and the steps every request takes.

Order of checks [GUESS, contract section 12 item 3]: auth -> ``Aurous-Version`` -> rate limit
(RPM) -> JSON and DTO validation -> model and kind -> ``dimensions`` -> idempotency lookup ->
token count (128K) -> TPM -> balance hold (402) -> "model call" (latency, slow and status
faults) -> resolve images -> vector -> commit charge + idempotency record -> respond.

Concurrency: handlers run on one event loop; tests read stats and change settings from another
thread. All shared state is changed under ``self.cond`` (a Condition, so tests can wait for a
state without sleeping), and never across an ``await``.

Not documented, chosen here [NOT FOUND]:

- Rate-limit classes: ``POST /v1/embeddings`` and ``/estimate`` share the ``embeddings_post``
  RPM bucket (settings ``rpm``/``rpm_burst``); only ``/v1/embeddings`` takes TPM tokens, when
  the request is admitted (tokens are not refunded if it later fails). ``POST``/``DELETE
  /v1/files`` use the documented files class (burst 60, 30/min), GETs the documented GET class
  (burst 1200, 600/min). Every response carries the TPM headers of the team's one TPM bucket.
- A replay counts against RPM (the limit check comes before the idempotency lookup) but takes
  no TPM tokens (nothing is processed).
- A replay carries the ``Aurous-Request-Id`` of the request that did the work (and was
  billed), so the header matches the ledger row.
- One team per emulator; every configured key belongs to it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect, Request

from aurous_embed._config import API_VERSION_PATTERN, CURRENT_API_VERSION
from aurous_embed.testing._checks import (
    SCOPES,
    api_key_of,
    check_key,
    check_scope,
    idempotency_key_of,
    injected_error,
    resolve_version,
    too_many_requests,
)
from aurous_embed.testing._envelope import (
    INVALID_FORMAT,
    INVALID_REQUEST,
    NOT_FOUND,
    SERVER_ERROR,
    ApiError,
    dumps,
    invalid,
)
from aurous_embed.testing._faults import (
    DEFAULT_RETRY_AFTER,
    FAULT_HEADER,
    FaultInjector,
    FaultPlan,
    Faults,
)
from aurous_embed.testing._files import FileStore
from aurous_embed.testing._idempotency import IdempotencyStore, Record, body_hash
from aurous_embed.testing._ids import request_id
from aurous_embed.testing._imaging import ImageProblem, PixelGrid, pixel_grid
from aurous_embed.testing._ratelimit import TokenBucket
from aurous_embed.testing._stats import Charge, EmulatorStats, StatsRecorder
from aurous_embed.testing._vectors import Embedder

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from aurous_embed.testing._clock import ClockFn

logger = logging.getLogger("aurous_embed.testing")

TEAM = "team_emulator"
# [DOC] documented default classes, reused for the files and GET routes.
FILES_BURST, FILES_PER_MINUTE = 60, 30
GET_BURST, GET_PER_MINUTE = 1200, 600
BUCKET_NAMES = {"embeddings": "embeddings_post", "files": "files_post", "get": "get"}


@dataclass(frozen=True)
class Settings:
    """Everything an emulator is configured with (see ``Emulator`` for the meanings)."""

    latency: float
    jitter: float
    rpm: float
    rpm_burst: float
    tpm: float
    credits: float
    native_dimension: int
    accept_video: bool
    api_version: str
    tokens_per_image: int
    faults: Faults
    seed: int | None


@dataclass
class Context:
    """One request as it moves through the steps."""

    request_id: str
    route: str  # "POST /v1/embeddings"
    bucket: str  # rate-limit class
    request: Request
    version: str = CURRENT_API_VERSION
    plan: FaultPlan = field(default_factory=FaultPlan)
    applied: list[str] = field(default_factory=list)
    rate_limited: bool = False


@dataclass
class Reply:
    """A response before the common headers are added."""

    status: int
    body: bytes
    code: str | None = None
    retry_after: int | None = None
    replayed: bool = False
    request_id: str | None = None  # set on replays: the original request's id


Handler = Callable[["EmulatorApp", Request, Context], Awaitable[Reply]]


class ResetFault(Exception):
    """Raised after a partial response to make the server drop the connection (a fault)."""


class EmulatorApp:
    """The ASGI app plus all emulator state. ``Emulator`` serves it; tests may also mount it
    on ``httpx.ASGITransport`` directly (there, a ``reset`` fault raises :class:`ResetFault`).
    """

    def __init__(self, settings: Settings, clock: ClockFn, keys: dict[str, str]) -> None:
        for key, scope in keys.items():
            if scope not in SCOPES:
                raise ValueError(f"scope of key {key[:14]}... must be one of {SCOPES}")
        if not API_VERSION_PATTERN.match(settings.api_version):
            raise ValueError("api_version must look like YYYY-MM-DD")
        self.settings = settings
        self.clock = clock
        self.keys = dict(keys)
        self.revoked: set[str] = set()
        self.cond = threading.Condition()
        self.embedder = Embedder(settings.native_dimension)
        self.injector = FaultInjector(settings.faults, settings.seed)
        self._slow_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._grids: OrderedDict[str, PixelGrid] = OrderedDict()
        from aurous_embed.testing import _endpoints

        self._routes: dict[tuple[str, str], tuple[Handler, str]] = {
            ("POST", "/v1/embeddings"): (_endpoints.embeddings, "embeddings"),
            ("POST", "/v1/embeddings/estimate"): (_endpoints.estimate, "embeddings"),
            ("GET", "/v1/models"): (_endpoints.models, "get"),
            ("GET", "/v1/balance"): (_endpoints.balance, "get"),
            ("POST", "/v1/files"): (_endpoints.upload_file, "files"),
            ("GET", "/v1/files/{id}"): (_endpoints.get_file, "get"),
            ("DELETE", "/v1/files/{id}"): (_endpoints.delete_file, "files"),
        }
        self.reset()

    # --- state ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Clear requests, charges, records, files, buckets and faults; keep keys and settings."""
        s = self.settings
        now = self.clock()
        with self.cond:
            self.stats = StatsRecorder()
            self.idempotency = IdempotencyStore()
            self.files = FileStore()
            self.buckets = {
                "embeddings": TokenBucket(s.rpm_burst, s.rpm, now),
                "files": TokenBucket(FILES_BURST, FILES_PER_MINUTE, now),
                "get": TokenBucket(GET_BURST, GET_PER_MINUTE, now),
            }
            self.tpm = TokenBucket(s.tpm, s.tpm, now)
            self.credits = float(s.credits)
            self.held = 0.0
            self.storm_until, self.storm_retry_after = 0.0, 0
            self.latency_rng = random.Random(s.seed)
            self.cond.notify_all()
        self.injector.reset()

    def storm(self, seconds: float, retry_after: int) -> None:
        """Answer every embeddings request with 429 for the next ``seconds`` (emulator clock)."""
        with self.cond:
            self.storm_until = self.clock() + seconds
            self.storm_retry_after = retry_after

    def snapshot(self) -> EmulatorStats:
        """Stats as of now."""
        with self.cond:
            return self.stats.snapshot()

    def ledger(self) -> tuple[Charge, ...]:
        """The charge ledger as of now."""
        with self.cond:
            return tuple(self.stats.ledger)

    def wait_until(
        self, predicate: Callable[[EmulatorStats], bool], timeout: float
    ) -> EmulatorStats:
        """Block until ``predicate(stats)`` holds; return those stats.

        Raises:
            TimeoutError: If it does not hold within ``timeout`` seconds.
        """
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self.stats.snapshot()), timeout):
                raise TimeoutError(f"emulator state not reached within {timeout} s")
            return self.stats.snapshot()

    def release_slow(self) -> None:
        """End every slow-response wait now (they then commit and answer)."""
        with self.cond:
            waiters = list(self._slow_waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    # --- ASGI -----------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection event."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets are not part of the API
            return
        request = Request(scope, receive)
        handler, bucket, route = self._route(scope["method"], scope["path"])
        ctx = Context(request_id(self.clock()), route, bucket, request)
        with self.cond:
            self.stats.enter()
            self.cond.notify_all()
        try:
            try:
                reply = await handler(self, request, ctx)
            except ApiError as error:
                reply = self.error_reply(error, ctx)
            except ClientDisconnect:  # the client went away before its request was complete
                logger.info("client disconnected before sending the whole %s request", route)
                return
            except Exception:  # an emulator bug: answer like a server would, and say so
                logger.exception("emulator failed on %s", route)
                bug = ApiError(500, SERVER_ERROR, "internal_error", "Emulator bug (logged).")
                reply = self.error_reply(bug, ctx)
            headers = self._headers(ctx, reply)
            if ctx.plan.reset:
                ctx.applied.append("reset")
            with self.cond:
                self.stats.answered(route, reply.status, reply.code, reply.replayed)
                self.stats.faults.update(ctx.applied)
            await _send(send, reply.status, headers, reply.body, reset=ctx.plan.reset)
        finally:
            with self.cond:
                self.stats.leave()
                self.cond.notify_all()

    def _route(self, method: str, path: str) -> tuple[Handler, str, str]:
        pattern = path
        if path.startswith("/v1/files/") and path.count("/") == 3:
            pattern = "/v1/files/{id}"
        found = self._routes.get((method, pattern))
        if found is not None:
            return found[0], found[1], f"{method} {pattern}"
        known = any(p == pattern for _, p in self._routes)
        return (_method_not_allowed if known else _not_found), "get", f"{method} {path}"

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def error_reply(self, error: ApiError, ctx: Context) -> Reply:
        """Turn an error into the documented envelope."""
        body = dumps(error.envelope(ctx.request_id))
        return Reply(error.status, body, code=error.code, retry_after=error.retry_after)

    def _headers(self, ctx: Context, reply: Reply) -> list[tuple[bytes, bytes]]:
        now = self.clock()
        with self.cond:
            rpm = self.buckets[ctx.bucket]
            values = [
                ("content-type", "application/json"),
                ("aurous-request-id", reply.request_id or ctx.request_id),
                ("aurous-version", ctx.version),
                ("x-ratelimit-limit", str(int(rpm.capacity))),
                ("x-ratelimit-remaining", "0" if ctx.rate_limited else str(rpm.remaining(now))),
                ("x-ratelimit-reset", str(rpm.reset_at(now))),
                ("x-ratelimit-tpm-limit", str(int(self.tpm.capacity))),
                ("x-ratelimit-tpm-remaining", str(self.tpm.remaining(now))),
                ("x-ratelimit-tpm-reset", str(self.tpm.reset_at(now))),
            ]
        if reply.retry_after is not None:
            values.append(("retry-after", str(reply.retry_after)))
        if reply.replayed:
            values.append(("aurous-idempotent-replayed", "true"))
        return [(k.encode(), v.encode()) for k, v in values]

    # --- steps shared by the endpoints ----------------------------------------------------
    def prelude(self, ctx: Context, *, write: bool) -> None:
        """Auth, version, fault plan and the RPM bucket: the steps before reading the body."""
        headers = ctx.request.headers
        key = api_key_of(headers)
        with self.cond:
            scope = check_key(key, self.keys, self.revoked)
        # From here on the team's default version applies (before: the system default).
        ctx.version = self.settings.api_version
        check_scope(scope, ctx.route, write=write)
        ctx.version = resolve_version(headers.get("aurous-version"), self.settings.api_version)
        try:
            ctx.plan = self.injector.plan_for(
                ctx.request.scope["path"], ctx.request.headers.get(FAULT_HEADER)
            )
        except ValueError as exc:
            raise invalid(INVALID_FORMAT, str(exc), FAULT_HEADER) from None
        now = self.clock()
        name = BUCKET_NAMES[ctx.bucket]
        with self.cond:
            storm = ctx.bucket == "embeddings" and now < self.storm_until
        if storm:
            ctx.applied.append("rate_limit")
            ctx.rate_limited = True
            raise too_many_requests(name, self.storm_retry_after)
        if ctx.plan.rate_limit:
            ctx.applied.append("rate_limit")
            ctx.rate_limited = True
            wait = self._retry_after(ctx.plan)
            raise too_many_requests(name, wait)
        with self.cond:
            bucket = self.buckets[ctx.bucket]
            if not bucket.take(1, now):
                ctx.rate_limited = True
                raise too_many_requests(name, bucket.retry_after(1, now))

    def idempotency_key(self, ctx: Context) -> str | None:
        """The request's idempotency key (any documented alias), checked for length."""
        return idempotency_key_of(ctx.request.headers)

    def begin_idempotent(self, ctx: Context, key: str, canonical: str) -> Reply | Record:
        """Look the key up: a replay :class:`Reply`, or the new reservation; 409 on conflict."""
        with self.cond:
            outcome = self.idempotency.begin(
                TEAM, key, ctx.route, body_hash(canonical), self.clock()
            )
        if outcome.kind == "replay":
            record = outcome.record
            return Reply(record.status, record.body, replayed=True, request_id=record.request_id)
        if outcome.kind == "conflict":
            raise ApiError(
                409,
                INVALID_REQUEST,
                "idempotency_key_in_use",
                f"This Idempotency-Key {outcome.reason}. Use a new key for a different request, "
                "or retry later to get the stored response.",
            )
        return outcome.record

    def release_idempotent(self, key: str | None, record: Record | None) -> None:
        """Drop a failed request's reservation (failures are never replayed)."""
        if key is not None and record is not None:
            with self.cond:
                self.idempotency.release(TEAM, key, record)

    async def work(self, ctx: Context) -> None:
        """The "model call": latency, then slow and status faults."""
        s = self.settings
        if s.latency > 0 or s.jitter > 0:
            with self.cond:
                delay = s.latency + self.latency_rng.uniform(-s.jitter, s.jitter)
            if delay > 0:
                await asyncio.sleep(delay)
        plan = ctx.plan
        if plan.slow is not None:
            ctx.applied.append("slow")
            await self._hold(plan.slow)
        if plan.status is not None:
            ctx.applied.append(f"status={plan.status}")
            raise injected_error(plan.status, self._retry_after(plan))

    async def _hold(self, seconds: float) -> None:
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self.cond:
            self._slow_waiters.add(waiter)
            self.stats.slow_in_flight += 1
            self.cond.notify_all()
        try:
            await asyncio.wait_for(waiter[1].wait(), seconds)
        except asyncio.TimeoutError:
            pass
        finally:
            with self.cond:
                self._slow_waiters.discard(waiter)
                self.stats.slow_in_flight -= 1
                self.cond.notify_all()

    def _retry_after(self, plan: FaultPlan) -> int:
        if plan.retry_after is not None:
            return plan.retry_after
        if self.settings.faults.retry_after is not None:
            return self.settings.faults.retry_after
        return DEFAULT_RETRY_AFTER

    def grid(self, sha256: str, data: bytes, path: str) -> PixelGrid:
        """Decode an image once (cached by content hash)."""
        grid = self._grids.get(sha256)
        if grid is None:
            try:
                grid = pixel_grid(data)
            except ImageProblem as problem:
                raise invalid(problem.code, problem.message + ".", path) from None
            self._grids[sha256] = grid
            if len(self._grids) > 256:
                self._grids.popitem(last=False)
        return grid


async def _not_found(app: EmulatorApp, request: Request, ctx: Context) -> Reply:
    raise ApiError(404, NOT_FOUND, "resource_not_found", f"No route {ctx.route}.")


async def _method_not_allowed(app: EmulatorApp, request: Request, ctx: Context) -> Reply:
    raise ApiError(405, INVALID_REQUEST, "method_not_allowed", f"{ctx.route} is not supported.")


async def _send(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, reset: bool
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if reset:
        # Headers and half the body, then the server drops the connection: the client sees a
        # transport error after the request was fully processed.
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
        raise ResetFault("injected connection reset (Aurous-Emulator-Fault: reset)")
    await send({"type": "http.response.body", "body": body})


def json_reply(payload: Any, status: int = 200) -> Reply:
    """A JSON success reply."""
    return Reply(status, dumps(payload))
