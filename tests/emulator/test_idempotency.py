"""Idempotency as documented: replay, canonical JSON, 409s, failures not stored, 24 h window."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator

import httpx
import pytest

from aurous_embed.testing import Clock, Emulator
from aurous_embed.testing._idempotency import IdempotencyStore, Record
from tests.emulator.helpers import body, error_of, image_bytes

KEY = "3f1c2a9e-8d7b-4c6a-9e5f-1a2b3c4d5e6f"


def _post(
    client: httpx.Client, payload: object, key: str = KEY, header: str = "Idempotency-Key"
) -> httpx.Response:
    return client.post("/embeddings", json=payload, headers={header: key})


def test_same_key_same_body_replays_identically(emu: Emulator, client: httpx.Client) -> None:
    first = _post(client, body("leather bag"))
    second = _post(client, body("leather bag"))
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert "aurous-idempotent-replayed" not in first.headers
    assert second.headers["aurous-idempotent-replayed"] == "true"
    # [choice] the replay carries the id of the request that did the work
    assert second.headers["aurous-request-id"] == first.headers["aurous-request-id"]
    stats = emu.stats
    assert (stats.charges, stats.replays) == (1, 1)
    assert stats.charges_by_idempotency_key == {KEY: 1}
    assert emu.balance == 1000 - first.json()["usage"]["credits_charged"]


def test_body_comparison_is_canonical_json(client: httpx.Client) -> None:
    first = client.post(
        "/embeddings",
        content=json.dumps({"model": "aurous-embed-vision-1.0", "input": "hi"}),
        headers={"Idempotency-Key": KEY, "Content-Type": "application/json"},
    )
    reordered = client.post(
        "/embeddings",
        content='{ "input" : "hi",\n  "model":"aurous-embed-vision-1.0" }',
        headers={"Idempotency-Key": KEY, "Content-Type": "application/json"},
    )
    assert reordered.headers["aurous-idempotent-replayed"] == "true"
    assert reordered.content == first.content


@pytest.mark.parametrize("alias", ["Aurous-Idempotent-Key", "Aurous-Idempotency-Key"])
def test_alias_headers_share_the_key_space(emu: Emulator, client: httpx.Client, alias: str) -> None:
    _post(client, body("hi"))
    replay = _post(client, body("hi"), header=alias)
    assert replay.headers["aurous-idempotent-replayed"] == "true"
    _post(client, body("other"), key="k2", header=alias)
    assert _post(client, body("other"), key="k2").headers["aurous-idempotent-replayed"] == "true"
    assert emu.stats.charges == 2


def test_different_body_is_409_without_retry_after(client: httpx.Client) -> None:
    _post(client, body("hi"))
    response = _post(client, body("hi!"))
    error = error_of(response, 409, "idempotency_key_in_use")
    assert error["type"] == "invalid_request"
    assert "retry-after" not in response.headers


def test_same_key_on_another_route_is_409(client: httpx.Client) -> None:
    _post(client, body("hi"))
    files = {"file": ("a.png", image_bytes(), "image/png")}
    response = client.post(
        "/files", files=files, data={"purpose": "reference"}, headers={"Idempotency-Key": KEY}
    )
    error_of(response, 409, "idempotency_key_in_use")


def test_keys_are_per_route_the_other_way_round(client: httpx.Client) -> None:
    files = {"file": ("a.png", image_bytes(), "image/png")}
    upload = client.post(
        "/files", files=files, data={"purpose": "reference"}, headers={"Idempotency-Key": KEY}
    )
    assert upload.status_code == 200
    error_of(_post(client, body("hi")), 409, "idempotency_key_in_use")


def test_4xx_failures_are_not_stored(emu: Emulator, client: httpx.Client) -> None:
    error_of(_post(client, body("x" * 600_000)), 400, "embeddings_input_too_large")
    error_of(_post(client, body("hi", dimensions=7)), 400, "embeddings_unsupported_dimensions")
    fixed = _post(client, body("hi"))
    assert fixed.status_code == 200
    assert "aurous-idempotent-replayed" not in fixed.headers
    assert emu.stats.charges == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_failures_are_not_stored_or_charged(
    emu: Emulator, client: httpx.Client, status: int
) -> None:
    failed = client.post(
        "/embeddings",
        json=body("hi"),
        headers={"Idempotency-Key": KEY, "Aurous-Emulator-Fault": f"status={status}"},
    )
    assert failed.status_code == status
    assert emu.ledger == ()
    retry = _post(client, body("hi"))
    assert retry.status_code == 200
    assert "aurous-idempotent-replayed" not in retry.headers
    assert emu.stats.charges_by_idempotency_key == {KEY: 1}


def test_window_is_24_hours_on_the_clock(emu: Emulator, client: httpx.Client, clock: Clock) -> None:
    _post(client, body("hi"))
    clock.advance(24 * 3600 - 1)
    assert _post(client, body("hi")).headers["aurous-idempotent-replayed"] == "true"
    error_of(_post(client, body("changed")), 409, "idempotency_key_in_use")
    clock.advance(1)
    fresh = _post(client, body("changed"))
    assert fresh.status_code == 200
    assert "aurous-idempotent-replayed" not in fresh.headers
    assert emu.stats.charges == 2


def test_key_length_limits(client: httpx.Client) -> None:
    assert _post(client, body("hi"), key="k" * 256).status_code == 200
    error = error_of(_post(client, body("hi"), key="k" * 257), 400, "value_out_of_range")
    assert error["param"] == "Idempotency-Key"
    error = error_of(_post(client, body("hi"), key=""), 400, "value_out_of_range")


def test_no_key_never_replays(emu: Emulator, client: httpx.Client) -> None:
    client.post("/embeddings", json=body("hi"))
    again = client.post("/embeddings", json=body("hi"))
    assert "aurous-idempotent-replayed" not in again.headers
    assert emu.stats.charges == 2


def test_records_expire_and_stay_bounded() -> None:
    store = IdempotencyStore(window=10, max_records=3)
    for i in range(5):
        outcome = store.begin("t", f"k{i}", "POST /x", "h", now=float(i))
        store.complete("t", f"k{i}", outcome.record, 200, b"{}", "req")
    assert len(store) == 3
    assert store.begin("t", "k4", "POST /x", "h", now=5.0).kind == "replay"
    assert store.begin("t", "k0", "POST /x", "h", now=5.0).kind == "new"  # evicted
    store.begin("t", "late", "POST /x", "h", now=100.0)
    assert len(store) == 1  # everything older than the window is gone


def test_a_full_store_evicts_the_oldest_finished_records_and_keeps_those_in_flight() -> None:
    store = IdempotencyStore(window=1e9, max_records=3)
    store.begin("t", "in-flight", "POST /x", "h", now=0.0)  # the oldest, but not finished
    for i in range(4):
        outcome = store.begin("t", f"k{i}", "POST /x", "h", now=1.0 + i)
        store.complete("t", f"k{i}", outcome.record, 200, b"{}", "req")
    assert len(store) == 3
    assert store.begin("t", "in-flight", "POST /x", "h", now=9.0).kind == "conflict"  # kept
    assert store.begin("t", "k3", "POST /x", "h", now=9.0).kind == "replay"
    assert store.begin("t", "k0", "POST /x", "h", now=9.0).kind == "new"  # the oldest finished


def test_a_full_store_does_not_walk_all_its_records_on_every_request() -> None:
    visited = 0

    class Counting(OrderedDict[tuple[str, str], Record]):
        def items(self) -> Iterator[tuple[tuple[str, str], Record]]:  # type: ignore[override]
            nonlocal visited
            for pair in super().items():
                visited += 1
                yield pair

    store = IdempotencyStore(window=1e9, max_records=1_000)
    store._records = Counting()
    for i in range(1_100):
        outcome = store.begin("t", f"k{i}", "POST /x", "h", now=float(i))
        store.complete("t", f"k{i}", outcome.record, 200, b"{}", "req")
    assert len(store) == 1_000
    assert visited < 5 * 1_100  # a few records per request, not the whole store (~100,000)


def test_in_flight_record_of_an_old_owner_is_not_overwritten() -> None:
    store = IdempotencyStore(window=10)
    first = store.begin("t", "k", "POST /x", "h", now=0.0).record
    assert store.begin("t", "k", "POST /x", "h", now=1.0).kind == "conflict"
    second = store.begin("t", "k", "POST /x", "h", now=20.0).record  # first expired meanwhile
    store.complete("t", "k", first, 200, b"old", "req_old")
    store.release("t", "k", first)
    assert store.begin("t", "k", "POST /x", "h", now=21.0).kind == "conflict"  # second in flight
    store.complete("t", "k", second, 200, b"new", "req_new")
    replay = store.begin("t", "k", "POST /x", "h", now=22.0)
    assert (replay.kind, replay.record.body) == ("replay", b"new")
