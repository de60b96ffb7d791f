"""``AurousEmbedding`` (LlamaIndex) against recorded API answers: sync, async and image paths.

The model is built with no arguments, so the key and base URL come from ``AUROUS_API_KEY`` and
``AUROUS_BASE_URL`` (set by the ``aurous_target`` fixture); re-record as described in
``conftest.py``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aurous_embed.llama_index import AurousEmbedding
from tests.helpers import cosine
from tests.recorded.conftest import Target

# A 2x2 red PNG (79 bytes): small enough to keep the cassette readable.
RED_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR42mO8IyLCwMDAxMDAwMDAAAANIgEIUl86SgAAAABJRU5ErkJggg=="
)


@pytest.fixture
async def model(aurous_target: Target) -> AsyncIterator[AurousEmbedding]:
    embedding = AurousEmbedding()  # key and base URL from the environment
    yield embedding
    embedding.close()
    await embedding.aclose()


@pytest.mark.vcr
def test_sync_text_batch_and_query(model: AurousEmbedding) -> None:
    docs = model.get_text_embedding_batch(["red leather bag", "blue cotton shirt"])
    query = model.get_query_embedding("leather bag")
    assert len(docs) == 2
    assert len(docs[0]) == len(docs[1]) == len(query) > 0
    assert cosine(query, docs[0]) > cosine(query, docs[1])


@pytest.mark.vcr
async def test_async_text_batch_query_and_image(model: AurousEmbedding) -> None:
    docs = await model.aget_text_embedding_batch(["green glass bottle", "wooden chair"])
    query = await model.aget_query_embedding("glass bottle")
    image = await model.aget_image_embedding(io.BytesIO(RED_PNG))
    assert len(docs) == 2
    assert len(image) == len(query) == len(docs[0])
    assert cosine(query, docs[0]) > cosine(query, docs[1])


@pytest.mark.vcr
def test_image_batch_from_path_and_bytesio(model: AurousEmbedding, tmp_path: Path) -> None:
    path = tmp_path / "red.png"
    path.write_bytes(RED_PNG)
    from_path, from_bytes = model.get_image_embedding_batch([str(path), io.BytesIO(RED_PNG)])
    assert from_path == pytest.approx(from_bytes, abs=1e-4)  # the same image either way
    red, blue = model.get_query_embedding("red"), model.get_query_embedding("blue")
    assert cosine(from_path, red) > cosine(from_path, blue)
