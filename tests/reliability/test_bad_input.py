"""Bad input through every door: the core end to end and each adapter's methods.

Every case raises :class:`InputValidationError` naming the item (``index``) and the field
(``param``), and sends NOTHING: the emulator's request counter and its in-flight high-water mark
both stay at zero. ``tests/unit/test_validation.py`` covers the core's ``embed``/``embed_many``
rules one by one against a MockTransport; this module is about the other ways in (adapters,
streams, estimates, uploads, settings) against a real server.

The last tests are regressions for bad inputs that once got past the client's checks (or past
them for some items of a batch only).
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from aurous_embed import (
    AsyncAurousClient,
    AurousClient,
    Image,
    ImageURL,
    InputValidationError,
    Text,
    image_from_uri,
)
from aurous_embed.chroma import AurousEmbeddingFunction
from aurous_embed.langchain import AurousEmbeddings
from aurous_embed.llama_index import AurousEmbedding
from aurous_embed.testing import Emulator
from tests.helpers import png
from tests.reliability.helpers import UNLIMITED

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

HUGE = 1_000_001  # one character over the documented cap of a text
B64 = "input[0].image_url.b64_json"


@dataclass
class Files:
    good: str
    missing: str
    directory: str
    corrupt: str  # a .png file that is not an image at all
    oversized: bytes  # a real PNG, 5000 px wide (over the 4096 px cap)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("images")
    good = root / "good.png"
    good.write_bytes(png())
    corrupt = root / "corrupt.png"
    corrupt.write_bytes(b"this is not an image, whatever its name says" * 4)
    (root / "a-directory.png").mkdir()
    return Files(
        good=str(good),
        missing=str(root / "missing.png"),
        directory=str(root / "a-directory.png"),
        corrupt=str(corrupt),
        oversized=png((5000, 2)),
    )


@pytest.fixture(scope="module")
def server(aurous_emulator_factory_module: Callable[..., Emulator]) -> Emulator:
    return aurous_emulator_factory_module(**UNLIMITED)


class Doors:
    """Every way in, pointed at the test's emulator; each is built on first use (building one
    costs an SSL context per httpx pool) and closed after the test."""

    def __init__(self, emulator: Emulator, files: Files) -> None:
        self.emulator, self.files = emulator, files
        self._made: dict[str, Any] = {}

    def _make(self, name: str, build: Callable[[], Any]) -> Any:
        if name not in self._made:
            self._made[name] = build()
        return self._made[name]

    @property
    def client(self) -> AurousClient:
        return self._make("client", lambda: AurousClient(**self._options()))

    @property
    def aclient(self) -> AsyncAurousClient:
        return self._make("aclient", lambda: AsyncAurousClient(**self._options()))

    @property
    def lc(self) -> AurousEmbeddings:
        return self.lc_with()

    @property
    def li(self) -> AurousEmbedding:
        return self.li_with()

    @property
    def ch(self) -> AurousEmbeddingFunction:
        return self.ch_with()

    def _options(self) -> dict[str, Any]:
        return {"api_key": self.emulator.api_key, "base_url": self.emulator.base_url}

    def lc_with(self, **fields: Any) -> AurousEmbeddings:
        return self._make(f"lc{fields}", lambda: AurousEmbeddings(**self._options(), **fields))

    def li_with(self, **fields: Any) -> AurousEmbedding:
        return self._make(f"li{fields}", lambda: AurousEmbedding(**self._options(), **fields))

    def ch_with(self, **fields: Any) -> AurousEmbeddingFunction:
        return self._make(
            f"ch{fields}", lambda: AurousEmbeddingFunction(**self._options(), **fields)
        )

    async def close(self) -> None:
        for made in self._made.values():
            if isinstance(made, AurousEmbeddingFunction):
                continue  # its pool is the process-wide shared one
            if isinstance(made, AsyncAurousClient):
                await made.close()
                continue
            made.close()
            if hasattr(made, "aclose"):
                await made.aclose()


@pytest.fixture
async def doors(server: Emulator, files: Files) -> AsyncIterator[Doors]:
    server.reset()
    made = Doors(server, files)
    yield made
    await made.close()


def assert_nothing_sent(emulator: Emulator) -> None:
    stats = emulator.stats
    assert (stats.requests, stats.max_concurrency, stats.charges) == (0, 0, 0), stats


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[Doors], Any]  # may return an awaitable
    index: int | None
    param: str | None
    fragment: str


async def _collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in stream]


CASES = [
    # --- LangChain: AurousEmbeddings ----------------------------------------------------------
    Case("lc-docs-empty", lambda d: d.lc.embed_documents(["ok", ""]), 1, "input", "empty"),
    Case("lc-docs-none", lambda d: d.lc.embed_documents(["ok", None]), 1, "input", "None"),
    Case("lc-docs-int", lambda d: d.lc.embed_documents(["ok", 7]), 1, "input", "not int"),
    Case(
        "lc-docs-nested-list",
        lambda d: d.lc.embed_documents(["ok", ["a", "b"]]),
        1,
        "input",
        "embed_many",
    ),
    Case("lc-docs-huge", lambda d: d.lc.embed_documents(["x" * HUGE]), 0, "input", "1,000,000"),
    Case("lc-docs-nul", lambda d: d.lc.embed_documents(["ok", "a\x00b"]), 1, "input", "NUL"),
    Case(
        "lc-docs-one-string",
        lambda d: d.lc.embed_documents("one string, not a list"),
        None,
        "inputs",
        "list of inputs",
    ),
    Case(
        "lc-docs-lone-surrogate",
        lambda d: d.lc.embed_documents(["ok", "half a pair: \ud83d"]),
        1,
        "input",
        "not valid UTF-8",
    ),
    Case("lc-query-empty", lambda d: d.lc.embed_query(""), None, "input", "empty"),
    Case(
        "lc-query-list-of-str",
        lambda d: d.lc.embed_query(["a", "b"]),
        None,
        "input",
        "embed_many",
    ),
    # image_from_uri's own errors carry no param (reported); the index is right.
    Case(
        "lc-image-http",
        lambda d: d.lc.embed_image(uris=[d.files.good, "http://images.example.com/a.png"]),
        1,
        None,
        "plain http",
    ),
    Case(
        "lc-image-data-not-image",
        lambda d: d.lc.embed_image(uris=["data:text/plain;base64,aGVsbG8="]),
        0,
        None,
        "not an image",
    ),
    Case(
        "lc-image-missing-file",
        lambda d: d.lc.embed_image(uris=[d.files.good, d.files.missing]),
        1,
        B64,
        "does not exist",
    ),
    Case(
        "lc-image-directory",
        lambda d: d.lc.embed_image(uris=[d.files.directory]),
        0,
        B64,
        "is a directory",
    ),
    Case(
        "lc-image-remote-file-uri",
        lambda d: d.lc.embed_image(uris=["file://fileserver/share/a.png"]),
        0,
        None,
        "remote host",
    ),
    Case(
        "lc-multimodal-17-parts",
        lambda d: d.lc.embed_multimodal([[f"part {i}" for i in range(17)]]),
        0,
        "input",
        "17 content parts",
    ),
    Case(
        "lc-multimodal-9-images",
        lambda d: d.lc.embed_multimodal(
            [["ok"], [ImageURL(f"https://images.example.com/{i}.png") for i in range(9)]]
        ),
        1,
        "input",
        "9 image parts",
    ),
    Case(
        "lc-multimodal-http-url",
        lambda d: d.lc.embed_multimodal([["ok"], ["bag", ImageURL("http://images.example.com/a")]]),
        1,
        "input[1].image_url.url",
        "https",
    ),
    Case(
        "lc-multimodal-data-url",
        lambda d: d.lc.embed_multimodal([["bag", ImageURL("data:image/png;base64,iVBORw0KGgo=")]]),
        0,
        "input[1].image_url.url",
        "https",
    ),
    Case(
        "lc-multimodal-nested",
        lambda d: d.lc.embed_multimodal([["bag", ["red", "leather"]]]),
        0,
        "input[1]",
        "nested",
    ),
    Case("lc-multimodal-empty", lambda d: d.lc.embed_multimodal([[]]), 0, "input", "empty list"),
    Case(
        "lc-multimodal-none-part",
        lambda d: d.lc.embed_multimodal([["bag", None]]),
        0,
        "input[1]",
        "NoneType",
    ),
    Case(
        "lc-multimodal-missing-image",
        lambda d: d.lc.embed_multimodal([["bag", Image(d.files.missing)]]),
        0,
        "input[1].image_url.b64_json",
        "does not exist",
    ),
    Case(
        "lc-adocs-empty",
        lambda d: d.lc.aembed_documents(["ok", "ok", ""]),
        2,
        "input",
        "empty",
    ),
    Case(
        "lc-aimage-gopher",
        lambda d: d.lc.aembed_image(uris=["gopher://images.example.com/a.png"]),
        0,
        None,
        "unsupported image URI scheme",
    ),
    Case(
        "lc-amultimodal-huge-part",
        lambda d: d.lc.aembed_multimodal([[Text("y" * HUGE)]]),
        0,
        "input[0].text",
        "1,000,000",
    ),
    Case(
        "lc-dimensions-zero",
        lambda d: d.lc_with(dimensions=0).embed_query("ok"),
        None,
        "dimensions",
        ">= 1",
    ),
    Case(
        "lc-dimensions-negative",
        lambda d: d.lc_with(dimensions=-1024).embed_documents(["ok"]),
        None,
        "dimensions",
        ">= 1",
    ),
    # --- LlamaIndex: AurousEmbedding --------------------------------------------------------------
    Case(
        "li-text-batch-empty",
        lambda d: d.li.get_text_embedding_batch(["ok", ""]),
        1,
        "input",
        "empty",
    ),
    Case(
        "li-text-batch-nul",
        lambda d: d.li.get_text_embedding_batch(["ok", "ok", "a\x00"]),
        2,
        "input",
        "NUL",
    ),
    Case(
        "li-text-batch-huge",
        lambda d: d.li.get_text_embedding_batch(["z" * HUGE]),
        0,
        "input",
        "1,000,000",
    ),
    Case("li-text-empty", lambda d: d.li.get_text_embedding(""), None, "input", "empty"),
    Case("li-query-none", lambda d: d.li.get_query_embedding(None), None, "input", "None"),
    Case(
        "li-query-list-of-str",
        lambda d: d.li.get_query_embedding(["a", "b"]),
        None,
        "input",
        "embed_many",
    ),
    Case(
        "li-image-batch-http",
        lambda d: d.li.get_image_embedding_batch([d.files.good, "http://images.example.com/a"]),
        1,
        None,
        "plain http",
    ),
    Case(
        "li-image-batch-missing",
        lambda d: d.li.get_image_embedding_batch([d.files.missing]),
        0,
        B64,
        "does not exist",
    ),
    Case(
        "li-image-data-not-image",
        lambda d: d.li.get_image_embedding("data:text/plain,hello"),
        0,
        None,
        "not an image",
    ),
    Case(
        "li-image-empty-stream",
        lambda d: d.li.get_image_embedding(io.BytesIO(b"")),
        None,
        B64,
        "empty",
    ),
    Case(
        "li-atext-batch-none",
        lambda d: d.li.aget_text_embedding_batch(["ok", None]),
        1,
        "input",
        "None",
    ),
    Case(
        "li-aimage-batch-ftp",
        lambda d: d.li.aget_image_embedding_batch(["ftp://images.example.com/a.png"]),
        0,
        None,
        "unsupported image URI scheme",
    ),
    Case(
        "li-dimensions-zero",
        lambda d: d.li_with(dimensions=0).get_text_embedding("ok"),
        None,
        "dimensions",
        ">= 1",
    ),
    # --- Chroma: AurousEmbeddingFunction (documents are str, images numpy arrays) ----------------
    Case(
        "ch-float32-array",
        lambda d: d.ch([np.zeros((4, 4, 3), dtype=np.float32)]),
        0,
        B64,
        "uint8",
    ),
    Case("ch-bool-array", lambda d: d.ch([np.zeros((4, 4), dtype=bool)]), 0, B64, "uint8"),
    Case(
        "ch-two-channels",
        lambda d: d.ch(["ok", np.zeros((4, 4, 2), dtype=np.uint8)]),
        1,
        B64,
        "C in 1, 3, 4",
    ),
    Case(
        "ch-empty-array",
        lambda d: d.ch([np.zeros((0, 4, 3), dtype=np.uint8)]),
        0,
        B64,
        "empty dimension",
    ),
    Case("ch-1d-array", lambda d: d.ch([np.zeros(16, dtype=np.uint8)]), 0, B64, "HxW"),
    Case(
        "ch-4d-array",
        lambda d: d.ch([np.zeros((1, 4, 4, 3), dtype=np.uint8)]),
        0,
        B64,
        "HxW",
    ),
    Case("ch-empty-document", lambda d: d.ch(["ok", ""]), 1, "input", "empty"),
    Case("ch-nul-document", lambda d: d.ch(["a\x00b"]), 0, "input", "NUL"),
    Case("ch-none", lambda d: d.ch(["ok", "ok", None]), 2, B64, "NoneType"),
    Case(
        "ch-query-huge",
        lambda d: d.ch.embed_query(input=["q" * HUGE]),
        0,
        "input",
        "1,000,000",
    ),
    Case(
        "ch-dimensions-zero",
        lambda d: d.ch_with(dimensions=0)(["ok"]),
        None,
        "dimensions",
        ">= 1",
    ),
    # --- the core, through the paths the unit tests do not take -------------------------------
    Case("core-estimate-nul", lambda d: d.client.estimate("a\x00"), None, "input", "NUL"),
    Case(
        "core-embed-lone-surrogate",
        lambda d: d.client.embed([Text("ok"), Text("half a pair: \udfff")]),
        None,
        "input[1].text",
        "not valid UTF-8",
    ),
    Case(
        "core-estimate-17-parts",
        lambda d: d.client.estimate([Text(str(i)) for i in range(17)]),
        None,
        "input",
        "17 content parts",
    ),
    Case(
        "core-aestimate-9-images",
        lambda d: d.aclient.estimate([ImageURL(f"https://x.example/{i}.png") for i in range(9)]),
        None,
        "input",
        "9 image parts",
    ),
    Case("core-embed-iter", lambda d: list(d.client.embed_iter([""])), 0, "input", "empty"),
    Case(
        "core-aembed-iter",
        lambda d: _collect(d.aclient.embed_iter([None])),
        0,
        "input",
        "None",
    ),
    Case(
        "core-as-numpy",
        lambda d: d.client.embed_many(["ok", 1.5], as_numpy=True),
        1,
        "input",
        "not float",
    ),
    Case(
        "core-aembed-many-dimensions",
        lambda d: d.aclient.embed_many(["ok"], dimensions=-5),
        None,
        "dimensions",
        ">= 1",
    ),
    Case(
        "core-embed-corrupt-image",
        lambda d: d.client.embed(Image(d.files.corrupt)),
        None,
        B64,
        "cannot decode",
    ),
    Case(
        "core-embed-truncated-jpeg",
        lambda d: d.client.embed(["a photo", Image(b"\xff\xd8\xff\xe0" + bytes(8))]),
        None,
        "input[1].image_url.b64_json",
        "corrupt or truncated",
    ),
    Case(
        "core-embed-oversized-no-fit",
        lambda d: d.client.embed(Image(d.files.oversized, fit=False)),
        None,
        B64,
        "fit=False",
    ),
    Case(
        "core-aembed-oversized-no-fit",
        lambda d: d.aclient.embed([Text("big"), Image(d.files.oversized, fit=False)]),
        None,
        "input[1].image_url.b64_json",
        "over 4096 px",
    ),
    Case(
        "core-data-uri-not-an-image",
        lambda d: d.client.embed(image_from_uri("data:image/png;base64,bm90IGFuIGltYWdl")),
        None,
        B64,
        "cannot decode",
    ),
    Case(
        "core-upload-corrupt",
        lambda d: d.client.upload_file(d.files.corrupt),
        None,
        "file",
        "cannot decode",
    ),
    Case(
        "core-aupload-missing",
        lambda d: d.aclient.upload_file(d.files.missing),
        None,
        "file",
        "does not exist",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_bad_input_is_refused_with_index_and_param_and_nothing_is_sent(
    doors: Doors, case: Case
) -> None:
    async def attempt() -> None:
        outcome = case.call(doors)
        if hasattr(outcome, "__await__"):
            await outcome

    with pytest.raises(InputValidationError) as info:
        await attempt()
    error = info.value
    assert (error.index, error.param) == (case.index, case.param), str(error)
    assert case.fragment in str(error)
    assert isinstance(error, ValueError)  # the documented base: ``except ValueError`` works
    assert_nothing_sent(doors.emulator)


def test_there_are_at_least_40_cases_across_every_door() -> None:
    assert len(CASES) >= 40
    for prefix in ("lc-", "li-", "ch-", "core-"):
        assert sum(case.id.startswith(prefix) for case in CASES) >= 8, prefix


# --- a bad Aurous-Version is refused where each client is built --------------------------------

BAD_VERSIONS = ["2026-5-15", "May 2026", "20260515", "latest"]


@pytest.mark.parametrize("version", BAD_VERSIONS)
async def test_bad_api_version_is_refused_by_every_client_and_adapter(
    server: Emulator, version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.reset()
    key, url = server.api_key, server.base_url
    builders: list[Callable[[], object]] = [
        lambda: AurousClient(key, base_url=url, api_version=version),
        lambda: AsyncAurousClient(key, base_url=url, api_version=version),
        lambda: AurousEmbedding(api_key=key, base_url=url, api_version=version),
        # Chroma builds its client on first use (so that reopening a collection needs no key).
        lambda: AurousEmbeddingFunction(api_key=key, base_url=url, api_version=version)(["ok"]),
    ]
    for build in builders:
        with pytest.raises(InputValidationError) as info:
            build()
        assert (info.value.param, info.value.index) == ("Aurous-Version", None)
        assert "YYYY-MM-DD" in str(info.value)

    # LangChain's pydantic model wraps the core's error in a ValidationError (reported).
    with pytest.raises(ValidationError) as wrapped:
        AurousEmbeddings(api_key=key, base_url=url, api_version=version)
    cause = wrapped.value.errors()[0]["ctx"]["error"]
    assert isinstance(cause, InputValidationError)
    assert cause.param == "Aurous-Version"

    # And from the environment, for the clients that read it.
    monkeypatch.setenv("AUROUS_API_VERSION", version)
    for build in (
        lambda: AurousClient(key, base_url=url),
        lambda: AurousEmbedding(api_key=key, base_url=url),
    ):
        with pytest.raises(InputValidationError) as info:
            build()
        assert info.value.param == "Aurous-Version"
    assert_nothing_sent(server)


# --- regressions: bad input that once got past the client -------------------------------------

# Image headers in a batch are read up front (_images.precheck_image), so a corrupt or oversized
# (fit=False) image stops the batch before the other items are sent and charged.


@pytest.mark.parametrize(
    "door",
    ["core-corrupt", "core-oversized-no-fit", "lc-image-corrupt-file", "li-image-corrupt-file"],
)
async def test_undecodable_or_oversized_image_in_a_batch_is_refused_before_anything_is_sent(
    doors: Doors, door: str
) -> None:
    files = doors.files
    calls: dict[str, Callable[[], object]] = {
        "core-corrupt": lambda: doors.client.embed_many(["ok", Image(files.corrupt)]),
        "core-oversized-no-fit": lambda: doors.client.embed_many(
            ["ok", Image(files.oversized, fit=False)]
        ),
        "lc-image-corrupt-file": lambda: doors.lc.embed_image(uris=[files.good, files.corrupt]),
        "li-image-corrupt-file": lambda: doors.li.get_image_embedding_batch(
            [files.good, files.corrupt]
        ),
    }
    with pytest.raises(InputValidationError) as info:
        calls[door]()
    assert info.value.index == 1
    assert_nothing_sent(doors.emulator)


async def test_llama_index_bad_item_after_the_first_batch_has_its_real_index_and_nothing_is_sent(
    doors: Doors,
) -> None:
    model = doors.li_with(embed_batch_size=2)
    with pytest.raises(InputValidationError) as info:
        model.get_text_embedding_batch(["first", "second", "third", ""])
    assert info.value.index == 3
    assert_nothing_sent(doors.emulator)


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost/a.png",
        "https://images.localhost/a.png",
        "https://127.1/a.png",
        "https://0x7f000001/a.png",
        "https://metadata.azure.com/metadata/instance",
        "https://instance-data.ec2.internal/latest",
    ],
)
async def test_loopback_and_metadata_host_names_are_refused_before_sending(
    doors: Doors, url: str
) -> None:
    with pytest.raises(InputValidationError) as info:
        doors.client.embed(ImageURL(url))
    assert info.value.param == "input[0].image_url.url"
    assert_nothing_sent(doors.emulator)


@pytest.mark.parametrize(
    "url", ["https://images.example.com:99999/a.png", "https://images.example.com:https/a.png"]
)
async def test_url_with_an_invalid_port_is_refused_before_sending(doors: Doors, url: str) -> None:
    with pytest.raises(InputValidationError) as info:
        doors.client.embed(["a photo", ImageURL(url)])
    assert info.value.param == "input[1].image_url.url"
    assert_nothing_sent(doors.emulator)
