"""``AurousEmbeddings`` used for real inside LangChain, against a local emulator on loopback.

The langchain-tests standard suites, ``langchain_chroma.Chroma`` with texts and image files,
``InMemoryVectorStore`` and ``CacheBackedEmbeddings``. The emulator embeds colour words and image
colours into the same buckets, so the text "red" lands near a red image: ranking assertions below
rely on that (plumbing, not model quality).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import chromadb
import pytest
from chromadb.config import Settings
from langchain_chroma import Chroma
from langchain_core.load import dumpd
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from PIL import Image as PILImage
from pydantic import ValidationError

from aurous_embed import (
    Image,
    ImageURL,
    InputValidationError,
    Text,
    UnsupportedDimensionsError,
    WrongModelKindError,
)
from aurous_embed.langchain import AurousEmbeddings
from aurous_embed.testing import Emulator
from tests.helpers import cosine

DIMENSION = 64  # short vectors keep the emulator quick; the adapter does not care
COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


@pytest.fixture(scope="module")
def emulator(aurous_emulator_factory_module: Callable[..., Emulator]) -> Emulator:
    return aurous_emulator_factory_module(native_dimension=DIMENSION, rpm=100_000, rpm_burst=10_000)


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    """The module's emulator with fresh counters."""
    emulator.reset()
    return emulator


@pytest.fixture
async def make_embeddings(emu: Emulator) -> AsyncIterator[Callable[..., AurousEmbeddings]]:
    """``make(**fields)``: instances on the emulator, all closed after the test (async fixture:
    its teardown runs on the test's event loop, which owns the async connections)."""
    made: list[AurousEmbeddings] = []

    def make(**fields: Any) -> AurousEmbeddings:
        made.append(AurousEmbeddings(api_key=emu.api_key, base_url=emu.base_url, **fields))
        return made[-1]

    yield make
    for instance in made:
        instance.close()
        await instance.aclose()


@pytest.fixture
def embeddings(make_embeddings: Callable[..., AurousEmbeddings]) -> AurousEmbeddings:
    return make_embeddings()


@pytest.fixture
def pngs(tmp_path: Path) -> dict[str, str]:
    """Small solid-colour PNG files on disk, by colour name."""
    paths = {}
    for name, rgb in COLOURS.items():
        path = tmp_path / f"{name}.png"
        PILImage.new("RGB", (16, 16), rgb).save(path, format="PNG")
        paths[name] = str(path)
    return paths


def embedding_requests(emu: Emulator) -> int:
    return emu.stats.by_route.get("POST /v1/embeddings", 0)


# --- langchain-tests standard suites ---------------------------------------------------------


class TestAurousEmbeddingsStandardUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[AurousEmbeddings]:
        return AurousEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"api_key": "unit-test-key", "base_url": "http://127.0.0.1:9/v1"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        env = {
            "AUROUS_API_KEY": "key-from-env",
            "AUROUS_BASE_URL": "http://127.0.0.1:9/v1",
            "AUROUS_API_VERSION": "2026-05-15",
        }
        expected = {
            "api_key": "key-from-env",
            "base_url": "http://127.0.0.1:9/v1",
            "api_version": "2026-05-15",
            "model": "aurous-embed-vision",
        }
        return env, {"model": "aurous-embed-vision"}, expected


class TestAurousEmbeddingsStandardIntegration(EmbeddingsIntegrationTests):
    server: Emulator

    @pytest.fixture(autouse=True)
    def _serve(self, emu: Emulator) -> None:
        self.server = emu  # autouse: set before `model` reads the params

    @pytest.fixture
    async def model(self) -> AsyncIterator[AurousEmbeddings]:  # the suite's, plus closing
        instance = self.embeddings_class(**self.embedding_model_params)
        yield instance
        instance.close()
        await instance.aclose()

    @property
    def embeddings_class(self) -> type[AurousEmbeddings]:
        return AurousEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"api_key": self.server.api_key, "base_url": self.server.base_url}


# --- construction and secrets ----------------------------------------------------------------


def test_key_never_appears_in_repr_str_or_dumpd() -> None:
    secret = "al_live_NeverShowThisKey0123456789"
    embeddings = AurousEmbeddings(api_key=secret, base_url="http://127.0.0.1:9/v1")
    shown = [
        repr(embeddings),
        str(embeddings),
        json.dumps(dumpd(embeddings)),
        embeddings.model_dump_json(),
        repr(embeddings.model_dump()),
    ]
    for text in shown:
        assert secret not in text
    assert "**" in repr(embeddings)  # masked, not missing
    assert embeddings.api_key.get_secret_value() == secret


def test_missing_key_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUROUS_API_KEY", raising=False)
    with pytest.raises(ValueError, match=r"AUROUS_API_KEY") as info:
        AurousEmbeddings()
    assert "api_key=" in str(info.value)


def test_settings_are_checked_by_the_core_at_construction() -> None:
    with pytest.raises(ValidationError, match="max_retries"):
        AurousEmbeddings(api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=-1)
    with pytest.raises(ValidationError, match="plain http"):
        AurousEmbeddings(api_key="k", base_url="http://example.com/v1")
    with pytest.raises(ValidationError, match="extra"):
        AurousEmbeddings(api_key="k", base_url="http://127.0.0.1:9/v1", batch_size=10)


def test_model_and_dimensions_reach_the_request(
    emu: Emulator, make_embeddings: Callable[..., AurousEmbeddings]
) -> None:
    with pytest.raises(WrongModelKindError):
        make_embeddings(model="aurous-grow-2.0-pro").embed_query("red")
    with pytest.raises(UnsupportedDimensionsError):
        make_embeddings(dimensions=1000).embed_query("red")
    supported = make_embeddings(dimensions=1024)
    assert len(supported.embed_query("red")) == DIMENSION  # the emulator validates, not applies
    assert emu.stats.by_code.get("model_wrong_kind") == 1


# --- the embedding methods -------------------------------------------------------------------


def test_documents_and_queries_share_one_space(emu: Emulator, embeddings: AurousEmbeddings) -> None:
    docs = embeddings.embed_documents(["red", "blue", "red"])
    query = embeddings.embed_query("red")
    assert docs[0] == docs[2] == query
    assert docs[0] != docs[1]
    assert all(type(x) is float for vector in docs for x in vector)
    assert embedding_requests(emu) == 4  # one request per text, none for the batch as a whole


def test_empty_lists_send_nothing(emu: Emulator, embeddings: AurousEmbeddings) -> None:
    assert embeddings.embed_documents([]) == []
    assert embeddings.embed_image(uris=[]) == []
    assert embeddings.embed_multimodal([]) == []
    assert asyncio.run(embeddings.aembed_documents([])) == []
    assert emu.stats.requests == 0


def test_embed_image_reads_paths_file_uris_and_keeps_order(
    emu: Emulator, embeddings: AurousEmbeddings, pngs: dict[str, str]
) -> None:
    uris = [pngs["red"], pngs["green"], pngs["blue"], Path(pngs["red"]).as_uri()]
    vectors = embeddings.embed_image(uris=uris)
    assert len(vectors) == 4
    assert vectors[3] == vectors[0]  # a path and its file:// URI are the same image
    for position, name in enumerate(["red", "green", "blue"]):
        query = embeddings.embed_query(name)
        nearest = max(range(3), key=lambda i: cosine(query, vectors[i]))
        assert nearest == position  # the word finds the image of its colour, in input order
    assert embedding_requests(emu) == 4 + 3


def test_embed_image_bad_uri_names_the_index_and_sends_nothing(
    emu: Emulator, embeddings: AurousEmbeddings, pngs: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(InputValidationError) as info:
        embeddings.embed_image(uris=[pngs["red"], str(tmp_path / "missing.png")])
    assert info.value.index == 1
    assert "missing.png" in str(info.value)
    with pytest.raises(InputValidationError) as info:
        embeddings.embed_image(uris=[pngs["red"], pngs["blue"], "ftp://example.com/a.png"])
    assert info.value.index == 2
    assert emu.stats.requests == 0


def test_embed_multimodal_one_vector_per_document(
    emu: Emulator, embeddings: AurousEmbeddings, pngs: dict[str, str]
) -> None:
    vectors = embeddings.embed_multimodal(
        [
            ["red bag", Image(pngs["red"])],
            [Text("red bag"), Image(pngs["red"])],  # a str part is a Text part
            ["red bag", "on sale"],  # several strs are parts of ONE document, not N inputs
            "red bag",
            [ImageURL("https://example.com/red-bag.png")],
        ]
    )
    assert len(vectors) == 5
    assert vectors[0] == vectors[1]
    assert len({tuple(v) for v in vectors[1:]}) == 4
    assert embedding_requests(emu) == 5
    assert emu.stats.tokens_charged > 1024  # the image parts were sent and billed


class _NoThreads(ThreadPoolExecutor):
    """A default executor that fails the test if anything is pushed to a thread."""

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an async method fell back to a thread pool")


async def test_async_methods_are_native_and_match_sync(
    emu: Emulator, embeddings: AurousEmbeddings, pngs: dict[str, str]
) -> None:
    expected_docs = embeddings.embed_documents(["red", "blue"])
    expected_image = embeddings.embed_image(uris=[pngs["green"]])
    expected_mixed = embeddings.embed_multimodal([["green", Image(pngs["green"])]])
    asyncio.get_running_loop().set_default_executor(_NoThreads())
    assert await embeddings.aembed_documents(["red", "blue"]) == expected_docs
    assert await embeddings.aembed_query("blue") == expected_docs[1]
    assert await embeddings.aembed_image(uris=[pngs["green"]]) == expected_image
    assert await embeddings.aembed_multimodal([["green", Image(pngs["green"])]]) == expected_mixed
    assert embedding_requests(emu) == 4 + 5


async def test_async_bad_uri_sends_nothing(emu: Emulator, embeddings: AurousEmbeddings) -> None:
    with pytest.raises(InputValidationError) as info:
        await embeddings.aembed_image(uris=["http://example.com/a.png"])
    assert info.value.index == 0
    assert emu.stats.requests == 0


# --- inside LangChain ------------------------------------------------------------------------


def test_chroma_texts_and_images_in_one_space(
    emu: Emulator, embeddings: AurousEmbeddings, pngs: dict[str, str], tmp_path: Path
) -> None:
    client = chromadb.PersistentClient(
        path=str(tmp_path / "chroma"), settings=Settings(anonymized_telemetry=False)
    )
    store = Chroma(collection_name="products", embedding_function=embeddings, client=client)
    names = list(COLOURS)
    store.add_images(
        uris=[pngs[name] for name in names],
        metadatas=[{"kind": "image", "colour": name} for name in names],
    )
    store.add_texts(names, metadatas=[{"kind": "text", "colour": name} for name in names])
    assert store._collection.count() == 6
    assert embedding_requests(emu) == 6

    for name in names:
        (image_hit,) = store.similarity_search(name, k=1, filter={"kind": "image"})
        assert image_hit.metadata["colour"] == name  # text query -> the image of that colour
        (text_hit,) = store.similarity_search_by_image(pngs[name], k=1, filter={"kind": "text"})
        assert text_hit.page_content == name  # image query -> the word for its colour
    assert embedding_requests(emu) == 6 + 2 * len(names)


async def test_in_memory_vector_store_sync_and_async(
    emu: Emulator, embeddings: AurousEmbeddings
) -> None:
    texts = ["a red leather bag", "a blue cotton shirt", "a green garden hose"]
    store = await InMemoryVectorStore.afrom_texts(texts, embeddings)
    assert (await store.asimilarity_search("blue shirt", k=1))[0].page_content == texts[1]
    assert store.similarity_search("leather bag", k=1)[0].page_content == texts[0]
    assert embedding_requests(emu) == 3 + 2


def test_cache_backed_embeddings_second_call_sends_nothing(
    emu: Emulator, embeddings: AurousEmbeddings
) -> None:
    from langchain_classic.embeddings import CacheBackedEmbeddings
    from langchain_core.stores import InMemoryByteStore

    cached = CacheBackedEmbeddings.from_bytes_store(
        embeddings,
        InMemoryByteStore(),
        namespace=embeddings.model,
        query_embedding_cache=True,
        key_encoder="sha256",
    )
    texts = ["red", "green", "blue"]
    first = cached.embed_documents(texts)
    first_query = cached.embed_query("purple")
    sent = embedding_requests(emu)
    assert sent == 4
    assert cached.embed_documents(texts) == first
    assert cached.embed_query("purple") == first_query
    assert embedding_requests(emu) == sent  # all answered from the store
    assert first == embeddings.embed_documents(texts)
