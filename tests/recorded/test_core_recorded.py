"""The core client against recorded API answers (sync, async, images, errors, estimate, models)."""

from __future__ import annotations

import base64

import pytest

from aurous_embed import (
    AsyncAurousClient,
    AurousClient,
    Image,
    Text,
    UnsupportedDimensionsError,
)
from tests.helpers import cosine
from tests.recorded.conftest import Target

# A 2x2 red PNG: small enough to keep the cassette readable.
RED_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)


def client(target: Target) -> AurousClient:
    return AurousClient(target.api_key, base_url=target.base_url)


@pytest.mark.vcr
def test_embed_and_embed_many(aurous_target: Target) -> None:
    with client(aurous_target) as c:
        one = c.embed("a red leather messenger bag")
        many = c.embed_many(["a red leather messenger bag", "a blue cotton t-shirt", "red leather"])
    assert len(one.embedding) > 0
    assert one.usage.credits_charged > 0
    assert one.request_id and one.request_id.startswith("req_")
    assert [len(r.embedding) for r in many] == [len(one.embedding)] * 3
    assert many[0].embedding == pytest.approx(one.embedding)  # same input, same vector
    assert cosine(many[0].embedding, many[2].embedding) > cosine(
        many[0].embedding, many[1].embedding
    )


@pytest.mark.vcr
def test_multimodal_image_input(aurous_target: Target) -> None:
    with client(aurous_target) as c:
        combined = c.embed([Text("product photo"), Image(RED_PNG)])
        image_only = c.embed(Image(RED_PNG))
    assert combined.usage.breakdown.visual > 0
    assert len(combined.embedding) == len(image_only.embedding)


@pytest.mark.vcr
def test_errors_come_back_typed(aurous_target: Target) -> None:
    with client(aurous_target) as c:
        with pytest.raises(UnsupportedDimensionsError) as info:
            c.embed("x", dimensions=1000)
        assert info.value.param == "dimensions"
        assert info.value.request_id
        # the client never sends string[]; pin the server's answer to it with raw httpx
        import httpx

        raw = httpx.post(
            f"{aurous_target.base_url}/embeddings",
            json={"model": "aurous-embed-vision-1.0", "input": ["a", "b"]},
            headers={"X-Api-Key": aurous_target.api_key},
        )
    assert raw.status_code == 400
    assert raw.json()["error"]["code"] == "embeddings_batch_not_supported"


@pytest.mark.vcr
def test_estimate_and_models(aurous_target: Target) -> None:
    with client(aurous_target) as c:
        estimate = c.estimate("x" * 2000)
        models = c.list_models()
    # Only what the docs state: tokens add up, and text is priced at 18.75 credits per 1M tokens
    # (how many tokens 2,000 characters make is the live tokenizer's business).
    assert estimate.tokens.text > 0 and estimate.tokens.image == estimate.tokens.video == 0
    assert estimate.tokens.total == estimate.tokens.text
    assert estimate.credits_estimated == pytest.approx(estimate.tokens.text * 18.75 / 1e6)
    embedding = next(m for m in models if m.id == "aurous-embed-vision-1.0")
    assert embedding.kind == "embedding"
    assert embedding.dimensions == (1024, 2048)


@pytest.mark.vcr
async def test_async_embed_many(aurous_target: Target) -> None:
    async with AsyncAurousClient(aurous_target.api_key, base_url=aurous_target.base_url) as c:
        results = await c.embed_many([f"async document {i}" for i in range(5)])
    assert len(results) == 5
    assert len({tuple(r.embedding) for r in results}) == 5
