"""Fault injection: the header, the queue, seeded random faults, resets, slow responses."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from aurous_embed.testing import Clock, Emulator, Faults
from aurous_embed.testing._faults import FaultInjector, parse_fault_spec
from tests.emulator.helpers import MakeEmulator, body, connect, error_of

FAULT = "Aurous-Emulator-Fault"


@pytest.mark.parametrize(
    ("spec", "status", "code", "type_", "retry_after"),
    [
        ("status=500", 500, "internal_error", "server_error", None),
        ("status=502", 502, "embeddings_provider_unknown_error", "server_error", None),
        ("status=503", 503, "provider_rate_limited", "rate_limit", "1"),
        ("status=503; retry_after=7", 503, "provider_rate_limited", "rate_limit", "7"),
        ("status=504", 504, "provider_timeout", "server_error", None),
        ("status=429", 429, "too_many_requests", "rate_limit", "1"),
        ("rate_limit, retry_after=0", 429, "too_many_requests", "rate_limit", "0"),
    ],
)
def test_header_injects_documented_errors(
    emu: Emulator,
    client: httpx.Client,
    spec: str,
    status: int,
    code: str,
    type_: str,
    retry_after: str | None,
) -> None:
    response = client.post("/embeddings", json=body("hi"), headers={FAULT: spec})
    error = error_of(response, status, code)
    assert error["type"] == type_
    assert response.headers.get("retry-after") == retry_after
    assert emu.ledger == ()
    assert sum(emu.stats.faults.values()) == 1


def test_502_has_the_documented_message(client: httpx.Client) -> None:
    response = client.post("/embeddings", json=body("hi"), headers={FAULT: "status=502"})
    assert response.json()["error"]["message"] == (
        "The embedding provider returned an unrecognized error. Engineering has been notified. "
        "Retry with backoff."
    )


def test_injected_429_reports_an_empty_bucket(client: httpx.Client) -> None:
    response = client.post("/embeddings", json=body("hi"), headers={FAULT: "rate_limit"})
    assert response.headers["x-ratelimit-remaining"] == "0"


def test_status_faults_come_after_validation(client: httpx.Client) -> None:
    response = client.post("/embeddings", json=body(["a", "b"]), headers={FAULT: "status=500"})
    error_of(response, 400, "embeddings_batch_not_supported")


def test_header_works_on_other_routes(client: httpx.Client) -> None:
    error_of(client.get("/models", headers={FAULT: "status=500"}), 500, "internal_error")
    error_of(client.get("/balance", headers={FAULT: "status=503"}), 503, "provider_rate_limited")


@pytest.mark.parametrize("spec", ["status=418", "explode", "slow=fast", "retry_after=-1", "status"])
def test_bad_fault_header_is_400(client: httpx.Client, spec: str) -> None:
    error = error_of(
        client.post("/embeddings", json=body("hi"), headers={FAULT: spec}), 400, "invalid_format"
    )
    assert error["param"] == FAULT


def test_queued_faults_hit_the_next_requests_in_order(emu: Emulator, client: httpx.Client) -> None:
    emu.queue_faults("status=503", "status=502")
    emu.queue_faults("status=500", path="/v1/models")
    assert client.get("/balance").status_code == 200
    statuses = [client.post("/embeddings", json=body("hi")).status_code for _ in range(3)]
    assert statuses == [503, 502, 200]
    assert client.get("/models").status_code == 500
    assert client.get("/models").status_code == 200
    assert emu.stats.faults == {"status=503": 1, "status=502": 1, "status=500": 1}
    with pytest.raises(ValueError, match="directive"):
        emu.queue_faults("nonsense")


def test_random_faults_follow_the_settings(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(faults=Faults(error_rate=1.0, error_statuses=(502,)))
    with connect(emu) as http:
        assert {http.post("/embeddings", json=body("hi")).status_code for _ in range(5)} == {502}
        assert http.get("/models").status_code == 200  # random faults only on their paths
        assert http.post("/embeddings", json=body("hi"), headers={FAULT: "none"}).status_code == 200
    assert emu.stats.charges == 1


def _statuses(seed: int, n: int = 40) -> list[int]:
    faults = Faults(error_rate=0.3, rate_limit_rate=0.1, burst_length=2, seed=seed)
    emu = Emulator(faults=faults, rpm_burst=1000).start()
    try:
        with connect(emu) as http:
            return [http.post("/embeddings", json=body(f"t{i}")).status_code for i in range(n)]
    finally:
        emu.stop()


def test_random_faults_are_reproducible_with_a_seed() -> None:
    first, second, other = _statuses(7), _statuses(7), _statuses(8)
    assert first == second
    assert first != other
    assert set(first) > {200, 429}


def test_rate_limit_bursts_last_burst_length_requests() -> None:
    injector = FaultInjector(Faults(rate_limit_rate=0.15, burst_length=3), seed=3)
    limited = [injector.plan_for("/v1/embeddings", None).rate_limit for _ in range(300)]
    runs, current = [], 0
    for flag in limited:
        if flag:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    assert runs
    assert min(runs) >= 3


def test_injector_reset_replays_the_sequence() -> None:
    injector = FaultInjector(Faults(error_rate=0.5, reset_rate=0.5, slow_rate=0.5), seed=1)
    first = [injector.plan_for("/v1/embeddings", None) for _ in range(20)]
    injector.reset()
    assert [injector.plan_for("/v1/embeddings", None) for _ in range(20)] == first


def test_fault_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        Faults(error_rate=1.5)
    with pytest.raises(ValueError, match="error_statuses"):
        Faults(error_statuses=(404,))
    with pytest.raises(ValueError, match="burst_length"):
        Faults(burst_length=0)
    assert parse_fault_spec("none").empty
    assert repr(Faults()) == "Faults()"


# --- connection resets ----------------------------------------------------------------------
def test_reset_cuts_the_connection_after_processing(emu: Emulator, client: httpx.Client) -> None:
    headers = {"Idempotency-Key": "k-reset", FAULT: "reset"}
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/embeddings", json=body("hi"), headers=headers)
    stats = emu.stats
    assert (stats.charges, stats.faults) == (1, {"reset": 1})
    retry = client.post("/embeddings", json=body("hi"), headers={"Idempotency-Key": "k-reset"})
    assert retry.status_code == 200
    assert retry.headers["aurous-idempotent-replayed"] == "true"
    assert retry.headers["aurous-request-id"] == emu.ledger[0].request_id
    assert emu.stats.charges_by_idempotency_key == {"k-reset": 1}


def test_random_resets(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(faults=Faults(reset_rate=1.0))
    with connect(emu) as http, pytest.raises(httpx.TransportError):
        http.post("/embeddings", json=body("hi"))
    assert emu.stats.charges == 1


# --- slow responses ---------------------------------------------------------------------------
def test_slow_request_is_in_flight_then_replayed(emu: Emulator, client: httpx.Client) -> None:
    headers = {"Idempotency-Key": "k-slow"}
    with ThreadPoolExecutor(1) as pool, connect(emu) as other:
        first = pool.submit(
            other.post, "/embeddings", json=body("hi"), headers={**headers, FAULT: "slow=30"}
        )
        emu.wait_until(lambda s: s.slow_in_flight == 1)
        conflict = client.post("/embeddings", json=body("hi"), headers=headers)
        assert "retry-after" not in conflict.headers
        assert "in flight" in error_of(conflict, 409, "idempotency_key_in_use")["message"]
        assert emu.stats.charges == 0
        emu.release_slow()
        assert first.result().status_code == 200
    replay = client.post("/embeddings", json=body("hi"), headers=headers)
    assert replay.headers["aurous-idempotent-replayed"] == "true"
    assert replay.content == first.result().content
    assert emu.stats.charges == 1


def test_slow_request_commits_even_if_the_client_left(emu: Emulator, client: httpx.Client) -> None:
    # uvicorn does not cancel the app when the client disconnects: the request finishes,
    # is charged and stored, and a retry with the same key gets the replay.
    payload = json.dumps(body("bye")).encode()
    request = (
        f"POST /v1/embeddings HTTP/1.1\r\nHost: emulator\r\nX-Api-Key: {emu.api_key}\r\n"
        f"Idempotency-Key: k-gone\r\n{FAULT}: slow=30\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    with socket.create_connection((emu.host, emu.port)) as raw:
        raw.sendall(request)
        emu.wait_until(lambda s: s.slow_in_flight == 1)
    emu.release_slow()
    stats = emu.wait_until(lambda s: s.in_flight == 0 and s.requests == 1)
    assert stats.charges_by_idempotency_key == {"k-gone": 1}
    replay = client.post("/embeddings", json=body("bye"), headers={"Idempotency-Key": "k-gone"})
    assert replay.headers["aurous-idempotent-replayed"] == "true"
    assert emu.stats.charges == 1


def test_short_slow_fault_finishes_on_its_own(client: httpx.Client) -> None:
    started = time.perf_counter()
    assert (
        client.post("/embeddings", json=body("hi"), headers={FAULT: "slow=0.05"}).status_code == 200
    )
    assert time.perf_counter() - started >= 0.05


def test_latency_setting_delays_requests(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(latency=0.05, jitter=0.01, seed=3)
    with connect(emu) as http:
        started = time.perf_counter()
        assert http.get("/models").status_code == 200
        assert time.perf_counter() - started >= 0.04


def test_concurrency_high_water_mark(emu: Emulator) -> None:
    with ThreadPoolExecutor(6) as pool, connect(emu) as http:
        futures = [
            pool.submit(http.post, "/embeddings", json=body(f"t{i}"), headers={FAULT: "slow=30"})
            for i in range(6)
        ]
        emu.wait_until(lambda s: s.slow_in_flight == 6)
        emu.release_slow()
        assert [f.result().status_code for f in futures] == [200] * 6
    stats = emu.stats
    assert stats.max_concurrency == 6
    assert stats.faults == {"slow": 6}


def test_stop_ends_slow_requests(make_emulator: MakeEmulator) -> None:
    emu = make_emulator()
    with ThreadPoolExecutor(1) as pool, connect(emu) as http:
        pending = pool.submit(http.post, "/embeddings", json=body("hi"), headers={FAULT: "slow=60"})
        emu.wait_until(lambda s: s.slow_in_flight == 1)
        emu.stop()
        assert pending.result().status_code == 200


def test_a_rate_limit_storm_answers_429_until_it_blows_over(
    emu: Emulator, client: httpx.Client, clock: Clock
) -> None:
    emu.rate_limit_storm(2.0, retry_after=0)
    for _ in range(3):
        response = client.post("/embeddings", json=body("hi"))
        error_of(response, 429, "too_many_requests")
        assert response.headers["retry-after"] == "0"
    assert client.post("/embeddings/estimate", json=body("hi")).status_code == 429
    assert client.get("/models").status_code == 200  # another bucket: not in the storm
    clock.advance(2.0)
    assert client.post("/embeddings", json=body("hi")).status_code == 200
    assert emu.stats.charges == 1
    with pytest.raises(ValueError, match="negative"):
        emu.rate_limit_storm(-1.0)
