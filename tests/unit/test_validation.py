"""Bad input: each case raises InputValidationError naming the item and field, and sends nothing."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from aurous_embed import (
    AsyncAurousClient,
    AurousClient,
    Image,
    ImageURL,
    InputValidationError,
    MissingAPIKeyError,
    Text,
    VideoURL,
    image_from_uri,
    images_from_uris,
)
from tests.unit.conftest import API_KEY, FakeAPI

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)
OK = "fine"

# (id, input, param, message fragment)
BAD_INPUTS: list[tuple[str, Any, str | None, str]] = [
    ("empty-str", "", "input", "empty"),
    ("none", None, "input", "None"),
    ("int", 42, "input", "not int"),
    ("float", 1.5, "input", "not float"),
    ("empty-list", [], "input", "empty list"),
    ("list-of-str", ["a", "b"], "input", "embed_many"),
    ("single-str-list", ["a"], "input", "embed_many"),
    ("nested-list", [Text("a"), ["b", "c"]], "input[1]", "nested"),
    ("none-part", [Text("a"), None], "input[1]", "not NoneType"),
    ("nul", "a\x00b", "input", "NUL"),
    ("nul-in-part", [Text("ok"), Text("a\x00")], "input[1].text", "NUL"),
    ("lone-surrogate", "abc\ud800", "input", "not valid UTF-8"),
    ("huge-text", "x" * 1_000_001, "input", "1,000,000"),
    ("huge-text-part", [Text("y" * 1_000_001)], "input[0].text", "1,000,000"),
    ("empty-text-part", [Text("")], "input[0].text", "empty"),
    ("non-str-text", [Text(123)], "input[0].text", "must be a str"),  # type: ignore[arg-type]
    ("17-parts", [Text(str(i)) for i in range(17)], "input", "17 content parts; the cap is 16"),
    (
        "9-images",
        [ImageURL(f"https://x.example/{i}.png") for i in range(9)],
        "input",
        "9 image parts; the cap is 8",
    ),
    (
        "9-mixed-images",
        [Image(PNG_1PX)] * 5 + [ImageURL("https://x.example/a.png")] * 4,
        "input",
        "9 image parts",
    ),
    ("http-url", ImageURL("http://x.example/a.png"), "input[0].image_url.url", "https"),
    ("data-url", ImageURL("data:image/png;base64,AAAA"), "input[0].image_url.url", "https"),
    ("ftp-url", ImageURL("ftp://x.example/a.png"), "input[0].image_url.url", "https"),
    ("file-url", ImageURL("file:///tmp/a.png"), "input[0].image_url.url", "Image("),
    ("bare-host", ImageURL("x.example/a.png"), "input[0].image_url.url", "https"),
    ("long-url", ImageURL("https://x.example/" + "a" * 2040), "input[0].image_url.url", "2,048"),
    ("empty-url", ImageURL(""), "input[0].image_url.url", "empty"),
    ("loopback-url", ImageURL("https://127.0.0.1/a.png"), "input[0].image_url.url", "private"),
    ("private-url", ImageURL("https://10.1.2.3/a.png"), "input[0].image_url.url", "private"),
    (
        "metadata-ip",
        ImageURL("https://169.254.169.254/latest"),
        "input[0].image_url.url",
        "private",
    ),
    ("ipv6-loopback", ImageURL("https://[::1]/a.png"), "input[0].image_url.url", "private"),
    (
        "metadata-host",
        ImageURL("https://metadata.google.internal/x"),
        "input[0].image_url.url",
        "metadata",
    ),
    ("video-http", VideoURL("http://x.example/a.mp4"), "input[0].video_url.url", "https"),
    ("missing-file", Image("/no/such/file.png"), "input[0].image_url.b64_json", "does not exist"),
    ("url-as-path", Image("https://x.example/a.png"), "input[0].image_url.b64_json", "is a URI"),
    ("empty-bytes", Image(b""), "input[0].image_url.b64_json", "empty"),
    ("bad-source", Image(3.14), "input[0].image_url.b64_json", "must be a path"),
    (
        "unknown-type",
        {"type": "audio_url", "audio_url": {"url": "https://x"}},
        "input[0].type",
        "unknown part type",
    ),
    (
        "image-url-string",
        {"type": "image_url", "image_url": "https://x.example/a.png"},
        "input[0].image_url",
        "must be an object",
    ),
    (
        "url-and-b64",
        {"type": "image_url", "image_url": {"url": "https://x.example/a", "b64_json": "AA=="}},
        "input[0].image_url",
        "exactly one",
    ),
    (
        "bad-b64",
        {"type": "image_url", "image_url": {"b64_json": "not base64!"}},
        "input[0].image_url.b64_json",
        "base64",
    ),
    ("missing-text", {"type": "text"}, "input[0].text", "not NoneType"),
    (
        "missing-url",
        {"type": "image_url", "image_url": {}},
        "input[0].image_url.url",
        "not NoneType",
    ),
]


@pytest.mark.parametrize(
    ("given", "param", "fragment"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_to_embed(
    client: AurousClient, api: FakeAPI, given: Any, param: str, fragment: str
) -> None:
    with pytest.raises(InputValidationError) as info:
        client.embed(given)
    assert info.value.param == param
    assert info.value.index is None
    assert fragment in str(info.value)
    assert api.requests == []


@pytest.mark.parametrize(
    ("given", "param", "fragment"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_in_embed_many_names_the_index_and_sends_nothing(
    client: AurousClient, api: FakeAPI, given: Any, param: str, fragment: str
) -> None:
    with pytest.raises(InputValidationError) as info:
        client.embed_many([OK, OK, given, OK])
    assert (info.value.index, info.value.param) == (2, param)
    assert str(info.value).startswith(f"item 2 {param}: ")
    assert api.requests == []


@pytest.mark.parametrize(
    ("given", "param", "fragment"),
    [c[1:] for c in BAD_INPUTS[:12]],
    ids=[c[0] for c in BAD_INPUTS[:12]],
)
async def test_bad_input_async(
    aclient: AsyncAurousClient, api: FakeAPI, given: Any, param: str, fragment: str
) -> None:
    async with aclient:
        with pytest.raises(InputValidationError) as info:
            await aclient.embed_many([OK, given])
    assert (info.value.index, info.value.param) == (1, param)
    assert api.requests == []


BAD_OPTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("zero-dimensions", {"dimensions": 0}, "dimensions"),
    ("negative-dimensions", {"dimensions": -1024}, "dimensions"),
    ("float-dimensions", {"dimensions": 1024.0}, "dimensions"),
    ("bool-dimensions", {"dimensions": True}, "dimensions"),
    ("str-dimensions", {"dimensions": "1024"}, "dimensions"),
    ("empty-model", {"model": ""}, "model"),
    ("non-str-model", {"model": 7}, "model"),
    ("empty-user", {"user": ""}, "user"),
    ("long-idempotency-key", {"idempotency_key": "k" * 257}, "idempotency_key"),
    ("empty-idempotency-key", {"idempotency_key": ""}, "idempotency_key"),
]


@pytest.mark.parametrize(
    ("options", "param"), [c[1:] for c in BAD_OPTIONS], ids=[c[0] for c in BAD_OPTIONS]
)
def test_bad_options(
    client: AurousClient, api: FakeAPI, options: dict[str, Any], param: str
) -> None:
    with pytest.raises(InputValidationError) as info:
        client.embed("x", **options)
    assert info.value.param == param
    assert api.requests == []


def test_bad_options_in_embed_many_and_estimate(client: AurousClient, api: FakeAPI) -> None:
    with pytest.raises(InputValidationError, match="dimensions"):
        client.embed_many(["a"], dimensions=0)
    with pytest.raises(InputValidationError, match="dimensions"):
        client.estimate("a", dimensions=-1)
    with pytest.raises(InputValidationError, match="concurrency"):
        client.embed_many(["a"], concurrency=0)
    with pytest.raises(InputValidationError) as info:
        client.embed_many("just one string")
    assert info.value.param == "inputs"
    assert api.requests == []


@pytest.mark.parametrize(
    ("kwargs", "param", "fragment"),
    [
        ({"base_url": "http://api.example.com/v1"}, "base_url", "plain http"),
        ({"base_url": "ftp://api.example.com/v1"}, "base_url", "https"),
        ({"base_url": "not a url"}, "base_url", "https"),
        ({"api_version": "2026/05/15"}, "Aurous-Version", "YYYY-MM-DD"),
        ({"api_version": "v1"}, "Aurous-Version", "YYYY-MM-DD"),
        ({"timeout": 0}, "timeout", "> 0"),
        ({"max_retries": -1}, "max_retries", ">= 0"),
        ({"max_concurrency": 0}, "max_concurrency", ">= 1"),
        ({"model": ""}, "model", "non-empty"),
    ],
)
def test_bad_client_settings(kwargs: dict[str, Any], param: str, fragment: str) -> None:
    with pytest.raises(InputValidationError) as info:
        AurousClient(API_KEY, **kwargs)
    assert info.value.param == param
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8787/v1",
        "http://localhost:9/v1",
        "http://[::1]:8787/v1",
        "https://api.example.com/v1",
    ],
)
def test_loopback_http_and_https_are_allowed(url: str) -> None:
    with AurousClient(API_KEY, base_url=url) as client:
        assert client.base_url == url


def test_missing_key_is_clear_and_early(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUROUS_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="AUROUS_API_KEY"):
        AurousClient()
    monkeypatch.setenv("AUROUS_API_KEY", "   ")
    with pytest.raises(MissingAPIKeyError):
        AsyncAurousClient()


def test_env_fallbacks(monkeypatch: pytest.MonkeyPatch, api: FakeAPI) -> None:
    monkeypatch.setenv("AUROUS_API_KEY", "al_live_fromenv\n")
    monkeypatch.setenv("AUROUS_BASE_URL", "https://env.example/v1/")
    monkeypatch.setenv("AUROUS_API_VERSION", "2026-05-15")
    with AurousClient(http_client=httpx.Client(transport=httpx.MockTransport(api))) as client:
        client.embed("x")
    request = api.requests[0]
    assert str(request.url) == "https://env.example/v1/embeddings"
    assert request.headers["x-api-key"] == "al_live_fromenv"  # whitespace from a .env file stripped
    assert request.headers["aurous-version"] == "2026-05-15"


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("http://x.example/a.png", "plain http"),
        ("ftp://x.example/a.png", "unsupported image URI scheme"),
        ("data:text/plain;base64,AAAA", "not an image"),
        ("data:image/png;base64,@@@", "not valid base64"),
        ("data:image/png", "no comma"),
        ("file://remote-host/a.png", "remote host"),
        ("", "empty"),
        ("https://127.0.0.1/a.png", "private"),
    ],
)
def test_bad_image_uris(uri: str, fragment: str) -> None:
    with pytest.raises(InputValidationError, match=fragment):
        image_from_uri(uri)


def test_image_from_uri_forms(tmp_path: Path) -> None:
    path = tmp_path / "a b.png"
    path.write_bytes(PNG_1PX)
    assert image_from_uri("https://x.example/a.png") == ImageURL("https://x.example/a.png")
    assert image_from_uri(str(path)).source == path  # type: ignore[union-attr]
    assert image_from_uri(path.as_uri()).source == path  # type: ignore[union-attr]
    assert image_from_uri(path).source == path  # type: ignore[union-attr]
    data_uri = "data:image/png;base64," + base64.b64encode(PNG_1PX).decode()
    assert image_from_uri(data_uri).source == PNG_1PX  # type: ignore[union-attr]


def test_images_from_uris_names_the_index() -> None:
    with pytest.raises(InputValidationError) as info:
        images_from_uris(["https://x.example/a.png", "gopher://x/b"])
    assert info.value.index == 1
    with pytest.raises(InputValidationError):
        images_from_uris("https://x.example/a.png")  # type: ignore[arg-type]


def test_images_from_uris_accepts_parts_and_image_objects() -> None:
    import io

    parts = images_from_uris(
        [Image(PNG_1PX), ImageURL("https://x.example/a.png"), io.BytesIO(PNG_1PX), PNG_1PX]
    )
    assert [type(p).__name__ for p in parts] == ["Image", "ImageURL", "Image", "Image"]
    with pytest.raises(InputValidationError) as info:
        images_from_uris([io.BytesIO(PNG_1PX), 3.5])
    assert info.value.index == 1
