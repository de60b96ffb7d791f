"""``/v1/files``: upload rules, the file object, signed urls, TTL, delete, and use in embeddings."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from aurous_embed.testing import Clock, Emulator
from tests.emulator.helpers import (
    MakeEmulator,
    b64_part,
    body,
    connect,
    error_of,
    image_bytes,
    url_part,
    vector,
)
from tests.helpers import png

PNG = image_bytes("green", (64, 48))


def _upload(
    client: httpx.Client,
    data: bytes = PNG,
    purpose: str | None = "reference",
    metadata: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    form: dict[str, Any] = {}
    if purpose is not None:
        form["purpose"] = purpose
    if metadata is not None:
        form["metadata"] = metadata
    return client.post(
        "/files",
        files={"file": ("image.bin", data, "application/octet-stream")},
        data=form,
        headers=headers,
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_upload_returns_the_documented_object(client: httpx.Client, clock: Clock) -> None:
    response = _upload(client, metadata=json.dumps({"campaign": "launch-2026"}))
    assert response.status_code == 200
    obj = response.json()
    assert set(obj) == {
        "id",
        "object",
        "purpose",
        "mime_type",
        "size_bytes",
        "width_px",
        "height_px",
        "url",
        "expires_at",
        "created_at",
        "metadata",
    }
    assert obj["id"].startswith("file_") and len(obj["id"]) == 5 + 26
    assert obj["object"] == "file"
    assert obj["purpose"] == "reference"
    assert (obj["mime_type"], obj["size_bytes"], obj["width_px"], obj["height_px"]) == (
        "image/png",
        len(PNG),
        64,
        48,
    )
    assert obj["metadata"] == {"campaign": "launch-2026"}
    assert obj["created_at"] == _iso(clock())
    assert obj["expires_at"] == _iso(clock() + 24 * 3600)
    url = urlsplit(obj["url"])
    assert url.scheme == "https"
    assert url.hostname == "files.emulator.aurous-labs.invalid"
    assert int(parse_qs(url.query)["expires"][0]) == int(clock() + 3600)
    assert "token" in parse_qs(url.query)


@pytest.mark.parametrize(
    ("fmt", "mime"), [("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("PNG", "image/png")]
)
@pytest.mark.parametrize("purpose", ["reference", "first_frame", "last_frame"])
def test_formats_and_purposes(client: httpx.Client, fmt: str, mime: str, purpose: str) -> None:
    obj = _upload(client, image_bytes("blue", (30, 20), fmt), purpose=purpose).json()
    assert (obj["mime_type"], obj["width_px"], obj["height_px"], obj["purpose"]) == (
        mime,
        30,
        20,
        purpose,
    )
    assert obj["metadata"] is None


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="GIF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("kwargs", "code", "param"),
    [
        ({"data": _gif()}, "invalid_format", "file"),
        ({"data": b"plain text"}, "invalid_format", "file"),
        ({"data": b"\x89PNG\r\n\x1a\n" + b"\x00" * 8}, "invalid_format", "file"),
        ({"data": png((4097, 2), 0, mode="1")}, "value_out_of_range", "file"),
        ({"data": png((2, 4097), 0, mode="1")}, "value_out_of_range", "file"),
        ({"data": PNG + b"\x00" * (10 * 1024 * 1024)}, "value_out_of_range", "file"),
        ({"purpose": None}, "missing_field", "purpose"),
        ({"purpose": "avatar"}, "invalid_format", "purpose"),
        ({"metadata": "not json"}, "invalid_format", "metadata"),
        ({"metadata": "[1, 2]"}, "invalid_format", "metadata"),
    ],
)
def test_upload_rules(client: httpx.Client, kwargs: dict[str, Any], code: str, param: str) -> None:
    error = error_of(_upload(client, **kwargs), 400, code)
    assert error["param"] == param


def test_upload_without_a_file(client: httpx.Client) -> None:
    error = error_of(client.post("/files", data={"purpose": "reference"}), 400, "missing_field")
    assert error["param"] == "file"
    error = error_of(
        client.post("/files", data={"purpose": "reference", "file": "text"}), 400, "invalid_format"
    )
    assert error["param"] == "file"


def test_get_re_mints_the_url_and_delete_is_idempotent(client: httpx.Client, clock: Clock) -> None:
    created = _upload(client).json()
    clock.advance(600)
    fetched = client.get(f"/files/{created['id']}").json()
    assert fetched["url"] != created["url"]
    assert int(parse_qs(urlsplit(fetched["url"]).query)["expires"][0]) == int(clock() + 3600)
    assert {k: v for k, v in fetched.items() if k != "url"} == {
        k: v for k, v in created.items() if k != "url"
    }
    for _ in range(2):
        deleted = client.delete(f"/files/{created['id']}")
        assert deleted.status_code == 200
        assert deleted.json() == {"id": created["id"], "object": "file", "deleted": True}
    error = error_of(client.get(f"/files/{created['id']}"), 404, "resource_not_found")
    assert error["type"] == "not_found"


def test_files_expire_after_24_hours(client: httpx.Client, clock: Clock) -> None:
    created = _upload(client).json()
    clock.advance(24 * 3600 - 1)
    assert client.get(f"/files/{created['id']}").status_code == 200
    clock.advance(1)
    error_of(client.get(f"/files/{created['id']}"), 404, "resource_not_found")


def test_upload_honours_idempotency(emu: Emulator, client: httpx.Client) -> None:
    key = {"Idempotency-Key": "upload-1"}
    first = _upload(client, headers=key)
    second = _upload(client, headers=key)
    assert second.content == first.content
    assert second.headers["aurous-idempotent-replayed"] == "true"
    error_of(_upload(client, image_bytes("red"), headers=key), 409, "idempotency_key_in_use")
    error_of(_upload(client, purpose="first_frame", headers=key), 409, "idempotency_key_in_use")


def test_signed_url_embeds_like_the_inline_bytes(client: httpx.Client) -> None:
    url = _upload(client).json()["url"]
    by_url = vector(client.post("/embeddings", json=body([url_part(url)])))
    inline = vector(client.post("/embeddings", json=body([b64_part(PNG)])))
    assert by_url == inline


def test_expired_deleted_or_forged_urls_fail_the_embedding(
    client: httpx.Client, clock: Clock
) -> None:
    created = _upload(client).json()
    parts = [{"type": "text", "text": "a"}, url_part(created["url"])]
    clock.advance(3600)
    error = error_of(client.post("/embeddings", json=body(parts)), 400, "image_fetch_failed")
    assert error["param"] == "input[1].image_url.url"
    assert "expired" in error["message"]
    fresh = client.get(f"/files/{created['id']}").json()["url"]
    assert client.post("/embeddings", json=body([url_part(fresh)])).status_code == 200
    forged = fresh.replace("token=", "token=0")
    error_of(client.post("/embeddings", json=body([url_part(forged)])), 400, "image_fetch_failed")
    client.delete(f"/files/{created['id']}")
    error = error_of(
        client.post("/embeddings", json=body([url_part(fresh)])), 400, "image_fetch_failed"
    )
    assert "deleted" in error["message"]


def test_a_url_from_another_emulator_does_not_resolve(
    client: httpx.Client, make_emulator: MakeEmulator
) -> None:
    other = make_emulator()
    with connect(other) as other_client:
        url = _upload(other_client).json()["url"]
    error_of(client.post("/embeddings", json=body([url_part(url)])), 400, "image_fetch_failed")
