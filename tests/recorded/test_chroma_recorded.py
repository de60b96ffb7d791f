"""The Chroma embedding function against recorded API answers: documents, queries, numpy images.

The function reads its key and address from the environment, as a Chroma-rebuilt function does;
``aurous_target`` exports them. Chroma has no async embedding-function protocol: its
``AsyncHttpClient`` collections call this same synchronous function (and need a Chroma server,
which a replay does not have), so the sync path recorded here is the whole of it.
"""

from __future__ import annotations

from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings

from aurous_embed.chroma import AurousEmbeddingFunction
from tests.helpers import cosine
from tests.recorded.conftest import Target

# Tiny images keep the cassette small: 2x2 solid red and solid blue.
RED = np.full((2, 2, 3), (220, 20, 20), dtype=np.uint8)
BLUE = np.full((2, 2, 3), (20, 20, 220), dtype=np.uint8)


@pytest.mark.vcr
def test_documents(aurous_target: Target) -> None:
    vectors = AurousEmbeddingFunction()(["red leather bag", "blue cotton shirt", "red leather"])
    assert len(vectors) == 3
    assert all(v.dtype == np.float32 and v.shape == vectors[0].shape for v in vectors)
    assert vectors[0].shape[0] > 0
    assert cosine(vectors[0], vectors[2]) > cosine(vectors[0], vectors[1])


@pytest.mark.vcr
def test_embed_query_through_a_collection(aurous_target: Target, tmp_path: Path) -> None:
    function = AurousEmbeddingFunction()
    (query,) = function.embed_query(input=["leather bag"])
    assert query.dtype == np.float32 and query.ndim == 1
    # Chroma itself calling the function: add() uses __call__, query_texts uses embed_query.
    client = chromadb.PersistentClient(str(tmp_path), settings=Settings(anonymized_telemetry=False))
    collection = client.create_collection("docs", embedding_function=function)
    collection.add(ids=["bag", "shirt"], documents=["red leather bag", "blue cotton shirt"])
    assert collection.query(query_texts=["leather bag"], n_results=1)["ids"] == [["bag"]]


@pytest.mark.vcr
def test_numpy_images(aurous_target: Target) -> None:
    function = AurousEmbeddingFunction()
    red, blue = function([RED, BLUE])
    (text,) = function.embed_query(input=["red"])
    assert red.dtype == np.float32 and red.shape == text.shape
    assert cosine(text, red) > cosine(text, blue)
