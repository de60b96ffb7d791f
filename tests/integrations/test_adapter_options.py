"""The whole core reaches framework users: cache, budget, progress and a shared client through
every adapter; unknown options refused; text+image documents as one vector in every framework;
async Chroma through the async client."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import chromadb
import pytest
from PIL import Image as PILImage

from aurous_embed import (
    AsyncAurousClient,
    AurousClient,
    BudgetExceededError,
    Image,
    InputValidationError,
    MissingAPIKeyError,
    Text,
)
from aurous_embed.testing import Emulator
from tests.integrations.test_chroma import sent, settings

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])


@pytest.fixture
def photo(tmp_path: Path) -> str:
    path = tmp_path / "red-bag.png"
    PILImage.new("RGB", (32, 32), (220, 20, 20)).save(path)
    return str(path)


# --- every adapter takes the core's options ------------------------------------------------------


def test_one_client_serves_all_three_adapters_with_one_cache(env: Emulator, tmp_path: Path) -> None:
    from aurous_embed.chroma import AurousEmbeddingFunction
    from aurous_embed.langchain import AurousEmbeddings
    from aurous_embed.llama_index import AurousEmbedding

    progress: list[int] = []
    with AurousClient(cache=tmp_path / "shared.sqlite") as client:
        langchain = AurousEmbeddings(client=client, on_progress=lambda d, t, c: progress.append(d))
        llama = AurousEmbedding(client=client)
        chroma = AurousEmbeddingFunction(client=client)
        first = langchain.embed_documents(["red leather bag"])[0]
        assert llama.get_text_embedding_batch(["red leather bag"])[0] == first
        assert [float(x) for x in chroma(["red leather bag"])[0]] == pytest.approx(first, abs=1e-6)
        assert asyncio.run(langchain.aembed_documents(["red leather bag"]))[0] == first
        assert sent(env) == 1  # one request: the rest were cache hits of the one client
        assert client.cache_stats.hits == 3
        assert progress == [1, 1]  # on_progress went through (sync and async)


@pytest.mark.parametrize("adapter", ["langchain", "llama_index", "chroma"])
def test_cache_and_budget_options_work_in_every_adapter(
    env: Emulator, tmp_path: Path, adapter: str
) -> None:
    cache = str(tmp_path / f"{adapter}.sqlite")
    model = make(adapter, cache=cache)
    embed(adapter, model, ["same text"])
    embed(adapter, model, ["same text"])
    assert sent(env) == 1  # measured before: 2 requests and 2 charges (LlamaIndex ignored it)
    broke = make(adapter, max_credits=1e-7)
    with pytest.raises(BudgetExceededError):
        embed(adapter, broke, ["another text"])
    assert sent(env) == 1  # nothing over budget was sent
    for made in (model, broke):
        if hasattr(made, "close"):
            made.close()


def make(adapter: str, **options: Any) -> Any:
    if adapter == "langchain":
        from aurous_embed.langchain import AurousEmbeddings

        return AurousEmbeddings(**options)
    if adapter == "llama_index":
        from aurous_embed.llama_index import AurousEmbedding

        return AurousEmbedding(**options)
    from aurous_embed.chroma import AurousEmbeddingFunction

    return AurousEmbeddingFunction(**options)


def embed(adapter: str, model: Any, texts: list[str]) -> Any:
    if adapter == "langchain":
        return model.embed_documents(texts)
    if adapter == "llama_index":
        return model.get_text_embedding_batch(texts)
    return model(texts)


def test_unknown_options_are_refused_everywhere(env: Emulator) -> None:
    from pydantic import ValidationError

    from aurous_embed.chroma import AurousEmbeddingFunction
    from aurous_embed.langchain import AurousEmbeddings
    from aurous_embed.llama_index import AurousEmbedding

    with pytest.raises(ValidationError, match="bogus_option"):
        AurousEmbedding(cache="li.sqlite", max_credits=1e-7, bogus_option=123)  # was accepted
    with pytest.raises(ValidationError, match="bogus_option"):
        AurousEmbeddings(bogus_option=123)
    with pytest.raises(TypeError, match="bogus_option"):
        AurousEmbeddingFunction(bogus_option=123)  # type: ignore[call-arg]


def test_client_options_and_a_client_do_not_mix(env: Emulator) -> None:
    from aurous_embed.langchain import AurousEmbeddings
    from aurous_embed.llama_index import AurousEmbedding

    with AurousClient() as client:
        with pytest.raises(InputValidationError, match="set on that client") as info:
            AurousEmbedding(client=client, max_credits=1.0)
        assert info.value.param == "max_credits"
        with pytest.raises(Exception, match="set on that client"):
            AurousEmbeddings(client=client, cache="x.sqlite")
        with pytest.raises(InputValidationError, match="AurousClient"):
            AurousEmbedding(client="not a client")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("api_key", "al_live_other0000000"),
        ("base_url", "http://127.0.0.1:9/v1"),
        ("timeout", 5.0),
        ("max_retries", 0),
        ("max_concurrency", 2),
        ("cache", "x.sqlite"),
        ("cache_urls", True),
        ("max_credits", 1e-9),
    ],
)
def test_chroma_refuses_client_options_next_to_a_client_like_the_others(
    env: Emulator, option: str, value: object
) -> None:
    """They were accepted and silently ignored (a budget that never applied)."""
    from aurous_embed.chroma import AurousEmbeddingFunction

    with AurousClient() as client:
        with pytest.raises(InputValidationError, match="set on that client") as info:
            AurousEmbeddingFunction(client=client, **{option: value})  # type: ignore[arg-type]
        assert info.value.param == option
        AurousEmbeddingFunction(client=client, dimensions=1024, show_progress=True)  # call options


def test_chroma_keeps_its_cache_when_reopened_and_the_stored_endpoint_wins(
    env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aurous_embed.chroma import AurousEmbeddingFunction

    cache = str(tmp_path / "chroma-cache.sqlite")
    store = chromadb.PersistentClient(str(tmp_path / "db"), settings=settings())
    docs = store.create_collection(
        "docs", embedding_function=AurousEmbeddingFunction(cache=cache, base_url=env.base_url)
    )
    docs.add(ids=["a"], documents=["a red leather bag"])
    reopened = chromadb.PersistentClient(str(tmp_path / "db"), settings=settings()).get_collection(
        "docs"
    )
    assert reopened.configuration_json["embedding_function"]["config"]["cache"] == cache
    reopened.query(query_texts=["a red leather bag"], n_results=1)  # the reopened one's cache
    assert sent(env) == 1
    monkeypatch.setenv("AUROUS_BASE_URL", "http://127.0.0.1:9/v1")  # another endpoint
    with pytest.raises(InputValidationError, match="do not mix"):
        chromadb.PersistentClient(str(tmp_path / "db"), settings=settings()).get_collection(
            "docs"
        ).query(query_texts=["something else"], n_results=1)


def test_the_missing_key_error_names_the_import(monkeypatch: pytest.MonkeyPatch) -> None:
    from aurous_embed.chroma import AurousEmbeddingFunction

    monkeypatch.delenv("AUROUS_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match=r"import aurous_embed\.chroma"):
        AurousEmbeddingFunction()(["x"])


# --- text+image documents as one vector ------------------------------------------------------------


def expected_vector(env: Emulator, text: str, image: str) -> list[float]:
    with AurousClient() as client:
        return client.embed([Text(text), Image(image)]).embedding


@pytest.mark.parametrize("store_kind", ["memory", "chroma"])
async def test_langchain_documents_with_an_image_become_one_vector(
    env: Emulator, photo: str, tmp_path: Path, store_kind: str
) -> None:
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    from aurous_embed.langchain import AurousEmbeddings

    embeddings = AurousEmbeddings()
    docs = [
        Document("Red leather bag", metadata={"image": photo}),
        Document("Blue cotton shirt"),  # no image: text only
    ]
    combined = expected_vector(env, "Red leather bag", photo)

    def new_store() -> Any:
        if store_kind == "memory":
            return InMemoryVectorStore(embeddings)
        from langchain_chroma import Chroma

        return Chroma(
            collection_name=f"docs{len(list(tmp_path.iterdir()))}",
            embedding_function=embeddings,
            client=chromadb.PersistentClient(str(tmp_path / "db"), settings=settings()),
            collection_metadata={"hnsw:space": "cosine"},
        )

    for mode in ("sync", "async"):
        store = new_store()
        if mode == "sync":
            ids = embeddings.add_documents(store, docs)
        else:
            ids = await embeddings.aadd_documents(store, docs)
        stored = vectors_of(store, ids)
        assert stored[0] == pytest.approx(combined, abs=1e-6)
        assert stored[1] == pytest.approx(embeddings.embed_query("Blue cotton shirt"), abs=1e-6)
        assert store.similarity_search("red bag", k=1)[0].page_content == "Red leather bag"
        if store_kind == "chroma":  # cosine space: relevance scores in [0, 1]
            hits = store.similarity_search_with_relevance_scores("red bag", k=1)
            assert 0 <= hits[0][1] <= 1
    embeddings.close()
    await embeddings.aclose()


def vectors_of(store: Any, ids: list[str]) -> list[list[float]]:
    if hasattr(store, "store"):  # InMemoryVectorStore
        return [store.store[i]["vector"] for i in ids]
    got = store.get(ids=ids, include=["embeddings"])
    by_id = dict(zip(got["ids"], got["embeddings"], strict=True))
    return [[float(x) for x in by_id[i]] for i in ids]


def test_embed_multimodal_warns_when_a_plain_string_names_an_image_file(
    env: Emulator, photo: str
) -> None:
    from aurous_embed.langchain import AurousEmbeddings

    embeddings = AurousEmbeddings()
    with pytest.warns(UserWarning, match="wrap it as Image"):
        as_text = embeddings.embed_multimodal([["caption", photo]])[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        as_image = embeddings.embed_multimodal([["caption", Image(photo)]])[0]
    assert as_text != as_image
    assert as_image == expected_vector(env, "caption", photo)
    embeddings.close()


async def test_llama_index_image_nodes_become_one_text_and_image_vector(
    env: Emulator, photo: str
) -> None:
    from llama_index.core.indices import MultiModalVectorStoreIndex
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.schema import ImageNode, TextNode

    from aurous_embed.llama_index import AurousEmbedding

    model = AurousEmbedding(multimodal_nodes=True)
    combined = expected_vector(env, "Red leather bag", photo)
    nodes = [
        ImageNode(text="Red leather bag", image_path=photo),
        TextNode(text="Blue cotton shirt"),
    ]
    embedded = IngestionPipeline(transformations=[model]).run(nodes=nodes)
    assert embedded[0].embedding == pytest.approx(combined, abs=1e-6)
    assert embedded[1].embedding == model.get_text_embedding("Blue cotton shirt")
    async_embedded = await model.acall([ImageNode(text="Red leather bag", image_path=photo)])
    assert async_embedded[0].embedding == pytest.approx(combined, abs=1e-6)
    index = MultiModalVectorStoreIndex(embedded, embed_model=model, image_embed_model=model)
    hits = index.as_retriever(image_similarity_top_k=1).text_to_image_retrieve("red bag")
    assert (hits and hits[0].node.embedding is None) or hits  # retrievable
    plain_model = AurousEmbedding()
    plain = plain_model(nodes=[ImageNode(text="Red leather bag", image_path=photo)])
    assert plain[0].embedding == model.get_text_embedding("Red leather bag")  # off: text only
    for made in (model, plain_model):
        made.close()
        await made.aclose()


# --- async Chroma ----------------------------------------------------------------------------------


async def test_async_chroma_collections_embed_with_the_async_client(
    chroma_server: str, env: Emulator, photo: str
) -> None:
    from aurous_embed.chroma import aadd, aquery

    host, port = chroma_server.split(":")
    chroma = await chromadb.AsyncHttpClient(host=host, port=int(port), settings=settings())
    collection = await chroma.get_or_create_collection("async-docs", embedding_function=None)
    async with AsyncAurousClient() as client:
        await aadd(
            collection,
            ids=["bag", "shirt"],
            documents=["a red leather bag", "a blue cotton shirt"],
            client=client,
        )
        await aadd(collection, ids=["photo"], uris=[photo], client=client)
        found = await aquery(collection, query_texts=["leather bag"], n_results=1, client=client)
        assert found["ids"] == [["bag"]]
        by_image = await aquery(collection, query_uris=[photo], n_results=1, client=client)
        assert by_image["ids"] == [["photo"]]
        with pytest.raises(InputValidationError, match="exactly one"):
            await aadd(collection, ids=["x"], client=client)
    assert sent(env) == 5
