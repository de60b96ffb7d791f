"""Promises under conditions the other suites did not choose (against httpx.MockTransport).

Every input is accounted for, in order, when a batch stops; a stop is catchable as its cause;
a raising progress callback stops the batch instead of hanging it; rate limits that ask for
nothing or for too much; an answer cut short; a source that raises; the cache's endpoint.
"""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aurous_embed import (
    AsyncAurousClient,
    AurousClient,
    AurousError,
    AuthenticationError,
    BatchEmbeddingError,
    BatchStoppedError,
    BudgetExceededError,
    InsufficientCreditsError,
    PermissionDeniedError,
    RateLimitError,
    SystemClock,
)
from aurous_embed._config import MAX_RETRY_AFTER, RATE_LIMIT_MIN_WAIT
from tests.unit.conftest import (
    API_KEY,
    BASE_URL,
    FakeAPI,
    FakeClock,
    embedding_body,
    error_body,
    respond,
)

#: (status, code, type, class) of the errors after which every further request would fail alike.
STOPPERS = [
    (401, "invalid_api_key", "authentication", AuthenticationError),
    (402, "balance_too_low", "invalid_request", InsufficientCreditsError),
    (403, "missing_scope", "permission", PermissionDeniedError),
]
#: A hang guard only (these calls take milliseconds): a stuck call fails the test instead of CI.
DEADLINE = 30.0


def sync_client(api: FakeAPI, clock: FakeClock | None = None, **options: Any) -> AurousClient:
    return AurousClient(
        API_KEY,
        base_url=options.pop("base_url", BASE_URL),
        http_client=httpx.Client(transport=httpx.MockTransport(api)),
        clock=clock or FakeClock(),
        **options,
    )


def async_client(api: FakeAPI, clock: FakeClock | None = None, **options: Any) -> AsyncAurousClient:
    return AsyncAurousClient(
        API_KEY,
        base_url=options.pop("base_url", BASE_URL),
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(api)),
        clock=clock or FakeClock(),
        **options,
    )


def within_deadline(call: Callable[[], Any]) -> Any:
    """Run ``call`` in a thread; fail (instead of hanging) if it does not end in time."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(DEADLINE)
    assert not thread.is_alive(), "the call hung"
    if "error" in box:
        raise box["error"]
    return box["value"]


def echo(request: httpx.Request) -> httpx.Response:
    text = json.loads(request.content)["input"]
    return respond(body=embedding_body([float(text[1:]), 1.0], credits=0.25))


def failing_after(ok: int, status: int, code: str, type_: str) -> Callable[..., httpx.Response]:
    """The first ``ok`` requests succeed, every later one gets the error."""
    seen = 0
    lock = threading.Lock()

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal seen
        with lock:
            seen += 1
            n = seen
        return echo(request) if n <= ok else respond(status, error_body(code, type_))

    return answer


# --- every input accounted for, in order ---------------------------------------------------------


@pytest.mark.parametrize(("status", "code", "type_", "cls"), STOPPERS)
@pytest.mark.parametrize("source", ["list", "generator"])
def test_embed_iter_return_exceptions_yields_every_input_in_order(
    status: int, code: str, type_: str, cls: type[AurousError], source: str
) -> None:
    # Measured on the old engine: fewer than 8 items in 27 of 60 runs. Run it many times.
    for _ in range(40):
        api = FakeAPI(default=lambda r: respond(status, error_body(code, type_)))
        texts = [f"t{i}" for i in range(8)]
        inputs = texts if source == "list" else (t for t in texts)
        with sync_client(api) as client:
            out = list(client.embed_iter(inputs, return_exceptions=True))
        assert [type(e) for e in out] == [cls] * 8
        assert [e.index for e in out] == list(range(8))
        assert len(api.requests) + sum(e.skipped for e in out) == 8  # skipped: never sent


async def test_async_embed_iter_return_exceptions_yields_every_input_in_order() -> None:
    for _ in range(40):
        api = FakeAPI(default=failing_after(3, 401, "invalid_api_key", "authentication"))
        texts = [f"t{i}" for i in range(8)]
        async with async_client(api, max_concurrency=2) as client:
            out = [x async for x in client.embed_iter(texts, return_exceptions=True)]
        assert len(out) == 8
        done = [x for x in out if not isinstance(x, AurousError)]
        failed = [x for x in out if isinstance(x, AurousError)]
        assert len(done) == 3 and all(isinstance(e, AuthenticationError) for e in failed)
        assert [e.index for e in failed] == [i for i, x in enumerate(out) if x in failed]
        assert sum(not e.skipped for e in failed) == len(api.requests) - 3  # the ones sent


def test_a_stream_stopped_by_a_bad_key_goes_on_yielding_skips_without_sending() -> None:
    api = FakeAPI(default=lambda r: respond(401, error_body("invalid_api_key", "authentication")))

    def endless() -> Iterator[str]:
        n = 0
        while True:
            yield f"t{n}"
            n += 1

    with sync_client(api, max_concurrency=4) as client:
        stream = client.embed_iter(endless(), return_exceptions=True)
        first = [next(stream) for _ in range(500)]
        stream.close()  # type: ignore[attr-defined]
    assert [e.index for e in first] == list(range(500))  # type: ignore[union-attr]
    assert len(api.requests) <= 8  # stopped sending at once


# --- a stop is catchable as its cause ---------------------------------------------------------------


@pytest.mark.parametrize(("status", "code", "type_", "cls"), STOPPERS)
def test_a_stopped_batch_is_catchable_as_its_cause_with_the_results_so_far(
    status: int, code: str, type_: str, cls: type[AurousError]
) -> None:
    api = FakeAPI(default=failing_after(10, status, code, type_))
    texts = [f"t{i}" for i in range(500)]
    with sync_client(api, max_concurrency=4) as client, pytest.raises(cls) as info:
        client.embed_many(texts)
    error: Any = info.value
    assert isinstance(error, BatchEmbeddingError) and isinstance(error, BatchStoppedError)
    assert (error.status_code, error.code) == (status, code)
    assert error.request_id == "req_01TESTERRORREQUESTID0000"
    done = {i for i, r in enumerate(error.results) if r is not None}
    assert len(done) == 10
    assert all(error.results[i].embedding == [float(i), 1.0] for i in done)
    assert set(error.errors) == set(range(500)) - done  # every other input accounted for
    assert all(isinstance(e, cls) and e.index == i for i, e in error.errors.items())
    assert isinstance(error.cause, cls) and not error.cause.skipped
    assert len(api.requests) <= 10 + 2 * 4  # stopped early: not 500 doomed requests
    assert f"{status} {code}" in str(error) and "stopped" in str(error)


@pytest.mark.parametrize(("status", "code", "type_", "cls"), STOPPERS)
async def test_async_stopped_batch_is_catchable_as_its_cause(
    status: int, code: str, type_: str, cls: type[AurousError]
) -> None:
    api = FakeAPI(default=failing_after(10, status, code, type_))
    async with async_client(api, max_concurrency=4) as client:
        with pytest.raises(cls) as info:
            await client.embed_many([f"t{i}" for i in range(500)])
        with pytest.raises(cls):  # as_numpy keeps the rows it has
            await client.embed_many([f"t{i}" for i in range(50)], as_numpy=True)
    error: Any = info.value
    assert isinstance(error, BatchStoppedError)
    assert sum(r is not None for r in error.results) == 10
    assert len(error.errors) == 490
    assert len(api.requests) <= 10 + 2 * 4 + 4


def test_a_budget_stop_is_a_budget_error_and_a_batch_error() -> None:
    api = FakeAPI(default=echo)  # 0.25 credits each
    with sync_client(api, max_concurrency=1) as client, pytest.raises(BudgetExceededError) as info:
        client.embed_many([f"t{i}" for i in range(20)], max_credits=0.001)
    error: Any = info.value
    assert isinstance(error, BatchEmbeddingError)
    assert error.max_credits == 0.001
    assert set(error.errors) == set(range(20)) - {
        i for i, r in enumerate(error.results) if r is not None
    }


def test_stopped_batch_errors_and_their_items_survive_pickle_and_copy() -> None:
    api = FakeAPI(default=failing_after(2, 401, "invalid_api_key", "authentication"))
    with sync_client(api, max_concurrency=1) as client, pytest.raises(AuthenticationError) as info:
        client.embed_many(["t0", "t1", "t2", "t3"])
    for clone in (pickle.loads(pickle.dumps(info.value)), copy.copy(info.value)):
        assert type(clone) is type(info.value)
        assert isinstance(clone, AuthenticationError) and isinstance(clone, BatchStoppedError)
        assert str(clone) == str(info.value)
        assert (clone.status_code, clone.code, clone.request_id) == (
            401,
            "invalid_api_key",
            info.value.request_id,
        )
        assert [r and r.embedding for r in clone.results] == [[0.0, 1.0], [1.0, 1.0], None, None]
        assert sorted(clone.errors) == [2, 3] and clone.errors[3].skipped


# --- a progress callback that raises ---------------------------------------------------------


def breaks_at(n: int) -> Callable[[int, int | None, float], None]:
    def on_progress(done: int, total: int | None, credits: float) -> None:
        if done == n:
            raise RuntimeError("the callback broke")

    return on_progress


@pytest.mark.parametrize("mode", ["embed_many", "embed_iter"])
def test_a_raising_progress_callback_stops_the_batch_and_raises(mode: str) -> None:
    api = FakeAPI(default=echo)
    texts = [f"t{i}" for i in range(100)]
    with sync_client(api, max_concurrency=4) as client:
        if mode == "embed_many":
            call = lambda: client.embed_many(texts, on_progress=breaks_at(8))  # noqa: E731
        else:
            call = lambda: list(client.embed_iter(texts, on_progress=breaks_at(8)))  # noqa: E731
        with pytest.raises(RuntimeError, match="the callback broke"):
            within_deadline(call)
        assert len(api.requests) < 100  # stopped, not run to the end
        assert len(client.embed_many(["t1", "t2"])) == 2  # the client is still usable


async def test_async_raising_progress_callback_stops_the_batch_and_raises() -> None:
    api = FakeAPI(default=echo)
    async with async_client(api, max_concurrency=4) as client:
        with pytest.raises(RuntimeError, match="the callback broke"):
            await asyncio.wait_for(
                client.embed_many([f"t{i}" for i in range(100)], on_progress=breaks_at(8)),
                DEADLINE,
            )
        assert len(api.requests) < 100


def test_a_raising_callback_on_cache_hits_stops_too(tmp_path: Path) -> None:
    api = FakeAPI(default=echo)
    texts = [f"t{i}" for i in range(50)]
    with sync_client(api, cache=tmp_path / "c.sqlite") as client:
        client.embed_many(texts)
        with pytest.raises(RuntimeError, match="the callback broke"):
            within_deadline(lambda: client.embed_many(texts, on_progress=breaks_at(3)))
    assert len(api.requests) == 50


class BrokenTerminal:
    """Standard error after the reader of its pipe went away."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError("no file")


def test_a_progress_bar_on_a_broken_terminal_never_stops_or_hangs_the_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("tqdm")
    monkeypatch.setattr("sys.stderr", BrokenTerminal())
    api = FakeAPI(default=echo)
    with sync_client(api) as client:
        for _ in range(3):  # a bar that failed must not leave tqdm's lock held for the next one
            results = within_deadline(
                lambda: client.embed_many([f"t{i}" for i in range(40)], show_progress=True)
            )
            assert [r.embedding[0] for r in results] == [float(i) for i in range(40)]
    monkeypatch.setattr("sys.stderr", None)  # started with 2>&-
    with sync_client(api) as client:
        assert len(client.embed_many(["t1"], show_progress=True)) == 1


# --- rate limits that ask for nothing, or for too much ---------------------------------------------


class RateLimitWindow:
    """429 with ``Retry-After: 0`` for every request during ``seconds`` of the fake clock."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        self.clock, self.until = clock, clock.now + seconds
        self.statuses: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            limited = self.clock.now < self.until
            self.statuses.append(429 if limited else 200)
        if limited:
            body = error_body("too_many_requests", "rate_limit")
            return respond(429, body, {"Retry-After": "0"})
        return echo(request)


def test_a_retry_after_of_zero_is_back_pressure_not_an_invitation() -> None:
    clock = FakeClock()
    window = RateLimitWindow(clock, 2.0)
    api = FakeAPI(default=window)
    with sync_client(api, clock) as client:
        results = within_deadline(lambda: client.embed_many([f"t{i}" for i in range(200)]))
    assert [r.embedding[0] for r in results] == [float(i) for i in range(200)]  # none failed
    # Measured on the old client: about 3,100 requests in such a window. Every request waits at
    # least RATE_LIMIT_MIN_WAIT after a 429, so the window sees a few waves at most.
    assert window.statuses.count(429) <= 3 * 32
    assert all(s >= RATE_LIMIT_MIN_WAIT * 0.25 or s == 0 for s in clock.sleeps)


async def test_async_retry_after_of_zero_is_back_pressure() -> None:
    clock = FakeClock()
    window = RateLimitWindow(clock, 2.0)
    async with async_client(FakeAPI(default=window), clock) as client:
        results = await client.embed_many([f"t{i}" for i in range(200)])
    assert len(results) == 200
    assert window.statuses.count(429) <= 3 * 32


@pytest.fixture
def system_clock_is(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Clients on the default clock (which share rate-limit models) read and sleep on a fake."""
    clock = FakeClock()
    monkeypatch.setattr(SystemClock, "time", lambda self: clock.time())
    monkeypatch.setattr(SystemClock, "monotonic", lambda self: clock.monotonic())
    monkeypatch.setattr(SystemClock, "sleep", lambda self, seconds: clock.sleep(seconds))

    async def asleep(self: SystemClock, seconds: float) -> None:
        clock.sleep(seconds)

    monkeypatch.setattr(SystemClock, "asleep", asleep)
    return clock


def test_a_huge_retry_after_gives_up_at_once_and_does_not_poison_the_process(
    system_clock_is: FakeClock,
) -> None:
    clock = system_clock_is
    blocked = respond(429, error_body("too_many_requests", "rate_limit"), {"Retry-After": "86400"})
    api = FakeAPI(script=[blocked])

    def client() -> AurousClient:
        return AurousClient(
            API_KEY, base_url=BASE_URL, http_client=httpx.Client(transport=httpx.MockTransport(api))
        )

    with client() as first, pytest.raises(RateLimitError) as info:
        first.embed("a")
    assert clock.sleeps == []  # no wait at all: the server asked for a day
    assert info.value.retry_after == 86400
    assert "86400" in str(info.value) and "gave up" in str(info.value)
    with client() as second:  # the same key in the same process: the block was capped ...
        second.embed("b")
    assert sum(clock.sleeps) <= MAX_RETRY_AFTER
    waited = len(clock.sleeps)
    with client() as third:  # ... and forgotten once over
        third.embed("c")
    assert len(clock.sleeps) == waited


def test_a_huge_retry_after_stops_a_batch_early() -> None:
    blocked = respond(429, error_body("too_many_requests", "rate_limit"), {"Retry-After": "86400"})
    api = FakeAPI(default=lambda r: blocked)
    clock = FakeClock()
    with (
        sync_client(api, clock, max_concurrency=4) as client,
        pytest.raises(RateLimitError) as info,
    ):
        client.embed_many([f"t{i}" for i in range(200)])
    assert isinstance(info.value, BatchStoppedError)
    assert len(api.requests) <= 8
    assert sum(clock.sleeps) <= MAX_RETRY_AFTER


# --- an answer cut short -------------------------------------------------------------------------


def cut_short(request: httpx.Request) -> httpx.Response:
    """A 200 whose body ends half way (what a close-delimited answer cut by a proxy reads as)."""
    content = json.dumps(embedding_body([0.5, 0.25])).encode()
    return httpx.Response(200, content=content[: len(content) // 2])


def test_a_success_cut_mid_body_is_retried_with_the_same_key_and_charged_once() -> None:
    replay = respond(
        body=embedding_body([0.5, 0.25], credits=0.25),
        headers={"Aurous-Idempotent-Replayed": "true"},
    )
    api = FakeAPI(script=[cut_short, replay])
    with sync_client(api) as client:
        result = client.embed("x")
        assert result.embedding == [0.5, 0.25] and result.replayed
        assert client.usage.credits_charged == pytest.approx(0.25)  # the cut attempt's one charge
    keys = {r.headers["idempotency-key"] for r in api.requests}
    assert len(api.requests) == 2 and len(keys) == 1


# --- a source that raises --------------------------------------------------------------------------


def forty_then_broken() -> Iterator[str]:
    for i in range(40):
        yield f"t{i}"
    raise RuntimeError("the source broke")


def test_embed_iter_hands_back_everything_the_source_produced_then_raises() -> None:
    api = FakeAPI(default=echo)
    got: list[float] = []

    def consume(client: AurousClient) -> None:
        for result in client.embed_iter(forty_then_broken()):
            got.append(result.embedding[0])

    with sync_client(api) as client, pytest.raises(RuntimeError, match="the source broke"):
        consume(client)
    assert got == [float(i) for i in range(40)]  # measured before: 32 of 40


async def test_async_embed_iter_hands_back_everything_the_source_produced() -> None:
    async def async_forty() -> AsyncIterator[str]:
        for i in range(40):
            yield f"t{i}"
        raise RuntimeError("the source broke")

    async def consume(client: AsyncAurousClient, source: Any, got: list[float]) -> None:
        async for result in client.embed_iter(source()):
            got.append(result.embedding[0])

    for source in (forty_then_broken, async_forty):
        got: list[float] = []
        async with async_client(FakeAPI(default=echo)) as client:
            with pytest.raises(RuntimeError, match="the source broke"):
                await consume(client, source, got)
        assert got == [float(i) for i in range(40)]


# --- the cache knows where a vector came from --------------------------------------------------


def test_the_cache_never_hands_one_endpoints_vectors_to_another(tmp_path: Path) -> None:
    cache = tmp_path / "shared.sqlite"
    emulator, live = FakeAPI(default=echo), FakeAPI(default=echo)
    with sync_client(emulator, base_url="http://127.0.0.1:8787/v1", cache=cache) as client:
        client.embed_many(["t1", "t2"])
    with sync_client(live, base_url=BASE_URL, cache=cache) as client:
        results = client.embed_many(["t1", "t2"])
    assert len(live.requests) == 2 and not any(r.cached for r in results)
    with sync_client(live, base_url=BASE_URL, cache=cache) as client:
        assert all(r.cached for r in client.embed_many(["t1", "t2"]))  # its own entries: hits


# --- a stopped call's lanes are never lent again ---------------------------------------------------


def test_a_lane_whose_call_was_stopped_is_retired_not_lent_to_another_call() -> None:
    from aurous_embed._connections import Lanes
    from aurous_embed._http import SyncRequester
    from aurous_embed._scopes import CallScope
    from aurous_embed._secrets import Secret
    from aurous_embed._wire import HTTPSettings

    stopped = CallScope()
    entered, release = threading.Event(), threading.Event()

    def slow(request: httpx.Request) -> httpx.Response:
        entered.set()
        release.wait(DEADLINE)
        return respond()

    made: list[httpx.MockTransport] = []

    def new_lane() -> httpx.MockTransport:
        made.append(httpx.MockTransport(slow))
        return made[-1]

    lanes: Lanes[Any] = Lanes(new_lane)
    settings = HTTPSettings(BASE_URL, Secret(API_KEY), None, 0, FakeClock())
    requester = SyncRequester(settings, None, lanes=lanes)
    outcome: dict[str, Any] = {}

    def send() -> None:
        try:
            requester.request("POST", "/embeddings", content=b"{}", scope=stopped)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=send)
    thread.start()
    assert entered.wait(DEADLINE)
    stopped.stop()
    release.set()
    thread.join(DEADLINE)
    assert made and made[0] not in lanes.every()  # its socket may be shut: never lent again
    requester.request("POST", "/embeddings", content=b"{}")  # another call gets a fresh lane
    assert len(made) == 2


def test_a_request_waiting_for_the_pacer_is_not_sent_once_its_batch_is_halted() -> None:
    """The batch stops while a first attempt waits out a long rate limit: the wait ends at once and
    nothing is sent (measured before: the wait ran its 60 s, then the request was skipped)."""
    from aurous_embed._http import Pacing, SyncRequester
    from aurous_embed._scopes import CallScope
    from aurous_embed._secrets import Secret
    from aurous_embed._wire import HTTPSettings

    scope = CallScope()
    cause = RateLimitError("gave up: the server asked to wait 86400 s", status_code=429)

    class HaltingClock(FakeClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            scope.halt(cause)  # another input of the batch got the 429 meanwhile

    class Blocked:
        def reserve(self, tokens: float, now: float, *, waited: float = 0.0) -> tuple[float, None]:
            return max(0.0, 60.0 - waited), None  # a pacer lets a request go after 60 s

    api = FakeAPI()
    clock = HaltingClock()
    settings = HTTPSettings(BASE_URL, Secret(API_KEY), None, 0, clock)
    requester = SyncRequester(settings, httpx.Client(transport=httpx.MockTransport(api)))
    with pytest.raises(RateLimitError) as caught:
        requester.request(
            "POST",
            "/embeddings",
            content=b"{}",
            scope=scope,
            pacing=Pacing(Blocked()),  # type: ignore[arg-type]
        )
    assert caught.value.skipped and not api.requests
    assert sum(clock.sleeps) <= 0.25  # one step of the wait, not 60 s


def test_only_the_servers_answers_halt_a_batch() -> None:
    """A budget stop keeps the batch from taking more inputs; inputs already holding their share
    are still sent (halting them too made 19 of the 20 that fit go, now and then)."""
    from aurous_embed import AuthenticationError, BudgetExceededError
    from aurous_embed._scopes import CallScope

    scope = CallScope()
    scope.halt(BudgetExceededError("over", results=[], credits_spent=0.01, max_credits=0.01))
    assert scope.halt_error() is None
    scope.halt(AuthenticationError("bad key", status_code=401))
    halted = scope.halt_error()
    assert isinstance(halted, AuthenticationError) and halted.skipped


@pytest.mark.parametrize(
    ("first", "resent"),
    [
        (respond(429, error_body("too_many_requests", "rate_limit"), {"Retry-After": "1"}), False),
        (respond(500, error_body("internal_error", "server_error")), True),
    ],
)
def test_a_halt_keeps_a_retry_from_going_only_when_nothing_was_processed(
    first: httpx.Response, resent: bool
) -> None:
    """After a 429 nothing of the call was processed: once the batch is halted (another input got
    a rate limit of a day), the retry is not sent (measured before: it waited 60 s, then went).
    After a 5xx the retry goes: the server may have done the work, and the retry gets it."""
    from aurous_embed._http import SyncRequester
    from aurous_embed._scopes import CallScope
    from aurous_embed._secrets import Secret
    from aurous_embed._wire import HTTPSettings

    scope = CallScope()
    cause = RateLimitError("gave up: the server asked to wait 86400 s", status_code=429)

    class HaltingClock(FakeClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            scope.halt(cause)  # another input of the batch got the day-long 429 meanwhile

    api = FakeAPI(script=[first])
    clock = HaltingClock()
    settings = HTTPSettings(BASE_URL, Secret(API_KEY), None, 4, clock)
    requester = SyncRequester(settings, httpx.Client(transport=httpx.MockTransport(api)))
    if resent:
        requester.request("POST", "/embeddings", content=b"{}", scope=scope)
        assert len(api.requests) == 2
    else:
        with pytest.raises(RateLimitError) as caught:
            requester.request("POST", "/embeddings", content=b"{}", scope=scope)
        assert caught.value.skipped and len(api.requests) == 1
        assert sum(clock.sleeps) <= 0.25  # the wait for the retry ended with the halt
