"""The throughput engine: AIMD controller, header-driven pacing, streaming, numpy output, progress."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aurous_embed import (
    AsyncAurousClient,
    AuthenticationError,
    BatchEmbeddingError,
    InputValidationError,
    MissingDependencyError,
    SystemClock,
)
from aurous_embed._batch import CHUNK, Controller, Outcome, Window
from aurous_embed._pacing import Pacer
from aurous_embed.testing import Emulator
from tests.helpers import Flavour, close, close_stream, collect, each, make_client, next_of, settle
from tests.unit.conftest import (
    API_KEY,
    BASE_URL,
    FakeAPI,
    FakeClock,
    MakeClient,
    embedding_body,
    error_body,
    respond,
)


def vector_of(request: httpx.Request) -> httpx.Response:
    text = json.loads(request.content)["input"]
    return respond(body=embedding_body([float(text[1:]), 1.0], credits=0.25))


def too_large_at(text: str) -> Callable[[httpx.Request], httpx.Response]:
    """Numbered vectors, except the input ``text``: 400 ``embeddings_input_too_large``."""

    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["input"] == text:
            return respond(400, error_body("embeddings_input_too_large", param="input"))
        return vector_of(request)

    return handler


def assert_kept_going(out: list[Any]) -> None:
    """``embed_iter(["t0", "t1", "", "t3", "t4"], return_exceptions=True)`` with ``t3`` too large."""
    assert [type(x).__name__ for x in out] == [
        "EmbeddingResult",
        "EmbeddingResult",
        "InputValidationError",
        "InputTooLargeError",
        "EmbeddingResult",
    ]
    assert out[3].index == 3
    assert out[4].embedding == [4.0, 1.0]


def assert_rows_kept(error: BatchEmbeddingError) -> None:
    """``embed_many([t0..t3], as_numpy=True)`` with ``t2`` too large keeps the other rows."""
    results = error.results
    assert len(results) == 4
    assert results[2] is None
    assert results[3] is not None and results[3].embedding == [3.0, 1.0]
    assert list(error.errors) == [2]


# --- controller ----------------------------------------------------------------------------------


def test_controller_slow_start_then_additive_increase_and_halving() -> None:
    ctl = Controller(64, initial=4)
    assert ctl.limit == 4
    for _ in range(4):
        ctl.success()
    assert ctl.limit == 8  # slow start: +1 per success doubles per window
    ctl.rate_limited()
    assert ctl.limit == 4  # halved
    ctl.rate_limited()
    assert ctl.limit == 4  # the same window's other 429s do not halve again
    for _ in range(5):
        ctl.success()
    assert ctl.limit == 5  # congestion avoidance: about +1 per window (4 + 1/4 + 1/4.25 + ...)
    for _ in range(10_000):
        ctl.success()
    assert ctl.limit == 64  # capped at max_concurrency
    ctl.rate_limited()
    assert ctl.limit == 32


def test_controller_starts_at_the_default_maximum_concurrency() -> None:
    assert Controller(64).limit == 32  # no ramp-up from a lower start; above 32, slow start
    assert Controller(8).limit == 8


def test_controller_never_below_one() -> None:
    ctl = Controller(8, initial=1)
    for _ in range(5):
        ctl.rate_limited()
        for _ in range(3):
            ctl.success()
    assert ctl.limit >= 1


# --- pacer ---------------------------------------------------------------------------------------


def test_pacer_without_headers_never_waits() -> None:
    pacer = Pacer()
    _, ticket = pacer.reserve(10, 0.0)
    pacer.observe(200, {}, ticket, 0.0, 0.0)  # an answer without rate-limit headers
    for _ in range(1000):
        wait, ticket = pacer.reserve(10, 0.0)
        assert (wait, ticket is not None) == (0.0, True)


def test_pacer_learns_the_refill_rate_and_spaces_requests() -> None:
    pacer = Pacer(probe=0)
    epoch = 1_800_000_000.0
    for _ in range(120):
        _, ticket = pacer.reserve(1, 0.0)
    # bucket of 120, emptied by this process, full again in 12 s: refills 10 per second
    headers = {
        "x-ratelimit-limit": "120",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(epoch + 12),
    }
    pacer.observe(200, headers, ticket, 0.0, epoch)
    wait, ticket = pacer.reserve(1, 0.0)
    assert ticket is None
    assert wait == pytest.approx(0.1)
    wait, ticket = pacer.reserve(1, 0.1)
    assert (wait, ticket is not None) == (0.0, True)
    wait, _ = pacer.reserve(1, 0.1)
    assert wait == pytest.approx(0.1)


def test_pacer_counts_requests_sent_after_the_observed_one() -> None:
    pacer = Pacer()
    epoch = 1_800_000_000.0
    _, first = pacer.reserve(1, 0.0)
    for _ in range(3):
        pacer.reserve(1, 0.0)  # three more in flight before the first answer arrives
    headers = {
        "x-ratelimit-limit": "10",
        "x-ratelimit-remaining": "3",
        "x-ratelimit-reset": str(epoch + 7),
    }
    pacer.observe(200, headers, first, 0.0, epoch)
    wait, _ = pacer.reserve(1, 0.0)
    assert wait > 0  # 3 left when the first was served, minus the 3 sent since: none


def test_pacer_tpm_bucket_and_retry_after_block() -> None:
    pacer = Pacer()
    epoch = 1_800_000_000.0
    _, ticket = pacer.reserve(500, 0.0)
    headers = {
        "x-ratelimit-tpm-limit": "1000",
        "x-ratelimit-tpm-remaining": "200",
        "x-ratelimit-tpm-reset": str(epoch + 8),
    }
    pacer.observe(200, headers, ticket, 0.0, epoch)
    wait, _ = pacer.reserve(500, 0.0)
    assert wait == pytest.approx(3.0)  # 300 missing tokens at 100 tokens/s
    pacer.observe(429, {"retry-after": "5"}, None, 0.0, epoch)
    wait, _ = pacer.reserve(1, 4.0)
    assert wait == pytest.approx(1.0)  # blocked by Retry-After for everyone


class BucketAPI:
    """A fake server with a real token bucket on the fake clock, sending the documented headers."""

    def __init__(self, clock: FakeClock, capacity: int, per_second: float) -> None:
        self.clock, self.capacity, self.rate = clock, capacity, per_second
        self.tokens, self.at = float(capacity), clock.now
        self.statuses: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            now = self.clock.now
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
            self.at = now
            ok = self.tokens >= 1
            if ok:
                self.tokens -= 1
            headers = {
                "X-RateLimit-Limit": str(self.capacity),
                "X-RateLimit-Remaining": str(int(self.tokens)),
                "X-RateLimit-Reset": str(
                    math.ceil(now + (self.capacity - self.tokens) / self.rate)
                ),
            }
            if not ok:
                headers["Retry-After"] = str(math.ceil((1 - self.tokens) / self.rate))
            self.statuses.append(200 if ok else 429)
        if ok:
            return respond(headers=headers)
        return respond(429, error_body("too_many_requests", "rate_limit"), headers)


async def test_sequential_calls_are_paced_instead_of_bouncing_off_429s(
    api: FakeAPI, clock: FakeClock, make: MakeClient
) -> None:
    server = BucketAPI(clock, capacity=5, per_second=2.0)
    api.default = server
    client = make()
    for i in range(60):
        await settle(client.embed(f"t{i}"))
    assert server.statuses.count(429) <= 1
    elapsed = clock.now - 1_800_000_000.0
    assert elapsed == pytest.approx((60 - 5) / 2.0, rel=0.1)  # at the refill rate, not slower


@pytest.fixture
def system_clock_is(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> FakeClock:
    """Clients on the default clock (which share rate-limit models) read and sleep on ``clock``."""
    monkeypatch.setattr(SystemClock, "time", lambda self: clock.time())
    monkeypatch.setattr(SystemClock, "monotonic", lambda self: clock.monotonic())
    monkeypatch.setattr(SystemClock, "sleep", lambda self, seconds: clock.sleep(seconds))

    async def asleep(self: SystemClock, seconds: float) -> None:
        clock.sleep(seconds)

    monkeypatch.setattr(SystemClock, "asleep", asleep)
    return clock


async def test_clients_with_one_key_share_what_they_learnt_of_its_buckets(
    system_clock_is: FakeClock, flavour: Flavour
) -> None:
    clock = system_clock_is
    server = BucketAPI(clock, capacity=5, per_second=2.0)

    def client(key: str = API_KEY, kind: Flavour = flavour) -> Any:
        return make_client(kind, key, handler=server, base_url=BASE_URL)  # on the default clock

    first = client()
    for i in range(5):
        await settle(first.embed(f"a{i}"))  # the burst: the bucket is empty now, and it was told
    await close(first)
    assert server.statuses == [200] * 5 and clock.sleeps == []
    second = client()  # a new client, the same key: it knows, and waits for the refill
    for i in range(4):
        await settle(second.embed(f"b{i}"))
    await close(second)
    assert server.statuses[5:] == [200] * 4
    # About the refill rate, 2 per second (the model leans low: resets come in whole seconds).
    assert 4 / 2.0 <= sum(clock.sleeps) <= 1.3 * 4 / 2.0

    other_flavour = client(kind="async" if flavour == "sync" else "sync")
    await settle(other_flavour.embed("c"))  # the other kind of client shares the model too
    await close(other_flavour)
    assert server.statuses[9:] == [200]

    waits = len(clock.sleeps)
    other = client("al_live_" + "f" * 64)  # another key's buckets are not this one's
    await settle(other.embed("d"))
    await close(other)
    assert len(clock.sleeps) == waits  # so it does not wait (this fake has one bucket for all keys)


async def test_a_client_on_an_injected_clock_keeps_its_own_rate_limit_model(
    system_clock_is: FakeClock, flavour: Flavour
) -> None:
    clock = system_clock_is
    server = BucketAPI(clock, capacity=2, per_second=1.0)
    for _ in range(2):
        shared = make_client(flavour, API_KEY, handler=server, base_url=BASE_URL)
        await settle(shared.embed("a"))
        await close(shared)
    own = make_client(
        flavour,
        API_KEY,
        handler=server,
        base_url=BASE_URL,
        clock=clock,  # injected (that it tells the same time here is not for the client to know)
    )
    await settle(own.embed("b"))
    await close(own)
    assert server.statuses == [200, 200, 429, 200]  # it learnt from its own 429, nothing shared


# --- streaming -----------------------------------------------------------------------------------


async def test_embed_iter_streams_in_order_with_bounded_lookahead(
    any_client: Any, api: FakeAPI
) -> None:
    api.default = vector_of
    pulled = 0

    def source() -> Iterator[str]:
        nonlocal pulled
        for i in range(5000):
            pulled += 1
            yield f"t{i}"

    seen = 0
    async for result in each(any_client.embed_iter(source(), concurrency=4)):
        assert result.embedding[0] == float(seen)
        seen += 1
        assert pulled - seen <= CHUNK + 4 * 4  # never runs far ahead of the consumer
    assert seen == 5000


async def test_embed_iter_break_stops_sending(any_client: Any, api: FakeAPI) -> None:
    api.default = vector_of
    stream = any_client.embed_iter((f"t{i}" for i in range(100_000)), concurrency=4)
    first = [await next_of(stream) for _ in range(10)]
    await close_stream(stream)
    assert [r.embedding[0] for r in first] == list(map(float, range(10)))
    assert len(api.requests) < 600


async def test_embed_iter_raises_at_the_bad_item_after_earlier_results(
    any_client: Any, api: FakeAPI
) -> None:
    api.default = vector_of
    got: list[float] = []
    with pytest.raises(InputValidationError) as info:  # noqa: PT012 - the loop is the subject
        async for result in each(any_client.embed_iter(["t0", "t1", "", "t3"])):
            got.append(result.embedding[0])
    assert got == [0.0, 1.0]
    assert (info.value.index, info.value.param) == (2, "input")


async def test_embed_iter_return_exceptions_keeps_going(any_client: Any, api: FakeAPI) -> None:
    api.default = too_large_at("t3")
    stream = any_client.embed_iter(["t0", "t1", "", "t3", "t4"], return_exceptions=True)
    assert_kept_going(await collect(stream))


async def test_async_embed_iter_from_an_async_generator(
    aclient: AsyncAurousClient, api: FakeAPI
) -> None:
    """Async only: the sync client takes no async iterables."""
    api.default = vector_of

    async def source() -> AsyncIterator[str]:
        for i in range(700):
            yield f"t{i}"

    async with aclient:
        values = [r.embedding[0] async for r in aclient.embed_iter(source(), concurrency=8)]
    assert values == list(map(float, range(700)))


@pytest.mark.allow_hosts(["127.0.0.1"])
async def test_embed_as_completed_hands_out_results_as_they_finish(
    flavour: Flavour, aurous_emulator_factory: Callable[..., Emulator]
) -> None:
    emulator = aurous_emulator_factory()
    emulator.queue_faults("slow=60")  # the first request the emulator gets is held until released
    client = make_client(flavour, emulator.api_key, base_url=emulator.base_url)
    stream = client.embed_as_completed([f"t{i}" for i in range(8)], concurrency=4)
    try:
        early = [await next_of(stream) for _ in range(7)]  # while one request is still held
        assert emulator.stats.slow_in_flight == 1
    finally:
        emulator.release_slow()
    last = await next_of(stream)
    await close_stream(stream)
    assert sorted(i for i, _ in [*early, last]) == list(range(8))
    assert last[0] not in {i for i, _ in early}
    for index, result in [early[0], last]:  # each result is paired with its input's index
        again = await settle(client.embed(f"t{index}"))
        assert result.embedding == again.embedding
    await close(client)


async def test_embed_as_completed_yields_errors_in_place(any_client: Any, api: FakeAPI) -> None:
    api.default = too_large_at("t3")
    pairs = await collect(any_client.embed_as_completed(["t0", "t1", "", "t3", "t4"]))
    by_index = dict(pairs)
    assert sorted(by_index) == [0, 1, 2, 3, 4]
    assert type(by_index[2]).__name__ == "InputValidationError" and by_index[2].index == 2
    assert type(by_index[3]).__name__ == "InputTooLargeError" and by_index[3].index == 3
    assert by_index[4].embedding == [4.0, 1.0]


async def test_usage_counts_what_went_on_the_wire(any_client: Any, api: FakeAPI) -> None:
    """Every attempt is a request sent; a body is counted once however often it is retried, and
    an input refused before sending is not counted at all (bytes were counted when built)."""
    api.script = [respond(500, error_body("internal_error", "server_error"))]
    await settle(any_client.embed("t0"))
    usage = any_client.usage
    assert (usage.requests, usage.requests_sent) == (1, 2)
    assert usage.bytes_sent == len(api.requests[0].content) == len(api.requests[1].content)
    api.default = lambda request: respond(401, error_body("invalid_api_key", "authentication"))
    with pytest.raises(AuthenticationError):
        await settle(any_client.embed("t1"))
    refused = await collect(any_client.embed_as_completed(["", "\x00"]))
    assert all(isinstance(error, InputValidationError) for _, error in refused)
    usage = any_client.usage
    assert usage.requests_sent == len(api.requests) == 3  # the 401 was sent; the refused were not
    assert usage.bytes_sent == sum(len(r.content) for r in api.requests[1:])


@pytest.mark.allow_hosts(["127.0.0.1"])
async def test_a_bad_key_sends_nothing_more_once_the_first_answer_says_so(
    flavour: Flavour, aurous_emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    """Workers that took an input and wait for the pacer's first answer do not send it once that
    answer stopped the batch (measured before: 32 requests, one per worker, with a cache)."""
    emulator = aurous_emulator_factory()
    client = make_client(
        flavour, "al_live_" + "ba" * 32, base_url=emulator.base_url, cache=tmp_path / "c.sqlite"
    )
    with pytest.raises(AuthenticationError) as caught:
        await settle(client.embed_many([f"t{i}" for i in range(200)]))
    await close(client)
    assert emulator.stats.requests <= 4  # the first wave of a fresh process, and no more
    usage = client.usage  # what was sent, not what was built (measured before: 32 bodies)
    assert usage.requests_sent == emulator.stats.requests
    assert usage.bytes_sent <= 100 * emulator.stats.requests  # a body is under 100 bytes
    assert all(e.skipped for i, e in caught.value.errors.items() if i >= 4)  # type: ignore[attr-defined]


def test_an_unordered_window_hands_out_what_finished_and_bounds_what_is_held() -> None:
    window: Window[str, str] = Window(2, Controller(2), ordered=False)
    window.feed(["a", "b", "c"], exhausted=True)
    assert window.next_work() == (0, "a") and window.next_work() == (1, "b")
    window.finish(Outcome(1, value="B"))
    assert window.answered()
    assert window.hand_out() == ([Outcome(1, value="B")], False)  # 0 is still in flight
    assert window.handed == 1 and window.next_out == 0
    ordered: Window[str, str] = Window(2, Controller(2))
    ordered.feed(["a", "b"], exhausted=True)
    ordered.next_work(), ordered.next_work()
    ordered.finish(Outcome(1, value="B"))
    assert not ordered.answered() and ordered.hand_out() is None  # waits for 0


# --- numpy ---------------------------------------------------------------------------------------


async def test_as_numpy(any_client: Any, api: FakeAPI) -> None:
    np = pytest.importorskip("numpy")
    api.default = vector_of
    array = await settle(any_client.embed_many([f"t{i}" for i in range(50)], as_numpy=True))
    assert isinstance(array, np.ndarray)
    assert (array.shape, array.dtype) == ((50, 2), np.float32)
    assert array[:, 0].tolist() == list(map(float, range(50)))


async def test_as_numpy_partial_failure_keeps_rows(any_client: Any, api: FakeAPI) -> None:
    pytest.importorskip("numpy")

    api.default = too_large_at("t2")
    with pytest.raises(BatchEmbeddingError) as info:
        await settle(any_client.embed_many([f"t{i}" for i in range(4)], as_numpy=True))
    assert_rows_kept(info.value)


async def test_as_numpy_without_numpy(
    any_client: Any, api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real = builtins.__import__

    def no_numpy(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "numpy":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_numpy)
    with pytest.raises(MissingDependencyError, match="numpy"):
        await settle(any_client.embed_many(["a"], as_numpy=True))


# --- progress ------------------------------------------------------------------------------------


async def test_show_progress_draws_a_bar_with_credits(
    any_client: Any, api: FakeAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    api.default = vector_of
    seen: list[int] = []
    await settle(
        any_client.embed_many(
            [f"t{i}" for i in range(20)],
            show_progress=True,
            on_progress=lambda d, t, c: seen.append(d),
        )
    )
    err = capsys.readouterr().err
    assert "embedding" in err
    assert "20/20" in err
    assert "credits" in err
    assert seen[-1] == 20  # the user's callback still runs
