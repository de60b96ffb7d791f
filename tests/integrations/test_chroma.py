"""``AurousEmbeddingFunction`` used for real by Chroma, against an emulator each test starts.

A persistent collection reopened in another process without passing the function, multimodal
collections through ``ImageLoader``, a real Chroma server over HTTP, the key kept out of every
stored byte, Chroma's legacy trap, config validation and the N-inputs-N-requests contract. The
emulator's vectors are lexical and map an image's dominant colour to colour words, so retrieval
results here are exact expectations. In-process sockets may connect to loopback only.
"""

from __future__ import annotations

import gc
import json
import os
import re
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings
from chromadb.utils.data_loaders import ImageLoader
from PIL import Image as PILImage

from aurous_embed import (
    BatchEmbeddingError,
    InputValidationError,
    MissingAPIKeyError,
    UnsupportedDimensionsError,
)
from aurous_embed.chroma import AurousEmbeddingFunction
from aurous_embed.testing import Emulator

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

HERE = Path(__file__).parent
EMBEDDINGS = "POST /v1/embeddings"
DOCS = {
    "bag": "a red leather messenger bag",
    "shirt": "a blue cotton shirt",
    "lamp": "a brass desk lamp",
}
COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


def settings() -> Settings:
    # A fresh object per client: chromadb.HttpClient writes its host and API class into the one
    # it is given, which would turn a later PersistentClient into an HTTP client.
    return Settings(anonymized_telemetry=False)


def sent(emulator: Emulator) -> int:
    return emulator.stats.by_route.get(EMBEDDINGS, 0)


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.fixture
def emulator(aurous_emulator_factory: Callable[..., Emulator]) -> Emulator:
    # A distinctive key, so a byte scan for it cannot miss or hit by accident.
    return aurous_emulator_factory(keys={"al_test_chromaKEYchromaKEY42": "full"})


@pytest.fixture
def env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator as the environment names it (how Chroma-built functions find the API)."""
    monkeypatch.setenv("AUROUS_API_KEY", emulator.api_key)
    monkeypatch.setenv("AUROUS_BASE_URL", emulator.base_url)
    monkeypatch.delenv("AUROUS_API_VERSION", raising=False)
    return emulator


@pytest.fixture
def no_key(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator's address in the environment, but no key anywhere in it."""
    monkeypatch.delenv("AUROUS_API_KEY", raising=False)
    monkeypatch.setenv("AUROUS_BASE_URL", emulator.base_url)
    return emulator


@pytest.fixture
def pngs(tmp_path: Path) -> dict[str, str]:
    paths = {}
    for colour, rgb in COLOURS.items():
        path = tmp_path / f"{colour}.png"
        PILImage.new("RGB", (16, 16), rgb).save(path)
        paths[colour] = str(path)
    return paths


# --- Chroma, for real ---------------------------------------------------------------------------


def test_persistent_collection_reopens_in_another_process_without_the_function(
    tmp_path: Path, no_key: Emulator
) -> None:
    db = tmp_path / "db"
    # The key is passed directly and is absent from the environment: the legacy trap's case.
    function = AurousEmbeddingFunction(api_key=no_key.api_key)
    client = chromadb.PersistentClient(str(db), settings=settings())
    collection = client.create_collection("docs", embedding_function=function)
    collection.add(ids=list(DOCS), documents=list(DOCS.values()))
    assert sent(no_key) == 3

    child_env = {**os.environ, "AUROUS_API_KEY": no_key.api_key}
    child = subprocess.run(
        [sys.executable, "-W", "error", str(HERE / "chroma_reopen.py"), str(db), "docs", "shirt"],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    answer = json.loads(child.stdout)
    assert answer["ids"] == [["shirt"]]
    assert answer["embedding_function"]["type"] == "known"
    assert answer["embedding_function"]["name"] == "aurous"
    assert sent(no_key) == 4  # the other process embedded its query through the emulator

    key = no_key.api_key
    assert key not in repr(function.get_config())
    assert key not in repr(collection.configuration_json)
    assert key not in repr(client.get_collection("docs").configuration_json)
    assert files_containing(db, key.encode()) == []
    # The scan does see the stored config: it would have found a stored key.
    assert files_containing(db, b"api_key_env_var")


def test_image_loader_uris_query_uris_and_query_images(
    tmp_path: Path, env: Emulator, pngs: dict[str, str]
) -> None:
    client = chromadb.PersistentClient(str(tmp_path / "db"), settings=settings())
    collection = client.create_collection(
        "images", embedding_function=AurousEmbeddingFunction(), data_loader=ImageLoader()
    )
    collection.add(ids=list(pngs), uris=list(pngs.values()))
    assert sent(env) == 3

    by_text = collection.query(query_texts=["red", "blue"], n_results=1)
    assert by_text["ids"] == [["red"], ["blue"]]
    by_uri = collection.query(query_uris=[pngs["blue"]], n_results=1, include=["uris"])
    assert by_uri["ids"] == [["blue"]]
    assert by_uri["uris"] == [[pngs["blue"]]]
    green = np.full((8, 8, 3), COLOURS["green"], dtype=np.uint8)
    assert collection.query(query_images=[green], n_results=1)["ids"] == [["green"]]
    assert sent(env) == 3 + 2 + 1 + 1

    # Reopened without the function (or the loader's help for the query side), text still finds
    # the image: the stored config rebuilt the function.
    reopened = client.get_collection("images", data_loader=ImageLoader())
    assert reopened.query(query_texts=["green"], n_results=1)["ids"] == [["green"]]


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[str]:
    """A real Chroma server (the chromadb package's ``chroma run``) on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cli = Path(sys.executable).with_name("chroma")
    data = tmp_path / "server"
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("AUROUS_")}
    command = [str(cli), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=server_env,
        text=True,
        errors="replace",
    )
    ready, listening = threading.Event(), threading.Event()
    output: list[str] = []

    def read() -> None:  # wait for the ready line instead of polling; EOF also ends the wait
        assert server.stdout is not None
        for line in server.stdout:
            output.append(line)
            if "listening on address" in re.sub(r"\x1b\[[0-9;]*m", "", line):
                listening.set()
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        ready.wait(timeout=60)
        if server.poll() is not None or not listening.is_set():
            pytest.fail("chroma run did not start:\n" + "".join(output)[-3000:])
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        reader.join(timeout=10)
        server.stdout.close()  # type: ignore[union-attr]


def test_http_client_against_a_real_chroma_server(
    chroma_server: str, env: Emulator, tmp_path: Path
) -> None:
    host, port = chroma_server.split(":")
    client = chromadb.HttpClient(host=host, port=int(port), settings=settings())
    collection = client.create_collection("docs", embedding_function=AurousEmbeddingFunction())
    collection.add(ids=list(DOCS), documents=list(DOCS.values()))
    assert collection.query(query_texts=["leather bag"], n_results=1)["ids"] == [["bag"]]

    other = chromadb.HttpClient(host=host, port=int(port), settings=settings())
    reopened = other.get_collection("docs")  # the server hands back the stored config
    assert reopened.configuration_json["embedding_function"]["name"] == "aurous"
    assert reopened.query(query_texts=["desk lamp"], n_results=1)["ids"] == [["lamp"]]
    assert sent(env) == 3 + 1 + 1
    assert env.api_key not in repr(reopened.configuration_json)
    assert files_containing(tmp_path / "server", env.api_key.encode()) == []
    assert files_containing(tmp_path / "server", b"api_key_env_var")
    # chromadb's HttpClient never closes its httpx sessions (its own and its admin client's):
    # close them, or their sockets are garbage-collected unclosed (a ResourceWarning) in whatever
    # test runs later.
    for chroma_client in (client, other):
        for api in (chroma_client, chroma_client._admin_client):  # type: ignore[attr-defined]
            api._server._session.close()  # type: ignore[attr-defined]


# --- keys and Chroma's legacy trap --------------------------------------------------------------


def test_construction_and_rebuild_need_no_key_and_the_first_call_names_the_variable(
    no_key: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    function = AurousEmbeddingFunction()
    rebuilt = AurousEmbeddingFunction.build_from_config(function.get_config())
    assert function.is_legacy() is False
    with pytest.raises(MissingAPIKeyError, match="AUROUS_API_KEY environment variable"):
        rebuilt(["a red bag"])

    custom = AurousEmbeddingFunction(api_key_env_var="MY_AUROUS_KEY")
    with pytest.raises(MissingAPIKeyError, match="MY_AUROUS_KEY environment variable"):
        custom.embed_query(input=["a red bag"])
    assert no_key.stats.requests == 0  # nothing was sent, and nothing was sent at construction

    monkeypatch.setenv("MY_AUROUS_KEY", no_key.api_key)  # read at the first successful call
    assert len(AurousEmbeddingFunction(api_key_env_var="MY_AUROUS_KEY")(["a red bag"])) == 1
    assert sent(no_key) == 1


def test_a_directly_passed_key_is_stored_as_known_not_legacy(
    tmp_path: Path, no_key: Emulator
) -> None:
    function = AurousEmbeddingFunction(api_key=no_key.api_key)
    client = chromadb.PersistentClient(str(tmp_path), settings=settings())
    collection = client.create_collection("docs", embedding_function=function)
    stored = collection.configuration_json["embedding_function"]
    assert stored == {"type": "known", "name": "aurous", "config": function.get_config()}
    schema = collection._model.serialized_schema["keys"]["#embedding"]["float_list"]
    assert schema["vector_index"]["config"]["embedding_function"]["name"] == "aurous"
    assert collection.configuration_json["hnsw"]["space"] == "cosine"  # default_space()
    assert no_key.api_key not in repr(collection._model.serialized_schema)
    assert no_key.stats.requests == 0


# --- config -------------------------------------------------------------------------------------


def test_get_config_round_trips_and_never_holds_the_key() -> None:
    function = AurousEmbeddingFunction(
        model_name="aurous-embed-vision",
        api_key="al_test_directKEYdirectKEY",
        api_key_env_var="TEAM_AUROUS_KEY",
        base_url="https://eu.example.com/v1",
        api_version="2026-05-15",
        dimensions=1024,
        max_concurrency=4,
    )
    config = function.get_config()
    assert config == {
        "model_name": "aurous-embed-vision",
        "api_key_env_var": "TEAM_AUROUS_KEY",
        "base_url": "https://eu.example.com/v1",
        "api_version": "2026-05-15",
        "dimensions": 1024,
        "cache": None,
    }
    assert "directKEY" not in repr(config) and "directKEY" not in repr(vars(function))
    assert AurousEmbeddingFunction.build_from_config(config).get_config() == config
    assert AurousEmbeddingFunction.name() == "aurous"
    assert function.default_space() == "cosine"
    assert set(function.supported_spaces()) == {"cosine", "l2", "ip"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"api_key": "al_test_x"}, "never stored"),
        ({"batch_size": 10}, "unknown"),
        ({"model_name": ""}, "model_name"),
        ({"model_name": None}, "model_name"),
        ({"api_key_env_var": 3}, "api_key_env_var"),
        ({"dimensions": "1024"}, "dimensions"),
        ({"dimensions": True}, "dimensions"),
        ({"base_url": 8080}, "base_url"),
    ],
)
def test_validate_config_rejects_unknown_keys_and_bad_values(
    change: dict[str, Any], message: str
) -> None:
    config = {**AurousEmbeddingFunction().get_config(), **change}
    with pytest.raises(ValueError, match=message):
        AurousEmbeddingFunction.validate_config(config)
    with pytest.raises(ValueError, match=message):
        AurousEmbeddingFunction.build_from_config(config)


def test_config_updates_may_not_change_the_model_or_dimensions(
    tmp_path: Path, no_key: Emulator
) -> None:
    function = AurousEmbeddingFunction(dimensions=1024)
    old = function.get_config()
    for change in ({"model_name": "aurous-embed-vision-2.0"}, {"dimensions": 2048}):
        with pytest.raises(ValueError, match="stored vectors would no longer match"):
            function.validate_config_update(old, {**old, **change})
    function.validate_config_update(old, {**old, "api_key_env_var": "OTHER", "base_url": None})

    # And through Chroma's own modify(): refused, then a harmless change persisted.
    client = chromadb.PersistentClient(str(tmp_path), settings=settings())
    collection = client.create_collection("docs", embedding_function=function)
    with pytest.raises(ValueError, match="cannot change model_name"):
        collection.modify(
            configuration={
                "embedding_function": AurousEmbeddingFunction(
                    model_name="aurous-embed-vision-2.0", dimensions=1024
                )
            }
        )
    renamed = AurousEmbeddingFunction(api_key_env_var="OTHER", dimensions=1024)
    collection.modify(configuration={"embedding_function": renamed})
    assert collection.configuration_json["embedding_function"]["config"]["api_key_env_var"] == (
        "OTHER"
    )


# --- the call contract --------------------------------------------------------------------------


def test_n_documents_send_n_requests_and_come_back_in_order(env: Emulator) -> None:
    function = AurousEmbeddingFunction()
    docs = [f"document number {word}" for word in ("one", "two", "three", "four", "five", "six")]
    vectors = function(docs)
    assert sent(env) == len(docs)
    assert len(vectors) == len(docs)
    assert all(v.dtype == np.float32 and v.shape == vectors[0].shape for v in vectors)
    for doc, vector in zip(docs, vectors, strict=True):
        np.testing.assert_array_equal(function([doc])[0], vector)
    assert sent(env) == 2 * len(docs)


def test_embed_query_takes_input_by_keyword_and_returns_float32(env: Emulator) -> None:
    function = AurousEmbeddingFunction()
    queries = function.embed_query(input=["red leather", "blue cotton"])
    assert [type(q) for q in queries] == [np.ndarray, np.ndarray]
    assert all(q.dtype == np.float32 and q.ndim == 1 for q in queries)
    np.testing.assert_array_equal(queries[1], function(input=["blue cotton"])[0])


def test_images_are_numpy_arrays_and_text_finds_them(env: Emulator) -> None:
    function = AurousEmbeddingFunction()
    red = np.full((8, 8, 3), COLOURS["red"], dtype=np.uint8)
    grey = np.full((8, 8), 40, dtype=np.uint8)  # HxW works too
    images = function([red, grey])
    (query,) = function.embed_query(input=["red"])
    assert float(query @ images[0]) > float(query @ images[1])
    assert sent(env) == 3


def test_inputs_the_core_refuses_send_nothing(env: Emulator) -> None:
    function = AurousEmbeddingFunction()
    with pytest.raises(InputValidationError, match="uint8"):
        function([np.zeros((4, 4, 3), dtype=np.float64)])  # Chroma allows it; the API does not
    assert env.stats.requests == 0
    with pytest.raises(BatchEmbeddingError) as failed:  # dimensions reach the API
        AurousEmbeddingFunction(dimensions=1000)(["x"])
    assert isinstance(failed.value.errors[0], UnsupportedDimensionsError)


def test_a_dropped_function_closes_its_connections(env: Emulator) -> None:
    # A reopened collection rebuilds its function on every call; each must not leak a socket.
    function = AurousEmbeddingFunction()
    function(["open a connection"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        del function
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
