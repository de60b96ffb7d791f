"""DTO validation of ``POST /v1/embeddings`` (and ``/estimate``) bodies, written independently.

Checks run in the order the contract suggests (section 12, item 3): type of ``input``,
``string[]``, part shapes, ``video_url``, the 16/8 caps, text rules, URL rules, blocked hosts,
then inline image bytes. Every error names the concrete path (``input[3].image_url.url``).

[ASSUMPTION] which generic code goes with which failure is not documented; the choices:
``missing_field`` for an absent/null required field, ``value_out_of_range`` for empty content or
a length cap, ``invalid_format`` for everything else (wrong JSON type, NUL byte, invalid UTF-8,
non-https scheme, blocked host, undecodable or non-PNG/JPEG/WebP ``b64_json``). Unknown body
fields are ignored (OpenAI-SDK friendly). ``encoding_format`` and ``user`` must be strings when
present and are otherwise ignored, on the estimate endpoint too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from aurous_embed._config import (
    CHAT_MODEL,
    DEFAULT_MODEL,
    MAX_IMAGE_BYTES,
    MAX_IMAGES,
    MAX_PARTS,
    MAX_TEXT_CHARS,
    MAX_URL_CHARS,
    MAX_USER_CHARS,
    MODEL_ALIASES,
    SUPPORTED_DIMENSIONS,
    TEXT_BYTES_PER_TOKEN,
)
from aurous_embed._hosts import blocked_host_reason, url_spelling_reason
from aurous_embed.testing._envelope import (
    INVALID_FORMAT,
    MISSING_FIELD,
    VALUE_OUT_OF_RANGE,
    ApiError,
    invalid,
)
from aurous_embed.testing._imaging import ImageProblem, inspect_image

LIMITS_URL = "https://docs.aurous-labs.com/api-reference/embeddings/limits"
BATCH_MESSAGE = (  # [DOC] verbatim
    "POST /v1/embeddings does not accept string[] batch input. The underlying multimodal model "
    "concatenates batched text into a single combined vector — opposite of OpenAI's N→N "
    "semantics. Loop client-side or use content-parts input. See "
    "https://docs.aurous-labs.com/api-reference/embeddings/openai-batch-incompat."
)
EMBEDDING_MODELS = frozenset((DEFAULT_MODEL, *MODEL_ALIASES))
CHAT_MODELS = frozenset((CHAT_MODEL,))


@dataclass(frozen=True)
class TextPart:
    """A text part (or the whole ``input`` string)."""

    text: str
    path: str


@dataclass(frozen=True)
class ImageBytesPart:
    """An ``image_url`` part with inline ``b64_json`` bytes (already checked)."""

    data: bytes
    sha256: str
    mime: str
    path: str


@dataclass(frozen=True)
class ImageUrlPart:
    """An ``image_url`` part with an https ``url``."""

    url: str
    path: str


@dataclass(frozen=True)
class VideoUrlPart:
    """A ``video_url`` part (only when the emulator is told to accept video)."""

    url: str
    path: str


Part: TypeAlias = TextPart | ImageBytesPart | ImageUrlPart | VideoUrlPart


@dataclass(frozen=True)
class EmbeddingBody:
    """A validated embeddings body."""

    model: str
    parts: tuple[Part, ...]
    dimensions: int | None


def validate_embedding_body(body: Any, *, accept_video: bool) -> EmbeddingBody:
    """Validate a parsed JSON body; return its parts, or raise the documented 400.

    Raises:
        ApiError: The first rule broken, in the documented order.
    """
    if not isinstance(body, dict):
        raise invalid(INVALID_FORMAT, "Request body must be a JSON object.", None)
    model = _required(body, "model", str)
    raw_input = body.get("input")
    if raw_input is None:
        raise invalid(MISSING_FIELD, "input is required.", "input")
    for name in ("encoding_format", "user"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise invalid(INVALID_FORMAT, f"{name} must be a string.", name)
    if isinstance(body.get("user"), str) and len(body["user"]) > MAX_USER_CHARS:
        raise invalid(
            VALUE_OUT_OF_RANGE,
            f"user is {len(body['user'])} characters; the limit is {MAX_USER_CHARS}.",
            "user",
        )
    dimensions = _dimensions(body.get("dimensions"))

    if isinstance(raw_input, str):
        part = TextPart(raw_input, "input")
        _check_text(part)
        return EmbeddingBody(model, (part,), dimensions)
    if not isinstance(raw_input, list):
        raise invalid(
            INVALID_FORMAT, "input must be a string or an array of content parts.", "input"
        )
    if not raw_input:
        raise invalid(VALUE_OUT_OF_RANGE, "input must contain at least one content part.", "input")
    if any(isinstance(item, str) for item in raw_input):
        raise invalid("embeddings_batch_not_supported", BATCH_MESSAGE, "input")

    shaped = [_shape(item, f"input[{i}]") for i, item in enumerate(raw_input)]
    if not accept_video:
        for kind, _value, path in shaped:
            if kind == "video_url":
                raise invalid(
                    "embeddings_video_unsupported",
                    "Embeddings do not accept video_url parts (since 2026-05-24); send a frame "
                    "as an image_url part instead. See "
                    "https://docs.aurous-labs.com/api-reference/errors/embeddings_video_unsupported.",
                    path + ".video_url",
                )
    if len(shaped) > MAX_PARTS:
        raise invalid(
            "embeddings_input_too_many_items",
            f"Embedding request has {len(shaped)} content parts; the cap is {MAX_PARTS} total "
            f"parts per request. See {LIMITS_URL}.",
            "input",
        )
    images = sum(1 for kind, _, _ in shaped if kind in ("url", "b64"))
    if images > MAX_IMAGES:
        # [ASSUMPTION] the 8-image wording is not documented; a sentence parallel to the 16-part one.
        raise invalid(
            "embeddings_input_too_many_items",
            f"Embedding request has {images} image_url parts; the cap is {MAX_IMAGES} image_url "
            f"parts per request. See {LIMITS_URL}.",
            "input",
        )
    parts: list[Part] = []
    for kind, value, path in shaped:
        if kind == "text":
            text_part = TextPart(value, path + ".text")
            _check_text(text_part)
            parts.append(text_part)
        elif kind == "url":
            _check_url(value, path + ".image_url.url")
            parts.append(ImageUrlPart(value, path + ".image_url.url"))
        elif kind == "video_url":
            _check_url(value, path + ".video_url.url")
            parts.append(VideoUrlPart(value, path + ".video_url.url"))
        else:
            parts.append(_decode_b64(value, path + ".image_url.b64_json"))
    return EmbeddingBody(model, tuple(parts), dimensions)


def check_model(model: str) -> None:
    """Check the slug: an embedding model, else ``model_wrong_kind`` / ``model_not_found``."""
    if model in EMBEDDING_MODELS:
        return
    if model in CHAT_MODELS:
        raise invalid(
            "model_wrong_kind",
            f"Model '{model}' is a chat model; this endpoint needs an embedding model such as "
            f"'{DEFAULT_MODEL}'.",
            "model",
        )
    # [ASSUMPTION, decisions table] an unknown slug is 400 model_not_found with param "model".
    raise invalid(
        "model_not_found",
        f"Model '{model}' does not exist or is not available to your team. See GET /v1/models.",
        "model",
    )


def check_dimensions(dimensions: int | None) -> None:
    """Check ``dimensions`` against the model's set (validated, never applied, in v1.0)."""
    if dimensions is not None and dimensions not in SUPPORTED_DIMENSIONS:
        supported = ", ".join(str(d) for d in SUPPORTED_DIMENSIONS)
        raise invalid(
            "embeddings_unsupported_dimensions",
            f"dimensions={dimensions} is not supported by this model; supported: {supported}.",
            "dimensions",
        )


def _required(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is None:
        raise invalid(MISSING_FIELD, f"{name} is required.", name)
    if not isinstance(value, kind):
        raise invalid(INVALID_FORMAT, f"{name} must be a {kind.__name__}.", name)
    return value


def _dimensions(value: Any) -> int | None:
    if value is None:
        return None
    # JSON has one number type: 1024.0 is the integer 1024 (as a JS validator would see it).
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(INVALID_FORMAT, "dimensions must be an integer.", "dimensions")
    return value


def _shape(item: Any, path: str) -> tuple[str, Any, str]:
    """Check one part's shape; return (kind, value, path) with kind text|url|b64|video_url."""
    if not isinstance(item, dict):
        raise invalid(INVALID_FORMAT, "A content part must be an object with a type.", path)
    kind = item.get("type")
    if kind is None:
        raise invalid(MISSING_FIELD, "type is required.", path + ".type")
    if kind == "text":
        text = item.get("text")
        if text is None:
            raise invalid(MISSING_FIELD, "text is required on a text part.", path + ".text")
        if not isinstance(text, str):
            raise invalid(INVALID_FORMAT, "text must be a string.", path + ".text")
        return "text", text, path
    if kind in ("image_url", "video_url"):
        obj = item.get(kind)
        if obj is None:
            raise invalid(MISSING_FIELD, f"{kind} is required on an {kind} part.", f"{path}.{kind}")
        allowed = ("url", "b64_json") if kind == "image_url" else ("url",)
        if not isinstance(obj, dict):
            raise invalid(
                INVALID_FORMAT,
                f"{kind} must be an object with {' or '.join(allowed)}, not a bare string.",
                f"{path}.{kind}",
            )
        given = [key for key in allowed if obj.get(key) is not None]
        if not given:
            raise invalid(MISSING_FIELD, f"{kind}.url is required.", f"{path}.{kind}.url")
        if len(given) > 1:
            raise invalid(
                INVALID_FORMAT,
                "image_url takes exactly one of url or b64_json.",
                f"{path}.{kind}",
            )
        key = given[0]
        if not isinstance(obj[key], str):
            raise invalid(INVALID_FORMAT, f"{kind}.{key} must be a string.", f"{path}.{kind}.{key}")
        if kind == "video_url":
            return "video_url", obj[key], path
        return ("url" if key == "url" else "b64"), obj[key], path
    if not isinstance(kind, str):
        raise invalid(INVALID_FORMAT, "type must be a string.", path + ".type")
    raise invalid(
        INVALID_FORMAT,
        f"Unknown content part type '{kind}'; expected text or image_url.",
        path + ".type",
    )


def _check_text(part: TextPart) -> None:
    text, path = part.text, part.path
    if not text:
        raise invalid(VALUE_OUT_OF_RANGE, "text must not be empty.", path)
    if len(text) > MAX_TEXT_CHARS:
        raise invalid(
            VALUE_OUT_OF_RANGE,
            f"text is {len(text)} characters; the limit is {MAX_TEXT_CHARS} per text part.",
            path,
        )
    if "\x00" in text:
        raise invalid(INVALID_FORMAT, "text must not contain NUL bytes.", path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from "\ud800" escapes
        raise invalid(INVALID_FORMAT, "text must be valid UTF-8.", path) from None


def _check_url(url: str, path: str) -> None:
    if len(url) > MAX_URL_CHARS:
        raise invalid(
            VALUE_OUT_OF_RANGE,
            f"url is {len(url)} characters; the limit is {MAX_URL_CHARS}.",
            path,
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise invalid(INVALID_FORMAT, "url is not a valid URL.", path) from None
    if parts.scheme.lower() != "https":
        hint = " (data: URIs are not accepted; send b64_json)" if parts.scheme == "data" else ""
        raise invalid(INVALID_FORMAT, f"url must use https{hint}.", path)
    if not host:
        raise invalid(INVALID_FORMAT, "url must name a host.", path)
    spelling = url_spelling_reason(url, parts.netloc)
    if spelling is not None:
        raise invalid(INVALID_FORMAT, f"url {spelling}.", path)
    reason = blocked_host_reason(host)
    if reason is not None:
        raise invalid(INVALID_FORMAT, f"url host {host} is {reason}", path)


def _decode_b64(value: str, path: str) -> ImageBytesPart:
    if value.startswith("data:"):
        raise invalid(INVALID_FORMAT, "b64_json takes bare base64, not a data: URI.", path)
    if len(value) > (MAX_IMAGE_BYTES + 2) // 3 * 4:  # fail before decoding something huge
        raise invalid(
            VALUE_OUT_OF_RANGE, f"image is over the {MAX_IMAGE_BYTES} byte (10 MB) limit.", path
        )
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(INVALID_FORMAT, "b64_json is not valid base64.", path) from None
    try:
        info = inspect_image(data)
    except ImageProblem as problem:
        raise invalid(problem.code, problem.message + ".", path) from None
    return ImageBytesPart(data, hashlib.sha256(data).hexdigest(), info.mime, path)


def token_counts(parts: tuple[Part, ...], tokens_per_image: int) -> tuple[int, int]:
    """Return (text_tokens, image_tokens) for billing.

    [ASSUMPTION, decisions table] text: ceil(utf-8 bytes / 4), minimum 1, per text part; each
    image a fixed number of tokens (1,024 by default). Accepted ``video_url`` parts (only with
    ``accept_video``) cost nothing, as video pricing was removed on 2026-05-24.
    """
    text = image = 0
    for part in parts:
        if isinstance(part, TextPart):
            size = len(part.text.encode("utf-8"))
            text += max(1, -(-size // TEXT_BYTES_PER_TOKEN))
        elif isinstance(part, ImageBytesPart | ImageUrlPart):
            image += tokens_per_image
    return text, image


def too_large(total_tokens: int, limit: int) -> ApiError:
    """The documented ``embeddings_input_too_large`` error."""
    return invalid(
        "embeddings_input_too_large",
        f"Embedding input is {total_tokens} tokens; the model accepts at most {limit} tokens "
        f"(text + visual). See {LIMITS_URL}.",
        "input",
    )
