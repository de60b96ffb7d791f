"""``AurousEmbedding`` used for real inside LlamaIndex, against an emulator each test starts.

Indexes over Chroma, multimodal indexes with text→image and image→image retrieval, the batch
methods' concurrent fan-out, every image form LlamaIndex hands over, and the key kept out of every
serialisation. The emulator's vectors are lexical (texts sharing words are close) and map an
image's dominant colour to colour words, so retrieval results here are exact expectations.
Sockets may connect to loopback only (pytest-socket), so nothing here can reach a default model.
"""

from __future__ import annotations

import asyncio
import base64
import io
import pickle
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings
from llama_index.core import Settings, StorageContext, VectorStoreIndex
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.schema import ImageNode, TextNode
from llama_index.vector_stores.chroma import ChromaVectorStore

from aurous_embed import MissingAPIKeyError, UnsupportedDimensionsError
from aurous_embed.llama_index import AurousEmbedding
from aurous_embed.testing import Emulator
from tests.helpers import cosine, png

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}
DOCS = {
    "cats": "the cat sat on the warm mat",
    "markets": "stock markets fell sharply on monday",
    "soup": "a slow recipe for tomato soup",
}
EMBEDDINGS = "POST /v1/embeddings"


@pytest.fixture
async def make_model(aurous_emulator: Emulator) -> AsyncIterator[Callable[..., AurousEmbedding]]:
    """Models pointed at this test's emulator; their pools are closed in the test's event loop."""
    made: list[AurousEmbedding] = []

    def make(*args: Any, **kwargs: Any) -> AurousEmbedding:
        kwargs.setdefault("api_key", aurous_emulator.api_key)
        made.append(AurousEmbedding(*args, base_url=aurous_emulator.base_url, **kwargs))
        return made[-1]

    yield make
    for model in made:
        model.close()
        await model.aclose()


@pytest.fixture
def model(make_model: Callable[..., AurousEmbedding]) -> AurousEmbedding:
    return make_model()


@pytest.fixture
def llama_settings(monkeypatch: pytest.MonkeyPatch) -> Any:
    """LlamaIndex's global Settings, with the embed model and LLM restored after the test."""
    monkeypatch.setattr(Settings, "_embed_model", None)
    monkeypatch.setattr(Settings, "_llm", None)
    return Settings


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, rgb in COLOURS.items():
        paths[name] = tmp_path / f"{name}.png"
        paths[name].write_bytes(png((16, 16), rgb))
    return paths


def chroma_store(tmp_path: Path, name: str) -> ChromaVectorStore:
    client = chromadb.PersistentClient(
        str(tmp_path / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    return ChromaVectorStore(chroma_collection=client.get_or_create_collection(name))


def text_nodes() -> list[TextNode]:
    return [TextNode(text=text, id_=key) for key, text in DOCS.items()]


def image_nodes(images: dict[str, Path]) -> list[ImageNode]:
    # An ImageNode with neither text nor metadata is dropped by the index; metadata keeps it
    # out of the text store.
    return [ImageNode(image_path=str(p), metadata={"colour": c}) for c, p in images.items()]


# --- inside LlamaIndex -------------------------------------------------------------------------


def test_settings_embed_model_with_vector_store_index_over_chroma(
    llama_settings: Any, model: AurousEmbedding, aurous_emulator: Emulator, tmp_path: Path
) -> None:
    llama_settings.embed_model = model  # no embed_model= below: the index must take it from here
    store = chroma_store(tmp_path, "docs")
    index = VectorStoreIndex(
        text_nodes(), storage_context=StorageContext.from_defaults(vector_store=store)
    )
    assert store.client.count() == len(DOCS)  # the Chroma collection
    retriever = index.as_retriever(similarity_top_k=1)
    for query, expected in [("tomato soup recipe", "soup"), ("where did the cat sit", "cats")]:
        (hit,) = retriever.retrieve(query)
        assert hit.node.node_id == expected
    # one request per document and per query, all through this model
    assert aurous_emulator.stats.by_route == {EMBEDDINGS: len(DOCS) + 2}


async def test_async_insert_and_retrieve_over_chroma(
    model: AurousEmbedding, aurous_emulator: Emulator, tmp_path: Path
) -> None:
    store = chroma_store(tmp_path, "async-docs")
    index = VectorStoreIndex(
        [], embed_model=model, storage_context=StorageContext.from_defaults(vector_store=store)
    )
    await index.ainsert_nodes(text_nodes())
    (hit,) = await index.as_retriever(similarity_top_k=1).aretrieve("markets on monday")
    assert hit.node.node_id == "markets"
    assert aurous_emulator.stats.by_route == {EMBEDDINGS: len(DOCS) + 1}


def test_multimodal_index_text_to_image_and_image_to_image(
    model: AurousEmbedding, images: dict[str, Path], aurous_emulator: Emulator
) -> None:
    index = MultiModalVectorStoreIndex(
        image_nodes(images) + text_nodes(), embed_model=model, image_embed_model=model
    )
    assert aurous_emulator.stats.by_route == {EMBEDDINGS: len(COLOURS) + len(DOCS)}
    retriever = index.as_retriever(similarity_top_k=1, image_similarity_top_k=1)
    for colour in COLOURS:
        (hit,) = retriever.text_to_image_retrieve(colour)
        assert hit.node.metadata["colour"] == colour
        (same,) = retriever.image_to_image_retrieve(str(images[colour]))
        assert same.node.metadata["colour"] == colour
        assert same.score == pytest.approx(1.0)
    (text_hit,) = retriever.text_retrieve("tomato soup")
    assert text_hit.node.node_id == "soup"


async def test_multimodal_index_async_retrieval(
    model: AurousEmbedding, images: dict[str, Path]
) -> None:
    index = MultiModalVectorStoreIndex([], embed_model=model, image_embed_model=model)
    await index.ainsert_nodes(image_nodes(images))
    retriever = index.as_retriever(image_similarity_top_k=1)
    (hit,) = await retriever.atext_to_image_retrieve("blue")
    assert hit.node.metadata["colour"] == "blue"
    (same,) = await retriever.aimage_to_image_retrieve(str(images["red"]))
    assert same.node.metadata["colour"] == "red"


def test_multimodal_index_over_chroma_with_inline_image_data(
    model: AurousEmbedding, tmp_path: Path
) -> None:
    # ImageNode.image (base64) reaches the model as a BytesIO
    nodes = [
        ImageNode(image=base64.b64encode(png((16, 16), rgb)).decode(), metadata={"colour": colour})
        for colour, rgb in COLOURS.items()
    ]
    index = MultiModalVectorStoreIndex(
        nodes,
        embed_model=model,
        image_embed_model=model,
        image_vector_store=chroma_store(tmp_path, "images"),
    )
    (hit,) = index.as_retriever(image_similarity_top_k=1).text_to_image_retrieve("green")
    assert hit.node.metadata["colour"] == "green"


# --- the batch methods fan out ---------------------------------------------------------------


def release_when_all_in_flight(emulator: Emulator, count: int) -> None:
    """Block until ``count`` held requests are in flight at once, then let them all go."""
    try:
        emulator.wait_until(lambda s: s.slow_in_flight == count)
    except TimeoutError:
        emulator.reset()  # drop the faults still queued, so a one-by-one batch fails fast
        raise
    finally:
        emulator.release_slow()


def batch_items(kind: str, images: dict[str, Path]) -> list[Any]:
    if kind == "text":
        return [f"document number {i}" for i in range(6)]
    return [str(path) for path in images.values()] * 2


@pytest.mark.parametrize("kind", ["text", "image"])
def test_sync_batch_sends_one_request_per_item_concurrently(
    kind: str, model: AurousEmbedding, aurous_emulator: Emulator, images: dict[str, Path]
) -> None:
    items = batch_items(kind, images)
    batch = model.get_text_embedding_batch if kind == "text" else model.get_image_embedding_batch
    aurous_emulator.queue_faults(*["slow=30"] * len(items))  # held until all are in flight
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(batch, items)
        release_when_all_in_flight(aurous_emulator, len(items))
        vectors = future.result()
    stats = aurous_emulator.stats
    assert stats.max_concurrency == len(items)
    assert stats.by_route == {EMBEDDINGS: len(items)}
    one = model.get_text_embedding if kind == "text" else model.get_image_embedding
    assert vectors == [one(item) for item in items]  # in input order


@pytest.mark.parametrize("kind", ["text", "image"])
async def test_async_batch_sends_one_request_per_item_concurrently(
    kind: str, model: AurousEmbedding, aurous_emulator: Emulator, images: dict[str, Path]
) -> None:
    items = batch_items(kind, images)
    batch = model.aget_text_embedding_batch if kind == "text" else model.aget_image_embedding_batch
    aurous_emulator.queue_faults(*["slow=30"] * len(items))
    vectors, _ = await asyncio.gather(
        batch(items), asyncio.to_thread(release_when_all_in_flight, aurous_emulator, len(items))
    )
    stats = aurous_emulator.stats
    assert stats.max_concurrency == len(items)
    assert stats.by_route == {EMBEDDINGS: len(items)}
    one = model.aget_text_embedding if kind == "text" else model.aget_image_embedding
    assert vectors == [await one(item) for item in items]


def test_batches_are_large_by_default_and_configurable(
    make_model: Callable[..., AurousEmbedding], aurous_emulator: Emulator
) -> None:
    # the default lets one embed_many call fan out far beyond the core's concurrency
    assert make_model().embed_batch_size == 1024
    small = make_model(embed_batch_size=2)  # 5 texts: three embed_many calls
    texts = [f"text number {i}" for i in range(5)]
    vectors = small.get_text_embedding_batch(texts)
    assert aurous_emulator.stats.by_route == {EMBEDDINGS: 5}
    assert vectors == [small.get_text_embedding(text) for text in texts]  # order across batches


# --- image forms ---------------------------------------------------------------------------------


def test_images_as_path_bytesio_and_https_url(
    model: AurousEmbedding, aurous_emulator: Emulator, images: dict[str, Path]
) -> None:
    red = images["red"]
    by_path = model.get_image_embedding(str(red))
    by_bytes = model.get_image_embedding(io.BytesIO(red.read_bytes()))
    assert by_bytes == by_path  # the same PNG bytes went out
    mixed = model.get_image_embedding_batch([io.BytesIO(red.read_bytes()), str(images["blue"])])
    assert mixed[0] == by_path
    assert cosine(mixed[1], model.get_query_embedding("blue")) > cosine(
        mixed[1], model.get_query_embedding("red")
    )
    by_url = model.get_image_embedding("https://example.com/red.png")
    # sent as an image URL (billed as an image), not as text; the API fetches it
    assert aurous_emulator.ledger[-1].image_tokens > 0
    assert aurous_emulator.ledger[-1].text_tokens == 0
    assert cosine(by_url, model.get_query_embedding("red")) > cosine(
        by_url, model.get_query_embedding("blue")
    )


async def test_async_single_image_and_query(
    model: AurousEmbedding, images: dict[str, Path]
) -> None:
    image = await model.aget_image_embedding(io.BytesIO(images["green"].read_bytes()))
    assert image == model.get_image_embedding(str(images["green"]))
    green, red = await model.aget_query_embedding("green"), await model.aget_text_embedding("red")
    assert cosine(image, green) > cosine(image, red)


# --- settings, serialisation and the key --------------------------------------------------------


def test_key_never_serialised_and_settings_rebuild_from_to_dict(
    make_model: Callable[..., AurousEmbedding],
    aurous_emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = aurous_emulator.api_key
    model = make_model(max_retries=1)
    shown = [
        repr(model),
        str(model),
        str(model.to_dict()),
        model.to_json(),
        str(model.to_payload()),
        str(model.model_dump()),
    ]
    assert all(key not in text for text in shown)
    assert pickle.loads(pickle.dumps(model)).to_dict() == model.to_dict()
    assert "api_key" not in model.to_dict()
    data = model.to_dict()
    assert data["class_name"] == AurousEmbedding.class_name() == "AurousEmbedding"
    assert data["model_name"] == "aurous-embed-vision-1.0"
    monkeypatch.setenv("AUROUS_API_KEY", key)  # a rebuilt model gets the key from the env
    rebuilt = AurousEmbedding.from_dict(data)
    assert rebuilt.to_dict() == data
    assert rebuilt.get_query_embedding("hello") == model.get_query_embedding("hello")
    rebuilt.close()


def test_missing_key_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUROUS_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="AUROUS_API_KEY"):
        AurousEmbedding()


def test_model_name_and_dimensions_reach_the_api(
    make_model: Callable[..., AurousEmbedding], aurous_emulator: Emulator
) -> None:
    model = make_model("aurous-embed-vision")
    model.get_text_embedding("hello")
    assert aurous_emulator.ledger[-1].model == "aurous-embed-vision"
    model.dimensions = 1000
    with pytest.raises(UnsupportedDimensionsError):
        model.get_query_embedding("hello")


def test_async_methods_from_successive_event_loops(
    model: AurousEmbedding, aurous_emulator: Emulator
) -> None:
    # scripts and notebooks call asyncio.run() again and again with the same model
    first = asyncio.run(model.aget_text_embedding_batch(["first text", "second text"]))
    second = asyncio.run(model.aget_text_embedding_batch(["first text", "second text"]))
    query = asyncio.run(model.aget_query_embedding("first text"))
    assert first == second
    assert query == first[0]
    assert aurous_emulator.stats.by_route == {EMBEDDINGS: 5}
