"""``AurousEmbeddings`` (LangChain) against recorded API answers: sync, async and image paths.

The adapter is built with no arguments, as users do: ``aurous_target`` exports
``AUROUS_API_KEY`` / ``AUROUS_BASE_URL`` for the emulator (recording) or the replay target.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from aurous_embed import Image
from aurous_embed.langchain import AurousEmbeddings
from tests.helpers import cosine
from tests.recorded.conftest import Target

# A 2x2 red PNG: small enough to keep the cassettes readable.
RED_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)


def is_vector(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(type(x) is float for x in value)


@pytest.fixture
def red_png(tmp_path: Path) -> str:
    path = tmp_path / "red.png"
    path.write_bytes(RED_PNG)
    return str(path)


@pytest.mark.vcr
def test_sync_documents_and_query(aurous_target: Target) -> None:
    embeddings = AurousEmbeddings()
    try:
        docs = embeddings.embed_documents(["red leather bag", "blue cotton shirt"])
        query = embeddings.embed_query("red leather")
    finally:
        embeddings.close()
    assert len(docs) == 2
    assert all(map(is_vector, [*docs, query]))
    assert len(docs[0]) == len(docs[1]) == len(query)
    assert cosine(query, docs[0]) > cosine(query, docs[1])


@pytest.mark.vcr
async def test_async_documents_query_and_image(aurous_target: Target, red_png: str) -> None:
    embeddings = AurousEmbeddings()
    try:
        docs = await embeddings.aembed_documents(["red bag", "blue shirt", "green hose"])
        query = await embeddings.aembed_query("blue shirt")
        (image,) = await embeddings.aembed_image(uris=[red_png])
    finally:
        await embeddings.aclose()
        embeddings.close()
    assert len(docs) == 3
    assert all(map(is_vector, [*docs, query, image]))
    assert docs[1] == pytest.approx(query)  # the same text gives the same vector
    assert len({tuple(d) for d in docs}) == 3  # results came back one per input


@pytest.mark.vcr
def test_image_uris_and_multimodal_documents(aurous_target: Target, red_png: str) -> None:
    embeddings = AurousEmbeddings()
    try:
        from_path, from_file_uri = embeddings.embed_image(uris=[red_png, Path(red_png).as_uri()])
        mixed, text_only = embeddings.embed_multimodal([["product photo", Image(red_png)], "red"])
    finally:
        embeddings.close()
    assert all(map(is_vector, [from_path, from_file_uri, mixed, text_only]))
    assert from_path == pytest.approx(from_file_uri)  # a path and its file:// URI: one image
    assert len(mixed) == len(from_path) == len(text_only)
    assert mixed != pytest.approx(from_path)  # the text part counted
