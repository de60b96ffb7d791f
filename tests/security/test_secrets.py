"""The API key never shows: reprs, exceptions, DEBUG logs, persisted stores, serialisations; and it
is never sent over plain http to a host that is not loopback.

The key is distinctive (``al_live_`` + 64 hex characters, configured on the emulator) and a leak is
any 16-character run of its secret part, so a truncated or re-wrapped key is caught too. Cassettes
are scanned by ``tests/recorded/test_cassettes.py`` (every cassette, every request header); that is
not repeated here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import pickle
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import chromadb
import httpx
import pytest
from chromadb.api.client import SharedSystemClient
from chromadb.config import Settings
from langchain_core.load import dumpd, dumps
from pydantic import ValidationError

from aurous_embed import (
    APIConnectionError,
    APIStatusError,
    AsyncAurousClient,
    AurousClient,
    AuthenticationError,
    BatchEmbeddingError,
    InputValidationError,
)
from aurous_embed.chroma import AurousEmbeddingFunction
from aurous_embed.langchain import AurousEmbeddings
from aurous_embed.llama_index import AurousEmbedding
from aurous_embed.testing import Emulator
from tests.unit.conftest import FakeClock

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

SECRET = hashlib.sha256(b"aurous-embed issue 7: never show this").hexdigest()  # 64 hex
KEY = "al_live_" + SECRET
WRONG_KEY = "al_live_" + hashlib.sha256(b"a key the API does not know").hexdigest()
WINDOW = 16  # the dashboard shows 14 characters of a key ("al_live_" + 6): anything longer leaks


def leaked(blob: str | bytes, *keys: str) -> list[str]:
    """Every key of which a WINDOW-character run of the secret part appears in ``blob``."""
    text = blob.decode("latin-1") if isinstance(blob, bytes) else blob
    found = []
    for key in keys or (KEY, WRONG_KEY):
        secret = key.split("_", 2)[-1]
        runs = {secret[i : i + WINDOW] for i in range(len(secret) - WINDOW + 1)}
        if any(run in text for run in runs):
            found.append(key)
    return found


def test_the_detector_finds_whole_and_partial_keys() -> None:
    assert leaked(f"X-Api-Key: {KEY}") == [KEY]
    assert leaked(f"Authorization: Bearer {KEY[:30]}...") == [KEY]
    assert leaked(WRONG_KEY[-20:].encode()) == [WRONG_KEY]
    assert leaked("api_key='***' al_live_" + SECRET[:6]) == []


@pytest.fixture(scope="module")
def emulator(aurous_emulator_factory_module: Callable[..., Emulator]) -> Emulator:
    return aurous_emulator_factory_module(
        keys=[KEY], native_dimension=16, rpm=1e9, rpm_burst=1e9, tpm=1e12
    )


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    emulator.reset()
    return emulator


# --- repr and str --------------------------------------------------------------------------------


async def test_repr_and_str_of_clients_and_adapters_never_show_the_key(emu: Emulator) -> None:
    url = emu.base_url
    client = AurousClient(KEY, base_url=url)
    aclient = AsyncAurousClient(KEY, base_url=url)
    lc = AurousEmbeddings(api_key=KEY, base_url=url)
    li = AurousEmbedding(api_key=KEY, base_url=url)
    ch = AurousEmbeddingFunction(api_key=KEY, base_url=url)
    objects: list[Any] = [client, aclient, lc, li, ch]
    try:
        # Used once each, so lazily built parts (pools, Chroma's client) exist too.
        client.embed("a")
        await aclient.embed("b")
        lc.embed_query("c")
        li.get_text_embedding("d")
        ch(["e"])
        for obj in objects:
            shown = [
                repr(obj),
                str(obj),
                f"{obj!r:>10}",
                repr(vars(obj)) if hasattr(obj, "__dict__") else "",
            ]
            for text in shown:
                assert leaked(text) == [], (type(obj).__name__, text)
        assert "api_key='***'" in repr(client) and "api_key='***'" in repr(aclient)
        assert "**********" in repr(lc)  # masked, not missing
    finally:
        client.close()
        await aclient.close()
        lc.close()
        await lc.aclose()
        li.close()
        await li.aclose()


# --- exceptions ----------------------------------------------------------------------------------


def exception_texts(error: BaseException) -> list[str]:
    """Everything an exception shows: str, repr, attributes, and the formatted chain."""
    texts = [str(error), repr(error), repr(vars(error)), repr(error.args)]
    texts.append("".join(traceback.format_exception(error)))
    for attr in ("body", "headers", "message", "errors", "results"):
        if hasattr(error, attr):
            texts.append(repr(getattr(error, attr)))
    return texts


async def test_authentication_errors_never_show_either_key(emu: Emulator) -> None:
    url = emu.base_url
    revoked = "al_live_" + hashlib.sha256(b"revoked").hexdigest()
    emu.add_key(revoked)
    emu.revoke_key(revoked)
    errors: list[BaseException] = []
    for key in (WRONG_KEY, revoked):
        with AurousClient(key, base_url=url) as client:
            with pytest.raises(AuthenticationError) as info:
                client.embed("x")
            errors.append(info.value)
            with pytest.raises(BatchEmbeddingError) as batch:
                client.embed_many(["x", "y", "z"])
            errors.append(batch.value)
        async with AsyncAurousClient(key, base_url=url) as aclient:
            with pytest.raises(AuthenticationError) as ainfo:
                await aclient.embed("x")
            errors.append(ainfo.value)
    lc = AurousEmbeddings(api_key=WRONG_KEY, base_url=url)
    with pytest.raises(BatchEmbeddingError) as lc_info:
        lc.embed_documents(["x"])
    lc.close()
    errors.append(lc_info.value)
    codes = {e.code for e in errors if isinstance(e, AuthenticationError)}
    assert codes == {"invalid_api_key", "revoked_api_key"}
    for error in errors:
        for text in exception_texts(error):
            assert leaked(text, KEY, WRONG_KEY, revoked) == [], text


def test_connection_errors_never_show_the_key() -> None:
    # A loopback port nobody listens on: the request cannot leave, the error must still be clean.
    with AurousClient(KEY, base_url="http://127.0.0.1:9/v1", max_retries=0) as client:
        with pytest.raises(APIConnectionError) as info:
            client.embed("x")
    assert info.value.may_have_reached_server is False
    for text in exception_texts(info.value):
        assert leaked(text) == [], text


# --- logs ---------------------------------------------------------------------------------------


async def test_debug_logs_of_real_requests_never_show_the_key(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: aurous_embed, httpx, httpcore and the rest
    url = emu.base_url
    # Retries (5xx, 429, a reset after the answer was charged) make the client log its decisions.
    emu.queue_faults("status=503", "status=500", "reset", "rate_limit")
    clock = FakeClock()
    with AurousClient(KEY, base_url=url, max_retries=6, clock=clock) as client:
        client.embed("logged")
        client.embed_many(["one", "two", "three"])
    for backend in ("httpx", "aiohttp"):
        async with AsyncAurousClient(KEY, base_url=url, http_backend=backend) as aclient:
            await aclient.embed_many(["four", "five"])
    with AurousClient(WRONG_KEY, base_url=url) as wrong, pytest.raises(AuthenticationError):
        wrong.embed("refused")
    lc = AurousEmbeddings(api_key=KEY, base_url=url)
    lc.embed_documents(["six"])
    await lc.aembed_query("seven")
    lc.close()
    await lc.aclose()

    records = caplog.records
    names = {record.name for record in records}
    # The capture really saw DEBUG traffic of every layer, and the retries. (Requests on the
    # client's own pool skip httpx.Client, so httpx's own "HTTP Request:" line is not among them.)
    assert "aurous_embed" in names
    assert any(name.startswith("httpcore") for name in names)
    assert any(r.levelno == logging.DEBUG and r.name.startswith("httpcore") for r in records)
    assert any("retrying" in r.getMessage() for r in records if r.name == "aurous_embed")
    assert sum(emu.stats.faults.values()) == 4
    assert len(clock.sleeps) >= 4
    for record in records:
        shown = [record.getMessage(), repr(record.args), record.exc_text or "", repr(vars(record))]
        for text in shown:
            assert leaked(text) == [], (record.name, text)
    assert leaked(caplog.text) == []


# --- persisted and serialised forms --------------------------------------------------------------


def files_leaking(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and leaked(p.read_bytes())]


def test_chroma_persistent_directory_never_holds_the_key(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "chroma"
    settings = Settings(anonymized_telemetry=False, allow_reset=True)
    monkeypatch.setenv("AUROUS_BASE_URL", emu.base_url)
    monkeypatch.delenv("AUROUS_API_KEY", raising=False)

    # Created with the key passed directly (never persisted: only the env var NAME is stored).
    client = chromadb.PersistentClient(str(db), settings=settings)
    docs = client.create_collection(
        "docs", embedding_function=AurousEmbeddingFunction(api_key=KEY, base_url=emu.base_url)
    )
    docs.add(ids=["bag", "shirt"], documents=["a red leather bag", "a blue cotton shirt"])
    assert docs.query(query_texts=["red bag"], n_results=1)["ids"] == [["bag"]]
    SharedSystemClient.clear_system_cache()  # drop the in-process system: a real reopen

    # Reopened without the function: Chroma rebuilds it from the stored config + the env var.
    monkeypatch.setenv("AUROUS_API_KEY", KEY)
    reopened = chromadb.PersistentClient(str(db), settings=settings).get_collection("docs")
    reopened.add(ids=["lamp"], documents=["a brass desk lamp"])
    assert reopened.query(query_texts=["desk lamp"], n_results=1)["ids"] == [["lamp"]]
    stored = reopened.configuration_json["embedding_function"]
    assert stored["name"] == "aurous" and stored["config"]["api_key_env_var"] == "AUROUS_API_KEY"
    SharedSystemClient.clear_system_cache()

    assert emu.stats.charges == 2 + 1 + 1 + 1
    assert any(db.rglob("*.sqlite3")), "the scan would have nothing to look at"
    assert files_leaking(db) == []
    assert any(b"AUROUS_API_KEY" in p.read_bytes() for p in db.rglob("*") if p.is_file())


def test_llama_index_serialisations_never_hold_the_key(emu: Emulator) -> None:
    model = AurousEmbedding(api_key=KEY, base_url=emu.base_url, dimensions=1024)
    try:
        model.get_text_embedding("used once")
        shown = [
            json.dumps(model.to_dict()),
            model.to_json(),
            json.dumps(model.to_payload() if hasattr(model, "to_payload") else {}),
            model.model_dump_json(),
            repr(model.model_dump()),
        ]
        for text in shown:
            assert leaked(text) == [], text
        assert model.to_dict()["base_url"] == emu.base_url  # the settings are there, the key not
        # A pickle is for worker processes, and carries the key so that the copy never takes
        # another one (tests/integrations/test_process_pools.py); its repr and str still hide it.
        copy = pickle.loads(pickle.dumps(model))
        assert leaked(repr(copy)) == [] and leaked(str(copy)) == []
        assert leaked(json.dumps(copy.to_dict())) == []
    finally:
        model.close()


def test_langchain_serialisations_never_hold_the_key(emu: Emulator) -> None:
    embeddings = AurousEmbeddings(api_key=KEY, base_url=emu.base_url)
    try:
        embeddings.embed_query("used once")
        shown = [
            json.dumps(dumpd(embeddings)),
            dumps(embeddings),
            dumps(embeddings, pretty=True),
            embeddings.model_dump_json(),
            json.dumps(embeddings.model_dump(mode="json")),
            repr(embeddings.model_dump()),
        ]
        for text in shown:
            assert leaked(text) == [], text
        # A pickle is for worker processes and carries the key (see test_process_pools.py); the
        # copy's serialisations hide it like the original's.
        copy = pickle.loads(pickle.dumps(embeddings))
        assert leaked(dumps(copy)) == [] and leaked(repr(copy)) == []
    finally:
        embeddings.close()


# --- never over plain http to a host that is not loopback ---------------------------------------

NOT_LOOPBACK = [
    "http://api.aurous-labs.com/v1",
    "HTTP://api.example.com/v1",
    "http://10.0.0.5:8787/v1",
    "http://169.254.169.254/v1",
    "http://0.0.0.0:8787/v1",
    "http://localhost.example.com/v1",
    "http://127.0.0.1.nip.io/v1",
    "http://127.0.0.1@evil.example/v1",  # the host is evil.example
    "http://evil.example#@127.0.0.1/v1",
]


def refuses(build: Callable[[], object]) -> InputValidationError:
    with pytest.raises((InputValidationError, ValidationError)) as info:
        build()
    error = info.value
    if isinstance(error, ValidationError):  # LangChain's pydantic model wraps the core's error
        error = error.errors()[0]["ctx"]["error"]
    assert isinstance(error, InputValidationError)
    assert error.param == "base_url"
    assert leaked(str(error)) == []
    return error


@pytest.mark.parametrize("url", NOT_LOOPBACK)
def test_plain_http_to_a_host_that_is_not_loopback_is_refused_everywhere(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(500)

    spy = httpx.Client(transport=httpx.MockTransport(record))
    error = refuses(lambda: AurousClient(KEY, base_url=url, http_client=spy))
    assert "plain http" in str(error) or "https" in str(error)
    refuses(lambda: AsyncAurousClient(KEY, base_url=url))
    refuses(lambda: AurousEmbeddings(api_key=KEY, base_url=url))
    refuses(lambda: AurousEmbedding(api_key=KEY, base_url=url))
    # Chroma builds its client on first use; that use is refused, before anything is sent.
    function = AurousEmbeddingFunction(api_key=KEY, base_url=url)
    refuses(lambda: function(["x"]))
    # The same address from the environment.
    monkeypatch.setenv("AUROUS_BASE_URL", url)
    monkeypatch.setenv("AUROUS_API_KEY", KEY)
    refuses(lambda: AurousClient(http_client=spy))
    refuses(lambda: AurousEmbedding())
    refuses(lambda: AurousEmbeddingFunction()(["x"]))
    assert requests == []
    spy.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_redirect_never_carries_the_key_to_another_host(mode: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "api.aurous-labs.com":
            return httpx.Response(307, headers={"Location": "http://evil.example/collect"})
        return httpx.Response(404)

    base = "https://api.aurous-labs.com/v1"
    transport = httpx.MockTransport(handler)

    def embed_through_a_redirecting_pool() -> None:
        if mode == "sync":
            http = httpx.Client(transport=transport, follow_redirects=True)
            with AurousClient(KEY, base_url=base, http_client=http, max_retries=0) as client:
                client.embed("x")
            return

        async def run() -> None:
            async with httpx.AsyncClient(transport=transport, follow_redirects=True) as http:
                client = AsyncAurousClient(KEY, base_url=base, http_client=http, max_retries=0)
                await client.embed("x")

        asyncio.run(run())

    # Not following the redirect, the client reports the 307; following it, the 404 behind it.
    with pytest.raises(APIStatusError):
        embed_through_a_redirecting_pool()
    assert [r.url.host for r in seen] == ["api.aurous-labs.com"]
    assert all(
        leaked(repr(dict(r.headers))) == [] for r in seen if r.url.host != "api.aurous-labs.com"
    )
