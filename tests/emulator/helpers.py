"""Helpers for the emulator contract tests: raw HTTP, images, envelope checks."""

from __future__ import annotations

import base64
import re
import ssl
from collections.abc import Callable
from typing import Any

import httpx

from aurous_embed._config import DEFAULT_MODEL
from aurous_embed.testing import Emulator
from tests.helpers import png

# Plain-http loopback never uses TLS, but httpx builds an SSL context per client (~50 ms);
# one shared context keeps the suite fast.
_TLS = ssl.create_default_context()

REQUEST_ID = re.compile(r"^req_[0-9A-HJKMNP-TV-Z]{26}$")
ENVELOPE_KEYS = {"type", "code", "message", "param", "doc_url", "request_id"}


def body(input_: Any, **extra: Any) -> dict[str, Any]:
    """An embeddings request body."""
    return {"model": DEFAULT_MODEL, "input": input_, **extra}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def url_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def b64_part(data: bytes) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"b64_json": base64.b64encode(data).decode()}}


def image_bytes(
    color: tuple[int, int, int] | str = "red", size: tuple[int, int] = (32, 32), fmt: str = "PNG"
) -> bytes:
    """A solid-colour image in the given format."""
    return png(size, color, fmt=fmt)


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert a documented error envelope with this status and code; return ``error``."""
    assert response.status_code == status, response.text[:500]
    error = response.json()["error"]
    assert set(error) == ENVELOPE_KEYS, error
    assert error["code"] == code, error
    assert error["doc_url"] == f"https://docs.aurous-labs.com/errors#{code}"
    assert REQUEST_ID.match(error["request_id"])
    assert error["request_id"] == response.headers["aurous-request-id"]
    assert response.headers["content-type"] == "application/json"
    return dict(error)


def vector(response: httpx.Response) -> list[float]:
    """The embedding of a successful response."""
    assert response.status_code == 200, response.text[:500]
    return list(response.json()["data"][0]["embedding"])


MakeEmulator = Callable[..., Emulator]


def connect(emu: Emulator, key: str | None = "") -> httpx.Client:
    """A raw httpx client for an emulator; ``key=""`` uses its key, ``None`` sends none."""
    headers = {} if key is None else {"X-Api-Key": key or emu.api_key}
    return httpx.Client(base_url=emu.base_url, headers=headers, timeout=10.0, verify=_TLS)
