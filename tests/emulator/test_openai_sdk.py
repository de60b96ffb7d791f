"""The unmodified OpenAI Python SDK as a client of the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from aurous_embed._config import DEFAULT_MODEL
from aurous_embed.testing import Emulator


@pytest.fixture
def sdk(emu: Emulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=emu.base_url, api_key=emu.api_key, max_retries=0) as client:
        yield client


def test_embeddings_create_returns_a_vector(emu: Emulator, sdk: openai.OpenAI) -> None:
    # The SDK asks for base64 when encoding_format is not given; the emulator answers floats,
    # as the real API does, and the SDK passes the float list through.
    result = sdk.embeddings.create(model=DEFAULT_MODEL, input="A leather messenger bag")
    assert len(result.data) == 1
    assert len(result.data[0].embedding) == 2048
    assert isinstance(result.data[0].embedding[0], float)
    assert result.model == DEFAULT_MODEL
    assert result.usage.prompt_tokens == result.usage.total_tokens == 6
    extra = result.usage.model_extra or {}
    assert extra["credits_charged"] == emu.ledger[0].credits


def test_explicit_float_encoding(sdk: openai.OpenAI) -> None:
    result = sdk.embeddings.create(model=DEFAULT_MODEL, input="hi", encoding_format="float")
    assert len(result.data[0].embedding) == 2048


def test_string_list_fails_with_batch_not_supported(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.embeddings.create(model=DEFAULT_MODEL, input=["a", "b"])
    assert caught.value.status_code == 400
    assert caught.value.code == "embeddings_batch_not_supported"


def test_idempotency_key_through_extra_headers(emu: Emulator, sdk: openai.OpenAI) -> None:
    headers = {"Idempotency-Key": "sdk-key"}
    first = sdk.embeddings.with_raw_response.create(
        model=DEFAULT_MODEL, input="hi", extra_headers=headers
    )
    second = sdk.embeddings.with_raw_response.create(
        model=DEFAULT_MODEL, input="hi", extra_headers=headers
    )
    assert first.headers.get("aurous-idempotent-replayed") is None
    assert second.headers["aurous-idempotent-replayed"] == "true"
    assert emu.stats.charges == 1


def test_content_parts_through_the_escape_hatch(sdk: openai.OpenAI) -> None:
    parts = [
        {"type": "text", "text": "Product photo of a leather messenger bag."},
        {
            "type": "image_url",
            "image_url": {"url": "https://assets.aurous-labs.com/example-images/messenger-bag.jpg"},
        },
    ]
    result = sdk.post(
        "/embeddings",
        body={"model": DEFAULT_MODEL, "input": parts},
        cast_to=openai.types.CreateEmbeddingResponse,
    )
    assert result.usage.total_tokens == 11 + 1024


def test_models_list(sdk: openai.OpenAI) -> None:
    ids = [model.id for model in sdk.models.list()]
    assert DEFAULT_MODEL in ids


def test_sdk_errors_map_by_status(emu: Emulator) -> None:
    with openai.OpenAI(base_url=emu.base_url, api_key="al_live_wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.embeddings.create(model=DEFAULT_MODEL, input="hi")
    assert caught.value.code == "invalid_api_key"
