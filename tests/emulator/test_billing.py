"""Token counts, credits, the estimate endpoint, the balance and the ledger."""

from __future__ import annotations

import httpx
import pytest

from aurous_embed._config import DEFAULT_MODEL
from aurous_embed.testing import Clock, Emulator
from aurous_embed.testing._billing import price
from tests.emulator.helpers import (
    MakeEmulator,
    b64_part,
    body,
    connect,
    error_of,
    image_bytes,
    text_part,
)

RED = image_bytes("red")


def test_documented_worked_example_prices() -> None:
    cost = price(5000, 2000)
    assert (cost.text, cost.visual, cost.total) == (0.09375, 0.0975, 0.19125)
    assert price(500, 0).total == 0.009375


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("a", 1),
        ("abcd", 1),
        ("abcde", 2),
        ("é", 1),
        ("ééé", 2),
        ("日本語", 3),
        ("x" * 20_000, 5000),
    ],
)
def test_text_tokens_are_ceil_utf8_bytes_over_4(
    client: httpx.Client, text: str, tokens: int
) -> None:
    usage = client.post("/embeddings", json=body(text)).json()["usage"]
    assert usage["prompt_tokens"] == usage["total_tokens"] == tokens


def test_tokens_add_up_per_part_and_per_image(client: httpx.Client) -> None:
    parts = [text_part("abcde"), text_part("a"), b64_part(RED), b64_part(RED)]
    usage = client.post("/embeddings", json=body(parts)).json()["usage"]
    assert usage["total_tokens"] == 2 + 1 + 2 * 1024


def test_worked_example_end_to_end(make_emulator: MakeEmulator) -> None:
    # 1,000 tokens per image makes the documented 5,000 text + 2,000 image tokens reachable.
    emu = make_emulator(tokens_per_image=1000)
    parts = [text_part("x" * 20_000), b64_part(RED), b64_part(image_bytes("blue"))]
    with connect(emu) as http:
        usage = http.post("/embeddings", json=body(parts)).json()["usage"]
        estimate = http.post("/embeddings/estimate", json=body(parts)).json()
    assert usage == {
        "prompt_tokens": 7000,
        "total_tokens": 7000,
        "credits_charged": 0.19125,
        "breakdown": {
            "input": {"text": 0.09375, "visual": 0.0975, "video": 0},
            "model": DEFAULT_MODEL,
        },
    }
    assert estimate == {
        "estimated": True,
        "tokens": {"text": 5000, "image": 2000, "video": 0, "total": 7000},
        "credits_estimated": 0.19125,
        "breakdown": {
            "input": {"text": 0.09375, "visual": 0.0975, "video": 0},
            "model": DEFAULT_MODEL,
        },
    }
    assert emu.stats.credits_charged == 0.19125
    assert emu.balance == 1000 - 0.19125


def test_estimate_example_and_no_charge(emu: Emulator, client: httpx.Client) -> None:
    payload = client.post("/embeddings/estimate", json=body("x" * 2000)).json()
    assert payload["tokens"] == {"text": 500, "image": 0, "video": 0, "total": 500}
    assert payload["credits_estimated"] == 0.009375
    assert "object" not in payload
    assert emu.ledger == ()
    assert emu.balance == 1000.0


def test_estimate_ignores_idempotency_keys(emu: Emulator, client: httpx.Client) -> None:
    headers = {"Idempotency-Key": "same"}
    first = client.post("/embeddings/estimate", json=body("one"), headers=headers)
    second = client.post("/embeddings/estimate", json=body("two two two"), headers=headers)
    assert (first.status_code, second.status_code) == (200, 200)
    assert "aurous-idempotent-replayed" not in second.headers
    # ... and the key stays free for a real request
    assert client.post("/embeddings", json=body("three"), headers=headers).status_code == 200


def test_charges_go_to_the_ledger_and_the_balance(
    emu: Emulator, client: httpx.Client, clock: Clock
) -> None:
    first = client.post("/embeddings", json=body("x" * 400), headers={"Idempotency-Key": "k1"})
    clock.advance(5)
    second = client.post("/embeddings", json=body([b64_part(RED)]))
    assert [c.request_id for c in emu.ledger] == [
        first.headers["aurous-request-id"],
        second.headers["aurous-request-id"],
    ]
    row = emu.ledger[0]
    assert (row.idempotency_key, row.model, row.text_tokens, row.image_tokens) == (
        "k1",
        DEFAULT_MODEL,
        100,
        0,
    )
    assert row.credits == first.json()["usage"]["credits_charged"] == 0.001875
    assert emu.ledger[1].created_at == row.created_at + 5
    assert emu.ledger[1].idempotency_key is None
    spent = 0.001875 + 0.049920
    balance = client.get("/balance").json()
    assert (
        balance["credits"] == balance["available_credits"] == pytest.approx(1000 - spent, abs=1e-9)
    )
    assert emu.stats.tokens_charged == 100 + 1024


def test_balance_too_low_is_402_and_not_charged(emu: Emulator, client: httpx.Client) -> None:
    emu.balance = 0.00001
    key = {"Idempotency-Key": "k"}
    response = client.post("/embeddings", json=body("x" * 400), headers=key)
    error = error_of(response, 402, "balance_too_low")
    assert error["type"] == "invalid_request"
    assert "1e-05" in error["message"] or "0.00001" in error["message"]
    assert emu.ledger == ()
    # a failure is not stored: after a top-up the same key runs for real
    emu.balance = 10
    again = client.post("/embeddings", json=body("x" * 400), headers=key)
    assert again.status_code == 200
    assert "aurous-idempotent-replayed" not in again.headers
    assert emu.stats.charges == 1


def test_credits_setting(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(credits=0.001)
    with connect(emu) as http:
        assert http.get("/balance").json()["credits"] == 0.001
        assert http.post("/embeddings", json=body("x" * 40)).status_code == 200  # 0.0001875
        error_of(http.post("/embeddings", json=body("x" * 4000)), 402, "balance_too_low")
