"""Adapters and errors cross process boundaries: a pickled adapter works in a worker process with
exactly the key and endpoint it had (never another one from that process's environment), what
cannot be copied is refused with a message, and a worker's error comes back whole."""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from aurous_embed import AurousClient
from aurous_embed.chroma import AurousEmbeddingFunction
from aurous_embed.langchain import AurousEmbeddings
from aurous_embed.llama_index import AurousEmbedding
from aurous_embed.testing import Emulator

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

WRONG_KEY = "al_live_wrongkeyinthisprocess000"


@pytest.fixture(scope="module")
def emu(aurous_emulator_module: Emulator) -> Emulator:
    return aurous_emulator_module


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProcessPoolExecutor]:
    # Workers see another key and another endpoint in their environment: a copy must not use them.
    monkeypatch.setenv("AUROUS_API_KEY", WRONG_KEY)
    monkeypatch.setenv("AUROUS_BASE_URL", "http://127.0.0.1:9/v1")
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as executor:
        yield executor


def _llama(model: AurousEmbedding, text: str) -> list[float]:
    return model.get_text_embedding(text)


def _langchain(embeddings: AurousEmbeddings, text: str) -> list[float]:
    return embeddings.embed_query(text)


def _chroma(function: AurousEmbeddingFunction, text: str) -> list[float]:
    return [float(x) for x in function([text])[0]]


ADAPTERS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "llama_index": (
        lambda emu: AurousEmbedding(api_key=emu.api_key, base_url=emu.base_url),
        _llama,
    ),
    "langchain": (
        lambda emu: AurousEmbeddings(api_key=emu.api_key, base_url=emu.base_url),
        _langchain,
    ),
    "chroma": (
        lambda emu: AurousEmbeddingFunction(api_key=emu.api_key, base_url=emu.base_url),
        _chroma,
    ),
}


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_a_pickled_adapter_works_in_a_worker_process_with_its_own_key(
    emu: Emulator, pool: ProcessPoolExecutor, name: str
) -> None:
    make, embed = ADAPTERS[name]
    adapter = make(emu)
    try:
        here = embed(adapter, "a red bag")
        there = list(pool.map(embed, [adapter, adapter], ["a red bag", "a blue shirt"]))
        assert there[0] == pytest.approx(here, abs=1e-6)
        assert len(there[1]) == len(here)
    finally:
        _close(adapter)


def _close(adapter: Any) -> None:
    if isinstance(adapter, AurousEmbeddingFunction):
        if adapter._lazy.client is not None:
            adapter._lazy.client.close()
    else:
        adapter.close()


def test_a_key_taken_from_the_environment_travels_too(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUROUS_API_KEY", emu.api_key)
    model = AurousEmbedding(base_url=emu.base_url)
    monkeypatch.setenv("AUROUS_API_KEY", WRONG_KEY)  # the copy is made where the key differs
    copy = pickle.loads(pickle.dumps(model))
    try:
        assert copy.get_text_embedding("x") == model.get_text_embedding("x")
    finally:
        copy.close()
        model.close()


@pytest.mark.parametrize("name", list(ADAPTERS))
@pytest.mark.parametrize("holding", ["client", "cache object", "max_credits"])
def test_what_cannot_cross_a_process_is_refused_with_what_to_do(
    emu: Emulator, name: str, holding: str
) -> None:
    from aurous_embed import SQLiteCache

    classes = {
        "llama_index": AurousEmbedding,
        "langchain": AurousEmbeddings,
        "chroma": AurousEmbeddingFunction,
    }
    if holding == "client":
        options: dict[str, Any] = {"client": AurousClient(emu.api_key, base_url=emu.base_url)}
        expected = "api_key="
    elif holding == "cache object":
        options = {
            "api_key": emu.api_key,
            "base_url": emu.base_url,
            "cache": SQLiteCache(":memory:"),
        }
        expected = "cache='file.sqlite'"
    else:
        options = {"api_key": emu.api_key, "base_url": emu.base_url, "max_credits": 5.0}
        expected = "budget of its own"
    adapter = classes[name](**options)
    try:
        with pytest.raises(TypeError, match="cannot be pickled") as info:
            pickle.dumps(adapter)
        assert expected in str(info.value)
        assert emu.api_key not in str(info.value)
    finally:
        _close(adapter)
        if "client" in options:
            options["client"].close()


def _fails(key: str, base_url: str) -> None:
    AurousClient(key, base_url=base_url, max_retries=0).embed_many(["a", "b", "c"])


def test_a_workers_error_comes_back_whole(emu: Emulator) -> None:
    from aurous_embed import AuthenticationError

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as executor:
        future = executor.submit(_fails, "al_live_notavalidkey0000000", emu.base_url)
        with pytest.raises(AuthenticationError) as info:
            future.result(timeout=120)
    assert info.value.status_code == 401
    assert len(info.value.results) == 3  # type: ignore[attr-defined]


def test_llama_index_parallel_ingestion_with_an_explicit_key(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.schema import TextNode

    monkeypatch.setenv("AUROUS_API_KEY", WRONG_KEY)  # the workers must not take this one
    model = AurousEmbedding(api_key=emu.api_key, base_url=emu.base_url)
    try:
        nodes = [TextNode(text=f"node {i}") for i in range(6)]
        pipeline = IngestionPipeline(transformations=[model])
        done = pipeline.run(nodes=nodes, num_workers=2)
        assert [n.get_content() for n in done] == [f"node {i}" for i in range(6)]
        assert [n.embedding for n in done] == model.get_text_embedding_batch(
            [f"node {i}" for i in range(6)]
        )
    finally:
        model.close()


def test_llama_index_use_async_from_sync_code_leaves_no_unclosed_sessions(emu: Emulator) -> None:
    """LlamaIndex runs the async path on a loop of its own from sync code: nothing is left open
    ("Unclosed client session / connector") when the process ends."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from llama_index.core import VectorStoreIndex\n"
        "from llama_index.core.schema import TextNode\n"
        "from aurous_embed.llama_index import AurousEmbedding\n"
        "m = AurousEmbedding(api_key=sys.argv[1], base_url=sys.argv[2])\n"
        "nodes = [TextNode(text=f't{i}') for i in range(5)]\n"
        "index = VectorStoreIndex(nodes, embed_model=m, use_async=True)\n"
        "print(len(index.docstore.docs))\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", code, emu.api_key, emu.base_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"
    assert "Unclosed" not in done.stderr and "unclosed" not in done.stderr, done.stderr
