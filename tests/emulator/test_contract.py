"""Auth, scopes, versions, request ids, the envelope, headers and response shapes."""

from __future__ import annotations

import math
import socket

import httpx
import pytest

from aurous_embed._config import CHAT_MODEL, DEFAULT_MODEL, MODEL_ALIASES
from aurous_embed.testing import Emulator
from tests.emulator.helpers import REQUEST_ID, MakeEmulator, body, connect, error_of, vector

RATE_HEADERS = (
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-tpm-limit",
    "x-ratelimit-tpm-remaining",
    "x-ratelimit-tpm-reset",
)


# --- auth ---------------------------------------------------------------------------------------
def test_missing_key_is_401_missing_api_key(anon: httpx.Client) -> None:
    error = error_of(anon.post("/embeddings", json=body("hi")), 401, "missing_api_key")
    assert error["type"] == "authentication"
    assert error["param"] is None


def test_unknown_key_is_401_invalid_api_key(anon: httpx.Client) -> None:
    response = anon.post(
        "/embeddings", json=body("hi"), headers={"X-Api-Key": "al_live_" + "0" * 64}
    )
    assert error_of(response, 401, "invalid_api_key")["type"] == "authentication"


def test_bearer_and_x_api_key_both_work(emu: Emulator, anon: httpx.Client) -> None:
    bearer = anon.post(
        "/embeddings", json=body("hi"), headers={"Authorization": f"Bearer {emu.api_key}"}
    )
    header = anon.post("/embeddings", json=body("hi"), headers={"X-Api-Key": emu.api_key})
    assert bearer.status_code == header.status_code == 200


def test_x_api_key_wins_over_bearer(emu: Emulator, anon: httpx.Client) -> None:
    headers = {"X-Api-Key": emu.api_key, "Authorization": "Bearer al_live_wrong"}
    assert anon.post("/embeddings", json=body("hi"), headers=headers).status_code == 200


def test_non_bearer_scheme_is_invalid_api_key(emu: Emulator, anon: httpx.Client) -> None:
    response = anon.get("/models", headers={"Authorization": f"Basic {emu.api_key}"})
    error_of(response, 401, "invalid_api_key")


def test_generated_key_has_documented_format(emu: Emulator) -> None:
    assert emu.api_key.startswith("al_live_")
    assert len(emu.api_key) == len("al_live_") + 64
    int(emu.api_key[8:], 16)
    assert emu.keys == {emu.api_key: "full"}


def test_revoked_key_is_401_revoked_api_key(emu: Emulator, client: httpx.Client) -> None:
    emu.revoke_key(emu.api_key)
    error_of(client.get("/models"), 401, "revoked_api_key")
    emu.add_key(emu.api_key)
    assert client.get("/models").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/embeddings"),
        ("POST", "/embeddings/estimate"),
        ("POST", "/files"),
        ("DELETE", "/files/file_x"),
    ],
)
def test_read_key_gets_403_missing_scope_on_writes(
    make_emulator: MakeEmulator, method: str, path: str
) -> None:
    emu = make_emulator(keys=["al_live_reader:read"])
    with connect(emu, "al_live_reader") as http:
        error = error_of(http.request(method, path, json=body("hi")), 403, "missing_scope")
        assert error["type"] == "authentication"
        for get in ("/models", "/balance"):
            assert http.get(get).status_code == 200


def test_write_and_full_keys_may_post(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(keys={"kw": "write", "kf": "full"})
    assert emu.api_key == "kw"
    for key in ("kw", "kf"):
        with connect(emu, key) as http:
            assert http.post("/embeddings", json=body("hi")).status_code == 200


# --- request ids, versions, headers on every response ------------------------------------------
def test_every_response_has_request_id_version_and_rate_headers(
    client: httpx.Client, anon: httpx.Client
) -> None:
    responses = [
        client.post("/embeddings", json=body("hello")),
        client.post("/embeddings", json=body(["a", "b"])),
        client.post("/embeddings/estimate", json=body("hello")),
        client.get("/models"),
        client.get("/balance"),
        client.get("/files/file_missing"),
        client.get("/nowhere"),
        client.put("/models"),
        anon.post("/embeddings", json=body("hello")),
    ]
    ids = set()
    for response in responses:
        assert REQUEST_ID.match(response.headers["aurous-request-id"]), response.headers
        assert response.headers["aurous-version"] == "2026-05-15"
        for name in RATE_HEADERS:
            assert response.headers[name].isdigit(), (name, response.headers)
        ids.add(response.headers["aurous-request-id"])
        if response.status_code >= 400:
            assert response.json()["error"]["request_id"] == response.headers["aurous-request-id"]
    assert len(ids) == len(responses)
    assert "aurous-idempotent-replayed" not in responses[0].headers


def test_unknown_route_is_404_and_wrong_method_405(client: httpx.Client) -> None:
    assert error_of(client.get("/nowhere"), 404, "resource_not_found")["type"] == "not_found"
    error_of(client.put("/models"), 405, "method_not_allowed")


@pytest.mark.parametrize("pin", ["2026-05-15", "2030-01-01", "2020-01-01"])
def test_valid_version_pin_resolves_to_the_contract(client: httpx.Client, pin: str) -> None:
    response = client.get("/models", headers={"Aurous-Version": pin})
    assert response.status_code == 200
    assert response.headers["aurous-version"] == "2026-05-15"


@pytest.mark.parametrize("pin", ["v1", "2026-5-15", "2026-13-40", "latest"])
def test_malformed_version_is_400(client: httpx.Client, pin: str) -> None:
    response = client.post("/embeddings", json=body("hi"), headers={"Aurous-Version": pin})
    error = error_of(response, 400, "invalid_format")
    assert error["param"] == "Aurous-Version"
    assert response.headers["aurous-version"] == "2026-05-15"


def test_team_default_version_setting_is_echoed(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(api_version="2026-07-01")
    with connect(emu) as http, connect(emu, None) as anon:
        assert http.get("/models").headers["aurous-version"] == "2026-07-01"
        pinned = http.get("/models", headers={"Aurous-Version": "2026-06-01"})
        assert pinned.headers["aurous-version"] == "2026-05-15"
        # unauthenticated requests get the system default
        assert anon.get("/models").headers["aurous-version"] == "2026-05-15"


# --- response shapes ----------------------------------------------------------------------------
def test_embedding_response_has_the_canonical_shape(client: httpx.Client) -> None:
    response = client.post("/embeddings", json=body("A 500-token product description"))
    assert response.status_code == 200
    payload = response.json()
    assert list(payload) == ["object", "data", "model", "usage"]
    assert payload["object"] == "list"
    assert len(payload["data"]) == 1
    item = payload["data"][0]
    assert set(item) == {"object", "index", "embedding"}
    assert item["object"] == "embedding"
    assert item["index"] == 0
    assert len(item["embedding"]) == 2048
    assert all(isinstance(x, float) for x in item["embedding"])
    assert math.isclose(math.fsum(x * x for x in item["embedding"]), 1.0, abs_tol=1e-5)
    assert payload["model"] == DEFAULT_MODEL
    usage = payload["usage"]
    assert set(usage) == {"prompt_tokens", "total_tokens", "credits_charged", "breakdown"}
    assert usage["prompt_tokens"] == usage["total_tokens"] == 8  # 31 bytes -> ceil(31/4)
    assert usage["breakdown"] == {
        "input": {"text": usage["credits_charged"], "visual": 0.0, "video": 0},
        "model": DEFAULT_MODEL,
    }


@pytest.mark.parametrize("slug", [DEFAULT_MODEL, *MODEL_ALIASES])
def test_model_is_echoed_as_sent(client: httpx.Client, slug: str) -> None:
    payload = client.post("/embeddings", json={"model": slug, "input": "hi"}).json()
    assert payload["model"] == slug
    assert payload["usage"]["breakdown"]["model"] == slug


@pytest.mark.parametrize("encoding", ["base64", "float", "anything"])
def test_encoding_format_is_accepted_and_floats_come_back(
    client: httpx.Client, encoding: str
) -> None:
    response = client.post("/embeddings", json=body("hi", encoding_format=encoding, user="u-1"))
    assert isinstance(vector(response)[0], float)


@pytest.mark.parametrize("dimensions", [1024, 2048, 1024.0])
def test_supported_dimensions_are_validated_not_applied(
    client: httpx.Client, dimensions: float
) -> None:
    assert len(vector(client.post("/embeddings", json=body("hi", dimensions=dimensions)))) == 2048


def test_native_dimension_is_a_setting(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(native_dimension=1024)
    with connect(emu) as http:
        assert len(vector(http.post("/embeddings", json=body("hi")))) == 1024


def test_models_lists_both_rows_as_documented(client: httpx.Client) -> None:
    payload = client.get("/models").json()
    assert payload["object"] == "list"
    rows = {row["id"]: row for row in payload["data"]}
    assert set(rows) == {DEFAULT_MODEL, CHAT_MODEL}
    embed, chat = rows[DEFAULT_MODEL], rows[CHAT_MODEL]
    for row, kind in ((embed, "embedding"), (chat, "chat")):
        assert row["object"] == "model"
        assert row["kind"] == row["aurous_metadata"]["kind"] == kind
        assert isinstance(row["created"], int)
        assert row["owned_by"] == "aurous-labs"
    assert embed["aurous_metadata"] == {
        "kind": "embedding",
        "context_window": 128000,
        "dimensions": [1024, 2048],
        "max_input_items": 100,
        "capabilities": ["multimodal_input"],
    }
    assert embed["embedding_pricing"] == {
        "text": {"credits_per_M": 18.75},
        "visual": {"credits_per_M": 48.75},
    }
    assert embed["chat_pricing"] is None
    assert chat["embedding_pricing"] is None
    assert chat["chat_pricing"] == {
        "input": {"credits_per_M": 75},
        "output": {"credits_per_M": 450},
    }
    assert chat["aurous_metadata"]["dimensions"] is None


def test_balance_has_the_documented_shape(client: httpx.Client) -> None:
    assert client.get("/balance").json() == {
        "credits": 1000.0,
        "held_credits": 0.0,
        "available_credits": 1000.0,
        "currency": "credit",
        "billing_mode": "metered",
    }


def test_oversized_body_is_refused_before_reading(emu: Emulator) -> None:
    # [guess] no documented body limit; a declared body over 256 MiB gets 413 without reading it.
    request = (
        f"POST /v1/embeddings HTTP/1.1\r\nHost: emulator\r\nX-Api-Key: {emu.api_key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 300000000\r\n\r\n"
    ).encode()
    with socket.create_connection((emu.host, emu.port)) as raw:
        raw.sendall(request)
        head = raw.recv(65536).split(b"\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 413 ")  # the reason phrase differs across Pythons
    assert emu.wait_until(lambda s: s.requests == 1).by_code == {"request_too_large": 1}
