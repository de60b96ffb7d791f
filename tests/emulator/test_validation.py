"""Every documented validation rule, with the concrete ``param`` path, on both endpoints."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from aurous_embed._config import CHAT_MODEL, DEFAULT_MODEL
from tests.emulator.helpers import (
    MakeEmulator,
    b64_part,
    body,
    connect,
    error_of,
    image_bytes,
    text_part,
    url_part,
    vector,
)
from tests.hosts import BLOCKED_BY_BOTH

ENDPOINTS = ["/embeddings", "/embeddings/estimate"]
PNG = image_bytes()
OK_URL = "https://assets.aurous-labs.com/example-images/messenger-bag.jpg"


def _b64_raw(value: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"b64_json": value}}


def _wide_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4097, 1), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="GIF")
    return buffer.getvalue()


# (request body, status, code, param)
CASES: list[tuple[str, Any, int, str, str | None]] = [
    ("body is an array", [], 400, "invalid_format", None),
    ("missing model", {"input": "hi"}, 400, "missing_field", "model"),
    ("model not a string", {"model": 7, "input": "hi"}, 400, "invalid_format", "model"),
    ("missing input", {"model": DEFAULT_MODEL}, 400, "missing_field", "input"),
    ("null input", body(None), 400, "missing_field", "input"),
    ("number input", body(5), 400, "invalid_format", "input"),
    ("object input", body({"type": "text", "text": "x"}), 400, "invalid_format", "input"),
    ("empty string", body(""), 400, "value_out_of_range", "input"),
    ("empty array", body([]), 400, "value_out_of_range", "input"),
    ("NUL in string input", body("a\x00b"), 400, "invalid_format", "input"),
    ("string[]", body(["a", "b"]), 400, "embeddings_batch_not_supported", "input"),
    ("single string[]", body(["a"]), 400, "embeddings_batch_not_supported", "input"),
    ("mixed string[]", body([text_part("a"), "b"]), 400, "embeddings_batch_not_supported", "input"),
    ("part not an object", body([text_part("a"), 42]), 400, "invalid_format", "input[1]"),
    ("part without type", body([{"text": "x"}]), 400, "missing_field", "input[0].type"),
    (
        "unknown part type",
        body([text_part("a"), {"type": "audio_url"}]),
        400,
        "invalid_format",
        "input[1].type",
    ),
    ("type not a string", body([{"type": 3}]), 400, "invalid_format", "input[0].type"),
    ("text missing", body([{"type": "text"}]), 400, "missing_field", "input[0].text"),
    (
        "text not a string",
        body([{"type": "text", "text": 5}]),
        400,
        "invalid_format",
        "input[0].text",
    ),
    (
        "empty text part",
        body([text_part("a"), text_part("")]),
        400,
        "value_out_of_range",
        "input[1].text",
    ),
    (
        "NUL in text part",
        body([text_part("a"), text_part("b\x00")]),
        400,
        "invalid_format",
        "input[1].text",
    ),
    (
        "image_url missing",
        body([{"type": "image_url"}]),
        400,
        "missing_field",
        "input[0].image_url",
    ),
    (
        "image_url bare string",
        body([{"type": "image_url", "image_url": OK_URL}]),
        400,
        "invalid_format",
        "input[0].image_url",
    ),
    (
        "image_url empty object",
        body([{"type": "image_url", "image_url": {}}]),
        400,
        "missing_field",
        "input[0].image_url.url",
    ),
    (
        "url and b64_json",
        body([{"type": "image_url", "image_url": {"url": OK_URL, "b64_json": "aGk="}}]),
        400,
        "invalid_format",
        "input[0].image_url",
    ),
    (
        "url not a string",
        body([{"type": "image_url", "image_url": {"url": 1}}]),
        400,
        "invalid_format",
        "input[0].image_url.url",
    ),
    (
        "http url",
        body([text_part("a"), url_part("http://example.com/a.jpg")]),
        400,
        "invalid_format",
        "input[1].image_url.url",
    ),
    (
        "data uri",
        body([url_part("data:image/png;base64,aGk=")]),
        400,
        "invalid_format",
        "input[0].image_url.url",
    ),
    (
        "ftp url",
        body([url_part("ftp://example.com/a.jpg")]),
        400,
        "invalid_format",
        "input[0].image_url.url",
    ),
    (
        "file url",
        body([url_part("file:///etc/passwd")]),
        400,
        "invalid_format",
        "input[0].image_url.url",
    ),
    (
        "bare hostname",
        body([url_part("example.com/a.jpg")]),
        400,
        "invalid_format",
        "input[0].image_url.url",
    ),
    (
        "url over 2048",
        body([url_part("https://example.com/" + "a" * 2029)]),
        400,
        "value_out_of_range",
        "input[0].image_url.url",
    ),
    (
        "b64 not base64",
        body([_b64_raw("not base64!")]),
        400,
        "invalid_format",
        "input[0].image_url.b64_json",
    ),
    (
        "b64 of text",
        body([_b64_raw(base64.b64encode(b"hello world").decode())]),
        400,
        "invalid_format",
        "input[0].image_url.b64_json",
    ),
    (
        "b64 of a GIF",
        body([b64_part(_gif())]),
        400,
        "invalid_format",
        "input[0].image_url.b64_json",
    ),
    (
        "b64 data uri",
        body([_b64_raw("data:image/png;base64," + base64.b64encode(PNG).decode())]),
        400,
        "invalid_format",
        "input[0].image_url.b64_json",
    ),
    (
        "b64 over 4096 px",
        body([text_part("a"), b64_part(_wide_png())]),
        400,
        "value_out_of_range",
        "input[1].image_url.b64_json",
    ),
    (
        "b64 over 10 MB",
        body([_b64_raw("A" * (14 * 1024 * 1024))]),
        400,
        "value_out_of_range",
        "input[0].image_url.b64_json",
    ),
    (
        "video_url",
        body([text_part("a"), {"type": "video_url", "video_url": {"url": "https://x.com/c.mp4"}}]),
        400,
        "embeddings_video_unsupported",
        "input[1].video_url",
    ),
    (
        "17 parts",
        body([text_part(str(i)) for i in range(17)]),
        400,
        "embeddings_input_too_many_items",
        "input",
    ),
    (
        "9 images",
        body([url_part(f"{OK_URL}?{i}") for i in range(9)]),
        400,
        "embeddings_input_too_many_items",
        "input",
    ),
    (
        "dimensions 512",
        body("hi", dimensions=512),
        400,
        "embeddings_unsupported_dimensions",
        "dimensions",
    ),
    (
        "dimensions 4096",
        body("hi", dimensions=4096),
        400,
        "embeddings_unsupported_dimensions",
        "dimensions",
    ),
    ("dimensions string", body("hi", dimensions="1024"), 400, "invalid_format", "dimensions"),
    ("dimensions bool", body("hi", dimensions=True), 400, "invalid_format", "dimensions"),
    (
        "encoding_format not a string",
        body("hi", encoding_format=1),
        400,
        "invalid_format",
        "encoding_format",
    ),
    ("user not a string", body("hi", user=["u"]), 400, "invalid_format", "user"),
    ("user over 256 characters", body("hi", user="u" * 257), 400, "value_out_of_range", "user"),
    ("chat model", {"model": CHAT_MODEL, "input": "hi"}, 400, "model_wrong_kind", "model"),
    (
        "unknown model",
        {"model": "text-embedding-3-small", "input": "hi"},
        400,
        "model_not_found",
        "model",
    ),
    ("text over 1M chars", body("x" * 1_000_001), 400, "value_out_of_range", "input"),
    ("over 128K tokens", body("x" * 1_000_000), 400, "embeddings_input_too_large", "input"),
    # the documented order: DTO before model, string[] before caps, video before caps
    (
        "string[] with chat model",
        {"model": CHAT_MODEL, "input": ["a"]},
        400,
        "embeddings_batch_not_supported",
        "input",
    ),
    (
        "video among 17 parts",
        body(
            [{"type": "video_url", "video_url": {"url": "https://x.com/c.mp4"}}]
            + [text_part("a")] * 16
        ),
        400,
        "embeddings_video_unsupported",
        "input[0].video_url",
    ),
    (
        "17 parts with a NUL",
        body([text_part("a\x00")] * 17),
        400,
        "embeddings_input_too_many_items",
        "input",
    ),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("name", "payload", "status", "code", "param"), CASES, ids=[c[0] for c in CASES]
)
def test_validation_rule(
    client: httpx.Client,
    endpoint: str,
    name: str,
    payload: Any,
    status: int,
    code: str,
    param: str | None,
) -> None:
    error = error_of(client.post(endpoint, json=payload), status, code)
    assert error["type"] == "invalid_request"
    assert error["param"] == param


# The emulator also refuses every non-global address, such as 100.64.0.0/10 (the client does not).
BLOCKED = [*BLOCKED_BY_BOTH, "100.64.0.1", "192.168.1.1"]


@pytest.mark.parametrize("host", BLOCKED)
def test_blocked_hosts_are_rejected_without_dns(client: httpx.Client, host: str) -> None:
    parts = [text_part("a"), url_part(OK_URL), text_part("b"), url_part(f"https://{host}/x.jpg")]
    error = error_of(client.post("/embeddings", json=body(parts)), 400, "invalid_format")
    assert error["param"] == "input[3].image_url.url"
    assert error["message"].startswith("url ")
    assert any(
        word in error["message"]
        for word in (
            "loopback",
            "private",
            "site-local",
            "not a valid host name",
            "backslash",
            "userinfo",
            "control, space or invisible",
        )
    )


@pytest.mark.parametrize(
    "url",
    [
        OK_URL,
        "https://93.184.216.34/a.png",
        "https://[2606:4700::1111]/a.png",
        "HTTPS://Example.com/a",
    ],
)
def test_public_https_urls_pass(client: httpx.Client, url: str) -> None:
    assert client.post("/embeddings", json=body([url_part(url)])).status_code == 200


def test_batch_error_has_the_documented_message(client: httpx.Client) -> None:
    error = error_of(
        client.post("/embeddings", json=body(["a", "b"])), 400, "embeddings_batch_not_supported"
    )
    assert error["message"] == (
        "POST /v1/embeddings does not accept string[] batch input. The underlying multimodal "
        "model concatenates batched text into a single combined vector — opposite of OpenAI's "
        "N→N semantics. Loop client-side or use content-parts input. See "
        "https://docs.aurous-labs.com/api-reference/embeddings/openai-batch-incompat."
    )


def test_too_many_items_messages_name_the_cap_and_the_count(client: httpx.Client) -> None:
    parts = error_of(
        client.post("/embeddings", json=body([text_part("a")] * 17)),
        400,
        "embeddings_input_too_many_items",
    )
    assert parts["message"] == (
        "Embedding request has 17 content parts; the cap is 16 total parts per request. "
        "See https://docs.aurous-labs.com/api-reference/embeddings/limits."
    )
    images = error_of(
        client.post("/embeddings", json=body([url_part(OK_URL)] * 9)),
        400,
        "embeddings_input_too_many_items",
    )
    assert images["message"] == (
        "Embedding request has 9 image_url parts; the cap is 8 image_url parts per request. "
        "See https://docs.aurous-labs.com/api-reference/embeddings/limits."
    )


def test_caps_are_inclusive(client: httpx.Client) -> None:
    sixteen = [text_part(str(i)) for i in range(8)] + [b64_part(PNG)] * 8
    assert client.post("/embeddings", json=body(sixteen)).status_code == 200
    assert client.post("/embeddings", json=body("x" * 512_000)).status_code == 200  # 128,000 tokens
    error_of(
        client.post("/embeddings", json=body("x" * 512_001)), 400, "embeddings_input_too_large"
    )
    assert client.post("/embeddings", json=body("x", user="u" * 256)).status_code == 200


def test_exactly_1m_chars_passes_the_length_rule(client: httpx.Client) -> None:
    # 1,000,000 one-byte characters are within the cap but 250,000 tokens: too large, not too long.
    error_of(
        client.post("/embeddings", json=body([text_part("x" * 1_000_000)])),
        400,
        "embeddings_input_too_large",
    )


def test_lone_surrogate_is_not_utf8(client: httpx.Client) -> None:
    raw = '{"model": "aurous-embed-vision-1.0", "input": [{"type": "text", "text": "a\\ud800"}]}'
    response = client.post("/embeddings", content=raw, headers={"Content-Type": "application/json"})
    assert error_of(response, 400, "invalid_format")["param"] == "input[0].text"


@pytest.mark.parametrize("raw", ["{not json", '{"model": NaN}', "", "\xff"])
def test_malformed_json_is_invalid_format(client: httpx.Client, raw: str) -> None:
    response = client.post("/embeddings", content=raw.encode("latin-1"))
    assert error_of(response, 400, "invalid_format")["param"] is None


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_inline_images_in_each_format_are_accepted(client: httpx.Client, fmt: str) -> None:
    response = client.post("/embeddings", json=body([b64_part(image_bytes("blue", (40, 30), fmt))]))
    assert response.json()["usage"]["prompt_tokens"] == 1024


def test_video_can_be_accepted_by_setting(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(accept_video=True)
    video = {"type": "video_url", "video_url": {"url": "https://x.com/clip.mp4"}}
    with connect(emu) as http:
        response = http.post("/embeddings", json=body([text_part("a"), video]))
        assert len(vector(response)) == 2048
        assert response.json()["usage"]["breakdown"]["input"]["video"] == 0
        bad = {"type": "video_url", "video_url": {"url": "http://x.com/clip.mp4"}}
        error = error_of(http.post("/embeddings", json=body([bad])), 400, "invalid_format")
        assert error["param"] == "input[0].video_url.url"


def test_unknown_body_fields_and_detail_are_ignored(client: httpx.Client) -> None:
    part = {"type": "image_url", "image_url": {"url": OK_URL, "detail": "high"}}
    assert client.post("/embeddings", json=body([part], extra_field=True)).status_code == 200
