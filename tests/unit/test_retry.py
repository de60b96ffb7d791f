"""Retry policy (pure functions, by table) and the retry loops (sync and async) around it."""

from __future__ import annotations

import email.utils
from typing import Any

import httpx
import pytest

from aurous_embed import (
    APIConnectionError,
    APITimeoutError,
    AsyncAurousClient,
    BadRequestError,
    IdempotencyConflictError,
    InternalServerError,
    RateLimitError,
)
from aurous_embed._errors import error_from_response
from aurous_embed._retry import RetryState, backoff, decide, parse_reset, parse_retry_after
from tests.helpers import settle
from tests.unit.conftest import (
    FakeAPI,
    FakeClock,
    MakeClient,
    error_body,
    respond,
)

NOW = 1_800_000_000.0


def rate_limited(
    headers: dict[str, str], code: str = "too_many_requests", status: int = 429
) -> RateLimitError:
    error = error_from_response(
        status,
        httpx.Headers(headers),
        httpx.Response(status, json=error_body(code, "rate_limit")).content,
    )
    assert isinstance(error, RateLimitError)
    return error


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "12"}, 12.0),
        ({"Retry-After": "0.25"}, 0.25),
        ({"Retry-After": " 3 "}, 3.0),
        ({"Retry-After": "-4"}, 0.0),
        ({"Retry-After": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"Retry-After": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(httpx.Headers(headers), NOW) == expected


@pytest.mark.parametrize(
    ("headers", "tpm", "expected"),
    [
        ({"X-RateLimit-Reset": str(int(NOW) + 9)}, False, 9.0),
        ({"RateLimit-Reset": "5"}, False, 5.0),  # unprefixed spelling, delta seconds
        ({"X-RateLimit-Reset": str(int(NOW) - 9)}, False, 0.0),
        (
            {"X-RateLimit-TPM-Reset": str(int(NOW) + 20), "X-RateLimit-Reset": str(int(NOW) + 2)},
            True,
            20.0,
        ),
        ({"X-RateLimit-Reset": "garbage"}, False, None),
        ({}, False, None),
    ],
)
def test_parse_reset(headers: dict[str, str], tpm: bool, expected: float | None) -> None:
    assert parse_reset(httpx.Headers(headers), NOW, tpm=tpm) == expected


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(0, 0.0, 1.0), (1, 0.0, 2.0), (3, 0.0, 8.0), (3, 1.0, 6.0), (10, 0.0, 30.0)],
)
def test_backoff(attempt: int, rand: float, expected: float) -> None:
    assert backoff(attempt, initial=1.0, maximum=30.0, rand=rand) == expected


def server_error(status: int, code: str = "internal_error") -> InternalServerError:
    error = error_from_response(
        status,
        httpx.Headers(),
        httpx.Response(status, json=error_body(code, "server_error")).content,
    )
    assert isinstance(error, InternalServerError)
    return error


def conflict() -> IdempotencyConflictError:
    error = error_from_response(
        409, httpx.Headers(), httpx.Response(409, json=error_body("idempotency_key_in_use")).content
    )
    assert isinstance(error, IdempotencyConflictError)
    return error


ZERO = lambda: 0.0  # noqa: E731 - no jitter in tables


@pytest.mark.parametrize(
    ("error", "state", "delay"),
    [
        (rate_limited({"Retry-After": "7"}), RetryState(), 7.0),
        (rate_limited({"Retry-After": "7"}), RetryState(retries=4), 7.0),  # not a failure
        (rate_limited({"Retry-After": "7"}), RetryState(rate_limit_retries=39), 7.0),
        (rate_limited({"Retry-After": "7"}), RetryState(rate_limit_retries=40), None),  # 10 x 4
        (rate_limited({"Retry-After": "7"}), RetryState(rate_limit_wait=295.0), None),  # 300 s
        (rate_limited({"Retry-After": "60"}), RetryState(), 60.0),  # the cap
        (rate_limited({"Retry-After": "61"}), RetryState(), None),  # longer: give up at once
        (rate_limited({"Retry-After": "600"}), RetryState(), None),
        (rate_limited({"Retry-After": "0"}), RetryState(), 1.0),  # 0 is not "now": a floor
        (rate_limited({"Retry-After": "0.2"}), RetryState(rate_limit_retries=3), 1.0),
        (rate_limited({"X-RateLimit-Reset": str(int(NOW) - 5)}), RetryState(), 1.0),  # past
        (rate_limited({"X-RateLimit-Reset": str(int(NOW) + 4)}), RetryState(), 4.0),
        (rate_limited({}), RetryState(rate_limit_retries=2), 4.0),  # no hint: backoff
        (rate_limited({"Retry-After": "2"}, "provider_rate_limited", 503), RetryState(), 2.0),
        (server_error(500), RetryState(), 1.0),
        (server_error(502, "embeddings_provider_unknown_error"), RetryState(retries=1), 2.0),
        (server_error(504), RetryState(retries=3), 8.0),
        (APITimeoutError(), RetryState(), 1.0),
        (APIConnectionError(may_have_reached_server=False), RetryState(retries=1), 2.0),
        (error_from_response(400, httpx.Headers(), b"{}"), RetryState(), None),
        (error_from_response(401, httpx.Headers(), b"{}"), RetryState(), None),
        (error_from_response(402, httpx.Headers(), b"{}"), RetryState(), None),
        (error_from_response(403, httpx.Headers(), b"{}"), RetryState(), None),
        (error_from_response(404, httpx.Headers(), b"{}"), RetryState(), None),
        (error_from_response(422, httpx.Headers(), b"{}"), RetryState(), None),
        # 409: only while an earlier attempt may still run, 0.5 s doubling to 8 s, own budget
        (conflict(), RetryState(), None),
        (conflict(), RetryState(maybe_in_flight=True), 0.5),
        (conflict(), RetryState(maybe_in_flight=True, conflict_retries=2, retries=4), 2.0),
        (conflict(), RetryState(maybe_in_flight=True, conflict_retries=9), 8.0),
        (conflict(), RetryState(maybe_in_flight=True, conflict_wait=60.0), None),
    ],
)
def test_decide(error: Exception, state: RetryState, delay: float | None) -> None:
    decision = decide(error, state, max_retries=4, now=NOW, rand=ZERO)  # type: ignore[arg-type]
    assert decision.delay == delay


def test_transport_error_marks_the_call_as_maybe_in_flight() -> None:
    decision = decide(APITimeoutError(), RetryState(), max_retries=4, now=NOW, rand=ZERO)
    assert decision.state.maybe_in_flight
    refused = decide(
        APIConnectionError(may_have_reached_server=False),
        RetryState(),
        max_retries=4,
        now=NOW,
        rand=ZERO,
    )
    assert not refused.state.maybe_in_flight


# --- the loops ---------------------------------------------------------------------------------


async def test_same_idempotency_key_on_every_retry_and_retry_after_honoured(
    any_client: Any, api: FakeAPI, clock: FakeClock
) -> None:
    api.script = [
        respond(429, error_body("too_many_requests", "rate_limit"), {"Retry-After": "3"}),
        respond(503, error_body("provider_rate_limited", "rate_limit"), {"Retry-After": "1"}),
        respond(500, error_body("internal_error", "server_error")),
        httpx.ReadTimeout("slow"),
        respond(),
    ]
    result = await settle(any_client.embed("x"))
    keys = {r.headers["idempotency-key"] for r in api.requests}
    assert len(api.requests) == 5
    assert len(keys) == 1
    assert result.idempotency_key in keys
    assert clock.sleeps[:2] == [3.0, 1.0]  # Retry-After exactly
    assert 0.75 <= clock.sleeps[2] <= 1.0  # first failure: backoff 1 s with jitter
    assert 1.5 <= clock.sleeps[3] <= 2.0  # second failure: 2 s (rate-limit waits are not failures)
    assert len({r.content for r in api.requests}) == 1  # identical body every time


async def test_no_retry_on_400(any_client: Any, api: FakeAPI, clock: FakeClock) -> None:
    api.default = lambda request: respond(
        400, error_body("embeddings_input_too_large", param="input")
    )
    with pytest.raises(BadRequestError) as info:
        await settle(any_client.embed("x"))
    assert info.value.code == "embeddings_input_too_large"
    assert len(api.requests) == 1
    assert clock.sleeps == []


async def test_max_retries_counts_retries_not_attempts(api: FakeAPI, make: MakeClient) -> None:
    api.default = lambda request: respond(500, error_body("internal_error", "server_error"))
    with pytest.raises(InternalServerError):
        await settle(make(max_retries=2).embed("x"))
    assert len(api.requests) == 3


async def test_rate_limit_waits_do_not_use_up_max_retries(api: FakeAPI, make: MakeClient) -> None:
    limited = respond(429, error_body("too_many_requests", "rate_limit"), {"Retry-After": "1"})
    failed = respond(500, error_body("internal_error", "server_error"))
    api.script = [limited, limited, failed, limited, failed, limited, limited, respond()]
    await settle(make(max_retries=2).embed("x"))
    assert len(api.requests) == 8  # 5 rate-limit waits + 2 failure retries


async def test_max_retries_zero_sends_once(api: FakeAPI, make: MakeClient) -> None:
    api.default = lambda request: respond(
        429, error_body("too_many_requests", "rate_limit"), {"Retry-After": "1"}
    )
    with pytest.raises(RateLimitError):
        await settle(make(max_retries=0).embed("x"))
    assert len(api.requests) == 1


async def test_connection_errors_become_typed_after_retries(any_client: Any, api: FakeAPI) -> None:
    api.default = lambda request: (_ for _ in ()).throw(httpx.ConnectError("refused"))
    with pytest.raises(APIConnectionError) as info:
        await settle(any_client.embed("x"))
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert len(api.requests) == 5


async def test_timeout_becomes_api_timeout_error(any_client: Any, api: FakeAPI) -> None:
    api.default = lambda request: (_ for _ in ()).throw(httpx.ReadTimeout("slow"))
    with pytest.raises(APITimeoutError):
        await settle(any_client.embed("x"))


async def test_409_after_a_lost_answer_waits_for_the_replay(
    any_client: Any, api: FakeAPI, clock: FakeClock
) -> None:
    api.script = [
        httpx.ReadTimeout("first attempt still running"),
        respond(409, error_body("idempotency_key_in_use")),
        respond(409, error_body("idempotency_key_in_use")),
        respond(headers={"Aurous-Idempotent-Replayed": "true"}),
    ]
    result = await settle(any_client.embed("x"))
    assert result.replayed
    assert clock.sleeps[1:] == [0.5, 1.0]
    assert len({r.headers["idempotency-key"] for r in api.requests}) == 1
    # the replay stands for the first attempt's charge: counted once
    assert any_client.usage.credits_charged == pytest.approx(0.00005625)


async def test_409_on_a_fresh_call_is_not_retried(any_client: Any, api: FakeAPI) -> None:
    api.default = lambda request: respond(409, error_body("idempotency_key_in_use"))
    with pytest.raises(IdempotencyConflictError):
        await settle(any_client.embed("x", idempotency_key="reused-with-another-body"))
    assert len(api.requests) == 1


async def test_explicit_replay_costs_nothing_in_usage(any_client: Any, api: FakeAPI) -> None:
    api.script = [respond(), respond(headers={"Aurous-Idempotent-Replayed": "true"})]
    await settle(any_client.embed("x", idempotency_key="k1"))
    await settle(any_client.embed("x", idempotency_key="k1"))
    usage = any_client.usage
    assert usage.requests == 2
    assert usage.credits_charged == pytest.approx(0.00005625)
    assert usage.prompt_tokens == 3


async def test_async_loop_same_key_and_retry_after(
    aclient: AsyncAurousClient, api: FakeAPI, clock: FakeClock
) -> None:
    api.script = [
        respond(429, error_body("tpm_rate_limit_exceeded", "rate_limit"), {"Retry-After": "2"}),
        httpx.RemoteProtocolError("reset"),
        respond(),
    ]
    async with aclient:
        result = await aclient.embed("x")
    assert len({r.headers["idempotency-key"] for r in api.requests}) == 1
    assert clock.sleeps[0] == 2.0
    assert result.embedding == [0.1, 0.2, 0.3]
