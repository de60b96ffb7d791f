"""Parsing answers: every documented field, base64 vectors, missing optional fields."""

from __future__ import annotations

import array
import base64

import httpx
import pytest

from aurous_embed import APIError, AsyncAurousClient, AurousClient
from tests.unit.conftest import FakeAPI, embedding_body, respond


def test_result_fields(client: AurousClient, api: FakeAPI) -> None:
    api.default = lambda request: respond(
        body=embedding_body([0.5, -0.25], tokens=7000, credits=0.19125)
    )
    result = client.embed("x")
    assert result.embedding == [0.5, -0.25]
    assert all(type(x) is float for x in result.embedding)
    assert result.model == "aurous-embed-vision-1.0"
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (7000, 7000)
    assert result.usage.credits_charged == pytest.approx(0.19125)
    assert result.usage.breakdown.model == "aurous-embed-vision-1.0"
    assert result.request_id == "req_01TESTREQUESTID000000000"
    assert result.api_version == "2026-05-15"
    assert result.replayed is False
    assert result.idempotency_key == api.requests[0].headers["idempotency-key"]


def test_replayed_header(client: AurousClient, api: FakeAPI) -> None:
    api.default = lambda request: respond(headers={"Aurous-Idempotent-Replayed": "true"})
    assert client.embed("x").replayed is True


def test_base64_little_endian_float32_vector(client: AurousClient, api: FakeAPI) -> None:
    floats = array.array("f", [0.5, -1.25, 3.0])
    encoded = base64.b64encode(floats.tobytes()).decode()
    api.default = lambda request: respond(body=embedding_body(encoded))
    assert client.embed("x").embedding == [0.5, -1.25, 3.0]


def test_int_vector_values_become_floats(client: AurousClient, api: FakeAPI) -> None:
    api.default = lambda request: respond(body=embedding_body([0.5, 1, 0]))
    embedding = client.embed("x").embedding
    assert embedding == [0.5, 1.0, 0.0]
    assert all(type(x) is float for x in embedding)


def test_missing_optional_fields_are_tolerated(client: AurousClient, api: FakeAPI) -> None:
    api.default = lambda request: httpx.Response(201, json={"data": [{"embedding": [1.0]}]})
    result = client.embed("x")
    assert result.embedding == [1.0]
    assert result.model == "aurous-embed-vision-1.0"  # falls back to the requested slug
    assert result.usage.credits_charged == 0.0
    assert result.request_id is None


def test_2xx_without_vector_is_an_api_error(client: AurousClient, api: FakeAPI) -> None:
    api.default = lambda request: httpx.Response(200, json={"object": "list", "data": []})
    with pytest.raises(APIError, match="unexpected embedding response"):
        client.embed("x")


def test_2xx_with_non_json_body_is_an_api_error(client: AurousClient, api: FakeAPI) -> None:
    api.default = lambda request: httpx.Response(200, content=b"<html>proxy</html>")
    with pytest.raises(APIError, match="not JSON"):
        client.embed("x")


async def test_async_result(aclient: AsyncAurousClient, api: FakeAPI) -> None:
    async with aclient:
        result = await aclient.embed("x")
    assert result.embedding == [0.1, 0.2, 0.3]
