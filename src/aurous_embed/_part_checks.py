"""The documented limits of one input, checked before anything is sent: texts, URLs (https, no
private or metadata hosts), each part's fields, the number of parts and images, and what counts as
a batch. Every refusal is an :class:`InputValidationError` naming the field.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from aurous_embed._config import MAX_IMAGES, MAX_PARTS, MAX_TEXT_CHARS, MAX_URL_CHARS
from aurous_embed._errors import InputValidationError
from aurous_embed._hosts import blocked_host_reason, url_spelling_reason
from aurous_embed._images import precheck_image
from aurous_embed._part_types import ImageURL, Part, Text, VideoURL, count_images

BATCH_HINT = (
    "a list of plain strings is N separate inputs, and the API refuses string[] input "
    "(embeddings_batch_not_supported): use embed_many([...]) for one vector per string, or wrap "
    "them as Text(...) parts to combine them into ONE vector"
)


def check_utf8(value: str, *, param: str, what: str) -> str:
    """``value`` unchanged, or a typed refusal when it holds a lone surrogate (``"\\ud800"``
    escapes, ``surrogateescape`` file names): such a str cannot be sent as UTF-8 JSON."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputValidationError(
            f"{what} is not valid UTF-8 (a lone surrogate at position {exc.start})", param=param
        ) from None
    return value


def check_text(text: object, *, param: str) -> str:
    """A text value the API accepts: a non-empty str, no NUL, at most 1,000,000 characters."""
    if not isinstance(text, str):
        raise InputValidationError(f"text must be a str, not {type(text).__name__}", param=param)
    if not text:
        raise InputValidationError("text is empty", param=param)
    if len(text) > MAX_TEXT_CHARS:
        raise InputValidationError(
            f"text has {len(text):,} characters; the cap is {MAX_TEXT_CHARS:,} per text "
            "(split it into chunks and embed each one)",
            param=param,
        )
    if "\x00" in text:
        raise InputValidationError(
            f"text contains a NUL character at position {text.index(chr(0))}", param=param
        )
    return check_utf8(text, param=param, what="text")


def check_url(url: object, *, param: str) -> str:
    """An https URL of at most 2,048 characters whose host is not a private or metadata address."""
    if not isinstance(url, str):
        raise InputValidationError(f"url must be a str, not {type(url).__name__}", param=param)
    if not url:
        raise InputValidationError("url is empty", param=param)
    if len(url) > MAX_URL_CHARS:
        raise InputValidationError(
            f"url has {len(url):,} characters; the cap is {MAX_URL_CHARS:,}", param=param
        )
    check_utf8(url, param=param, what="url")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError as exc:
        raise InputValidationError(f"url is malformed: {exc}", param=param) from None
    if parts.scheme.lower() != "https":
        hint = (
            " (local files and data: URIs go inline: use Image(...) or image_from_uri(...))"
            if parts.scheme.lower() in ("file", "data", "")
            else ""
        )
        raise InputValidationError(
            f"url scheme must be https, not {parts.scheme or 'missing'!r}{hint}", param=param
        )
    if not host:
        raise InputValidationError("url has no host", param=param)
    spelling = url_spelling_reason(url, parts.netloc)
    if spelling is not None:
        raise InputValidationError(f"url {spelling}: the API will not fetch it", param=param)
    try:
        parts.port  # noqa: B018 - parsing it raises ValueError for a port that is not 0-65535
    except ValueError:
        raise InputValidationError(
            f"url port {parts.netloc.rpartition(':')[2]!r} is not a port number", param=param
        ) from None
    reason = blocked_host_reason(host)
    if reason is not None:
        raise InputValidationError(
            f"url host {host!r} is {reason}: the API will not fetch it", param=param
        )
    return url  # a public address, or a hostname: the API resolves and checks it (we never do)


def check_part(part: Part, *, param: str) -> None:
    """Check one part's fields (cheap: of a local image only the header is read)."""
    if isinstance(part, Text):
        check_text(part.text, param=f"{param}.text")
    elif isinstance(part, ImageURL):
        check_url(part.url, param=f"{param}.image_url.url")
    elif isinstance(part, VideoURL):
        check_url(part.url, param=f"{param}.video_url.url")
    else:
        side = part.max_side
        if side is not None and (not isinstance(side, int) or isinstance(side, bool) or side < 1):
            raise InputValidationError(
                f"max_side must be a positive int, not {side!r}", param=f"{param}.max_side"
            )
        precheck_image(part.source, fit=part.fit, param=f"{param}.image_url.b64_json")


def check_counts(parts: Sequence[Part]) -> None:
    """At most ``MAX_PARTS`` parts and ``MAX_IMAGES`` image parts in one input."""
    if len(parts) > MAX_PARTS:
        raise InputValidationError(
            f"input has {len(parts)} content parts; the cap is {MAX_PARTS} total parts per request",
            param="input",
        )
    images = count_images(tuple(parts))
    if images > MAX_IMAGES:
        raise InputValidationError(
            f"input has {images} image parts; the cap is {MAX_IMAGES} images per request",
            param="input",
        )


def check_batch(inputs: object, method: str = "embed_many", param: str = "inputs") -> None:
    """Refuse what is not a collection of inputs: a str or bytes (its characters), a dict (its
    keys, e.g. one API-shaped part passed by mistake), or anything that cannot be iterated.

    One rule for the client's batch methods and every adapter method that takes a list."""
    if isinstance(inputs, Mapping):
        raise InputValidationError(
            f"{method} takes a list of {param}, not a dict (iterating it would embed its keys); "
            f"for one item pass a list of one",
            param=param,
        )
    if isinstance(inputs, (str, bytes, bytearray, os.PathLike)) or not (
        isinstance(inputs, Iterable) or hasattr(inputs, "__aiter__")
    ):
        raise InputValidationError(
            f"{method} takes a list of {param}, not a single {type(inputs).__name__}; "
            "for one item pass a list of one",
            param=param,
        )
