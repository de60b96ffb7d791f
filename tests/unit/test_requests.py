"""The exact JSON body and headers the client sends for every input form."""

from __future__ import annotations

import base64
import io
import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from aurous_embed import AurousClient, Image, ImageURL, Text, VideoURL, __version__
from tests.unit.conftest import API_KEY, BASE_URL, FakeAPI

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)
B64_1PX = base64.b64encode(PNG_1PX).decode()


def sent(api: FakeAPI) -> dict[str, Any]:
    assert len(api.requests) == 1
    return json.loads(api.requests[0].content)


@pytest.mark.parametrize(
    ("given", "wire_input"),
    [
        ("a leather bag", "a leather bag"),
        (Text("a leather bag"), [{"type": "text", "text": "a leather bag"}]),
        (
            [Text("Title: bag"), Text("Tags: leather")],
            [{"type": "text", "text": "Title: bag"}, {"type": "text", "text": "Tags: leather"}],
        ),
        (
            ImageURL("https://cdn.example.com/bag.jpg?sig=a%2Bb"),
            [
                {
                    "type": "image_url",
                    "image_url": {"url": "https://cdn.example.com/bag.jpg?sig=a%2Bb"},
                }
            ],
        ),
        (
            VideoURL("https://cdn.example.com/clip.mp4"),
            [{"type": "video_url", "video_url": {"url": "https://cdn.example.com/clip.mp4"}}],
        ),
        (Image(PNG_1PX), [{"type": "image_url", "image_url": {"b64_json": B64_1PX}}]),
        (PNG_1PX, [{"type": "image_url", "image_url": {"b64_json": B64_1PX}}]),
        (
            ["caption", Image(PNG_1PX)],
            [
                {"type": "text", "text": "caption"},
                {"type": "image_url", "image_url": {"b64_json": B64_1PX}},
            ],
        ),
        (
            [
                {"type": "text", "text": "dict part"},
                {"type": "image_url", "image_url": {"url": "https://x.example/a.png"}},
            ],
            [
                {"type": "text", "text": "dict part"},
                {"type": "image_url", "image_url": {"url": "https://x.example/a.png"}},
            ],
        ),
        (
            {"type": "image_url", "image_url": {"b64_json": B64_1PX}},
            [{"type": "image_url", "image_url": {"b64_json": B64_1PX}}],
        ),
    ],
    ids=[
        "str",
        "text-part",
        "text-parts",
        "image-url",
        "video-url",
        "image-bytes",
        "bare-bytes",
        "mixed",
        "dicts",
        "b64-dict",
    ],
)
def test_body_for_each_input_form(
    client: AurousClient, api: FakeAPI, given: object, wire_input: object
) -> None:
    client.embed(given)  # type: ignore[arg-type]
    assert sent(api) == {"model": "aurous-embed-vision-1.0", "input": wire_input}


def test_image_from_path_and_pil_and_numpy(
    client: AurousClient, api: FakeAPI, tmp_path: Path
) -> None:
    np = pytest.importorskip("numpy")
    pil = pytest.importorskip("PIL.Image")
    path = tmp_path / "one.png"
    path.write_bytes(PNG_1PX)
    client.embed(Image(path))
    client.embed(Image(str(path)))
    client.embed(Image(pil.new("RGB", (3, 2), (255, 0, 0))))
    client.embed(Image(np.zeros((2, 3, 3), dtype=np.uint8)))
    bodies = api.bodies()
    assert bodies[0]["input"][0]["image_url"]["b64_json"] == B64_1PX  # file bytes unchanged
    assert bodies[1] == bodies[0]
    for body in bodies[2:]:
        data = base64.b64decode(body["input"][0]["image_url"]["b64_json"])
        decoded = pil.open(io.BytesIO(data))
        assert (decoded.format, decoded.size) == ("PNG", (3, 2))


def test_options_and_headers(api: FakeAPI) -> None:
    with AurousClient(
        API_KEY,
        base_url=BASE_URL,
        api_version="2026-05-15",
        http_client=httpx.Client(transport=httpx.MockTransport(api)),
    ) as client:
        client.embed(
            "x",
            model="aurous-embed-vision",
            dimensions=1024,
            user="end-user-7",
            idempotency_key="my-key-1",
        )
    request = api.requests[0]
    assert request.method == "POST"
    assert str(request.url) == f"{BASE_URL}/embeddings"
    assert sent(api) == {
        "model": "aurous-embed-vision",
        "input": "x",
        "dimensions": 1024,
        "user": "end-user-7",
    }
    headers = request.headers
    assert headers["x-api-key"] == API_KEY
    assert "authorization" not in headers
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == "my-key-1"
    assert headers["aurous-version"] == "2026-05-15"
    assert re.fullmatch(
        rf"aurous-embed/{re.escape(__version__)} python/\S+ httpx/\S+", headers["user-agent"]
    )


def test_default_idempotency_key_is_a_fresh_uuid4_per_call(
    client: AurousClient, api: FakeAPI
) -> None:
    client.embed("a")
    client.embed("a")
    keys = [r.headers["idempotency-key"] for r in api.requests]
    assert keys[0] != keys[1]
    assert all(uuid.UUID(k).version == 4 for k in keys)
    assert "aurous-version" not in api.requests[0].headers  # not sent unless configured


def test_estimate_body_has_no_user_and_no_idempotency_key(
    client: AurousClient, api: FakeAPI
) -> None:
    api.default = lambda request: httpx.Response(
        200,
        json={
            "estimated": True,
            "tokens": {"text": 500, "image": 0, "video": 0, "total": 500},
            "credits_estimated": 0.009375,
            "breakdown": {"input": {"text": 0.009375, "visual": 0, "video": 0}, "model": "m"},
        },
    )
    estimate = client.estimate([Text("a"), ImageURL("https://x.example/a.png")], dimensions=2048)
    request = api.requests[0]
    assert str(request.url) == f"{BASE_URL}/embeddings/estimate"
    assert "idempotency-key" not in request.headers
    assert sent(api) == {
        "model": "aurous-embed-vision-1.0",
        "input": [
            {"type": "text", "text": "a"},
            {"type": "image_url", "image_url": {"url": "https://x.example/a.png"}},
        ],
        "dimensions": 2048,
    }
    assert estimate.tokens.total == 500
    assert estimate.credits_estimated == pytest.approx(0.009375)


def test_list_models_and_balance(client: AurousClient, api: FakeAPI) -> None:
    models = {
        "object": "list",
        "data": [
            {
                "id": "aurous-embed-vision-1.0",
                "object": "model",
                "kind": "embedding",
                "aurous_metadata": {
                    "context_window": 128000,
                    "dimensions": [1024, 2048],
                    "max_input_items": 100,
                    "capabilities": ["multimodal_input"],
                },
                "embedding_pricing": {
                    "text": {"credits_per_M": 18.75},
                    "visual": {"credits_per_M": 48.75},
                },
            },
            {
                "id": "aurous-grow-2.0-pro",
                "object": "model",
                "aurous_metadata": {"kind": "chat", "dimensions": None},
            },
        ],
    }
    api.script = [
        httpx.Response(200, json=models),
        httpx.Response(
            200,
            json={
                "credits": 1023.49,
                "held_credits": 4,
                "available_credits": 1019.49,
                "currency": "credit",
                "billing_mode": "metered",
            },
        ),
    ]
    rows = client.list_models()
    assert [(m.id, m.kind, m.dimensions) for m in rows] == [
        ("aurous-embed-vision-1.0", "embedding", (1024, 2048)),
        ("aurous-grow-2.0-pro", "chat", None),  # kind read from aurous_metadata as a fallback
    ]
    assert (rows[0].text_credits_per_m, rows[0].visual_credits_per_m) == (18.75, 48.75)
    assert [r.method for r in api.requests] == ["GET"]
    balance = client.get_balance()
    assert (balance.available_credits, balance.billing_mode) == (1019.49, "metered")
    assert str(api.requests[1].url) == f"{BASE_URL}/balance"
