"""Content parts: the one place where user input becomes the JSON the API accepts.

One input is ONE vector. It is a ``str`` (text only), one part, or a list of parts the API joins, in
order, into one document. :func:`normalize_input` turns whatever the user passed into that shape and
checks every documented cap; :func:`input_to_wire` turns it into the request's ``input`` value
(encoding local images). Both raise :class:`InputValidationError` naming the field, so nothing
invalid is ever sent.
"""

from __future__ import annotations

import base64
import binascii
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeAlias
from urllib.parse import unquote_to_bytes, urlsplit
from urllib.request import url2pathname

from aurous_embed._config import (
    IMAGE_FILE_SUFFIXES,
    MAX_IMAGES,
    MAX_PARTS,
    MAX_TEXT_CHARS,
    MAX_URL_CHARS,
)
from aurous_embed._errors import InputValidationError
from aurous_embed._hosts import blocked_host_reason, url_spelling_reason
from aurous_embed._image_sources import (
    check_source,
    is_binary_file,
    is_ndarray,
    is_one_pass_stream,
    is_pil_image,
    read_binary_file,
)
from aurous_embed._images import encode_image, precheck_image

__all__ = [
    "EmbedInput",
    "Image",
    "ImageURL",
    "Part",
    "Text",
    "VideoURL",
    "image_from_uri",
    "images_from_uris",
]


@dataclass(frozen=True, slots=True)
class Text:
    """A text part. ``embed([Text("title"), Text("body")])`` gives ONE combined vector.

    Example:
        >>> Text("Hand-stitched full-grain leather.")
        Text(text='Hand-stitched full-grain leather.')
    """

    text: str


@dataclass(frozen=True, slots=True)
class ImageURL:
    """An image the API fetches itself: https only, at most 2,048 characters.

    Example:
        >>> ImageURL("https://example.com/bag.jpg")
        ImageURL(url='https://example.com/bag.jpg')
    """

    url: str


@dataclass(frozen=True, slots=True)
class VideoURL:
    """A video URL part. The API rejects video since 2026-05-24 (``VideoUnsupportedError``)."""

    url: str


@dataclass(frozen=True, slots=True, eq=False)
class Image:
    """A local image, sent inline as ``image_url.b64_json``.

    Args:
        source: a path (``str`` or ``Path``), ``bytes``, a binary file object (``BytesIO``, a file
            opened ``rb``), a PIL image, or a numpy ``uint8`` array (H×W or H×W×C). PNG, JPEG and WebP bytes within the limits are sent unchanged; other
            formats, and images over 4096 px or 10 MB, are converted/downscaled with Pillow.
        fit: when ``False``, an image over the limits raises instead of being downscaled.
        max_side: downscale the image before sending so that its longer side is at most this
            many pixels (smaller uploads for big photos; it can change the vector, so it is
            never done unless asked). ``None``: only the API's limits apply.

    Example:
        >>> Image("photos/bag.jpg")  # doctest: +SKIP
        >>> Image("photos/bag.jpg", max_side=1568)  # doctest: +SKIP
    """

    source: Any
    fit: bool = True
    max_side: int | None = None

    def __repr__(self) -> str:
        src = self.source
        if isinstance(src, (bytes, bytearray, memoryview)):
            shown = f"<{len(src)} bytes>"
        elif is_ndarray(src):
            shown = f"<ndarray {tuple(src.shape)} {src.dtype}>"
        elif is_pil_image(src):
            shown = f"<PIL {src.mode} {src.size[0]}x{src.size[1]}>"
        else:
            shown = repr(src)
        options = ("" if self.fit else ", fit=False") + (
            "" if self.max_side is None else f", max_side={self.max_side}"
        )
        return f"Image({shown}{options})"


Part: TypeAlias = Text | ImageURL | Image | VideoURL
# What one input may be: a str, a part, or a list of parts (strs inside a list of parts are
# Text); an image given directly (bytes, a path, a binary file, a PIL image, a numpy array) is one
# Image part, and an API-shaped dict is that part. PIL and numpy types are not named here so the
# core imports neither; wrap them in Image(...) to keep a type checker informed.
EmbedInput: TypeAlias = (
    str
    | Part
    | Sequence[Any]
    | Mapping[str, Any]
    | bytes
    | bytearray
    | os.PathLike[str]
    | IO[bytes]
)
Normalized: TypeAlias = str | tuple[Part, ...]

_PART_TYPES = (Text, ImageURL, Image, VideoURL)

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


def _part_from_dict(value: dict[Any, Any], *, param: str) -> Part:
    """An API-shaped part dict (``{"type": "text", "text": ...}`` and friends) as a typed part."""
    kind = value.get("type")
    if not isinstance(kind, str):  # before any ==: some objects (numpy arrays) compare elementwise
        raise InputValidationError(
            f"part type must be a str such as 'text', not {type(kind).__name__}",
            param=f"{param}.type",
        )
    if kind == "text":
        return Text(value.get("text"))  # type: ignore[arg-type]  # checked by check_part
    if kind in ("image_url", "video_url"):
        inner = value.get(kind)
        if not isinstance(inner, dict):
            raise InputValidationError(
                f"{kind} must be an object such as {{'url': 'https://...'}}, not "
                f"{type(inner).__name__}",
                param=f"{param}.{kind}",
            )
        if kind == "image_url" and "b64_json" in inner:
            if "url" in inner:
                raise InputValidationError(
                    "give exactly one of url or b64_json", param=f"{param}.image_url"
                )
            try:
                data = base64.b64decode(inner["b64_json"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise InputValidationError(
                    "b64_json is not valid base64", param=f"{param}.image_url.b64_json"
                ) from None
            return Image(data)
        url = inner.get("url")  # checked by check_part
        return ImageURL(url) if kind == "image_url" else VideoURL(url)  # type: ignore[arg-type]
    raise InputValidationError(
        f"unknown part type {kind!r}; expected 'text', 'image_url' or 'video_url'",
        param=f"{param}.type",
    )


def _to_part(item: object, *, param: str) -> Part:
    if isinstance(item, _PART_TYPES):
        return item
    if isinstance(item, str):
        return Text(item)
    if isinstance(item, dict):
        return _part_from_dict(item, param=param)
    if (
        isinstance(item, (bytes, bytearray, memoryview, os.PathLike))
        or is_pil_image(item)
        or is_ndarray(item)
        or is_binary_file(item)
    ):
        return Image(item)
    if isinstance(item, (list, tuple)):
        raise InputValidationError(
            "nested lists are not parts: one input is a flat list of parts (use embed_many for "
            "several inputs)",
            param=param,
        )
    raise InputValidationError(
        f"a part must be Text, Image, ImageURL, VideoURL, a str or an image, not "
        f"{type(item).__name__}",
        param=param,
    )


def normalize_input(value: object) -> Normalized:
    """One user input as a ``str`` or a tuple of parts, checked against every documented cap.

    Raises:
        InputValidationError: with ``param`` naming the offending field.
    """
    if isinstance(value, str):
        return check_text(value, param="input")
    if isinstance(value, (list, tuple)):
        if not value:
            raise InputValidationError("input is an empty list", param="input")
        if all(isinstance(item, str) for item in value):
            raise InputValidationError(BATCH_HINT, param="input")
        parts = tuple(_to_part(item, param=f"input[{i}]") for i, item in enumerate(value))
    elif isinstance(value, dict):
        parts = (_part_from_dict(value, param="input[0]"),)
    elif value is None:
        raise InputValidationError("input is None", param="input")
    else:
        parts = (_to_part(value, param="input"),)
    if len(parts) > MAX_PARTS:
        raise InputValidationError(
            f"input has {len(parts)} content parts; the cap is {MAX_PARTS} total parts per request",
            param="input",
        )
    images = sum(isinstance(part, (Image, ImageURL)) for part in parts)
    if images > MAX_IMAGES:
        raise InputValidationError(
            f"input has {images} image parts; the cap is {MAX_IMAGES} images per request",
            param="input",
        )
    parts = tuple(_settled(part, param=f"input[{i}]") for i, part in enumerate(parts))
    for i, part in enumerate(parts):
        check_part(part, param=f"input[{i}]")
    return parts


def _settled(part: Part, *, param: str) -> Part:
    """An image from a stream that cannot be rewound is read now (bounded), once: it can then be
    checked before anything is sent, hashed for the cache and encoded from the same bytes."""
    if isinstance(part, Image) and is_one_pass_stream(part.source):
        data = read_binary_file(part.source, param=f"{param}.image_url.b64_json")
        return Image(data, fit=part.fit, max_side=part.max_side)
    return part


def _warn_if_image_path(text: str) -> None:
    if (
        len(text) < 4096
        and "\n" not in text
        and os.path.splitext(text)[1].lower() in IMAGE_FILE_SUFFIXES
        and os.path.isfile(text)
    ):
        warnings.warn(
            f"{text!r} names an image file but is embedded as text; wrap it as Image({text!r}) "
            "to embed the picture",
            UserWarning,
            stacklevel=4,
        )


def document_parts(parts: Any) -> Any:
    """One multimodal document for the core, as a framework user writes it: in a list, a ``str`` is
    a ``Text`` part (the core reads a list of plain strs as N inputs); anything else is unchanged.
    A ``str`` that names an existing image file is still text, with a warning saying so."""
    if isinstance(parts, (list, tuple)):
        converted: list[object] = []
        for part in parts:
            if isinstance(part, str):
                _warn_if_image_path(part)
                converted.append(Text(part))
            else:
                converted.append(part)
        return converted
    if isinstance(parts, str):
        _warn_if_image_path(parts)
    return parts


def has_local_image(value: Normalized) -> bool:
    """Whether building the request means reading or encoding a local image."""
    return not isinstance(value, str) and any(isinstance(part, Image) for part in value)


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


def normalize_inputs(inputs: Iterable[EmbedInput]) -> list[Normalized]:
    """Check every input of a batch, before anything is sent; an error names the item's index."""
    check_batch(inputs)
    values = []
    for index, value in enumerate(inputs):
        try:
            values.append(normalize_input(value))
        except InputValidationError as exc:
            raise exc.at_index(index) from None
    return values


def part_to_wire(part: Part, *, param: str) -> dict[str, Any]:
    """The JSON of one (already checked) part; local images are encoded here."""
    if isinstance(part, Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImageURL):
        return {"type": "image_url", "image_url": {"url": part.url}}
    if isinstance(part, VideoURL):
        return {"type": "video_url", "video_url": {"url": part.url}}
    data = encode_image(
        part.source, fit=part.fit, param=f"{param}.image_url.b64_json", max_side=part.max_side
    )
    return {"type": "image_url", "image_url": {"b64_json": base64.b64encode(data).decode("ascii")}}


def input_to_wire(value: Normalized) -> str | list[dict[str, Any]]:
    """The request's ``input`` value for a normalised input."""
    if isinstance(value, str):
        return value
    return [part_to_wire(part, param=f"input[{i}]") for i, part in enumerate(value)]


def count_images(value: Normalized) -> int:
    return 0 if isinstance(value, str) else sum(isinstance(p, (Image, ImageURL)) for p in value)


def image_from_uri(uri: str | os.PathLike[str]) -> ImageURL | Image:
    """A part for an image given as a URI or path.

    ``https://`` becomes :class:`ImageURL` (the API fetches it); a local path or ``file://`` URI
    becomes :class:`Image` (sent inline); a ``data:`` URI becomes :class:`Image` of its bytes (the API
    refuses data: URIs, so they always go inline). Anything else raises
    :class:`InputValidationError`.

    Example:
        >>> image_from_uri("https://example.com/a.png")
        ImageURL(url='https://example.com/a.png')
    """
    if isinstance(uri, os.PathLike):
        return Image(Path(uri))
    if not isinstance(uri, str):
        raise InputValidationError(f"an image URI must be a str, not {type(uri).__name__}")
    if not uri:
        raise InputValidationError("the image URI is empty")
    scheme = urlsplit(uri).scheme.lower() if ":" in uri else ""
    if scheme == "https":
        check_url(uri, param="url")
        return ImageURL(uri)
    if scheme == "file":
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise InputValidationError(f"file URI on a remote host is not readable: {uri[:80]!r}")
        return Image(Path(url2pathname(parts.path)))
    if scheme == "data":
        return Image(_data_uri_bytes(uri))
    if scheme == "" or len(scheme) == 1:  # a path, or a Windows drive letter such as C:
        return Image(Path(uri))
    if scheme == "http":
        raise InputValidationError(
            "plain http:// image URLs are refused by the API: use https://, or download the "
            "image and pass the local file"
        )
    raise InputValidationError(f"unsupported image URI scheme {scheme!r} in {uri[:80]!r}")


def _data_uri_bytes(uri: str) -> bytes:
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise InputValidationError("malformed data: URI (no comma)")
    media = header.split(";")[0].strip().lower()
    if media and not media.startswith("image/"):
        raise InputValidationError(f"data: URI holds {media}, not an image")
    if header.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InputValidationError("data: URI payload is not valid base64") from None
    return unquote_to_bytes(payload)


def images_from_uris(uris: Sequence[object]) -> list[ImageURL | Image]:
    """One image part per item; an error names the item's index.

    Items may be URIs or paths (through :func:`image_from_uri`), ``Image``/``ImageURL`` parts
    (kept), or image objects (bytes, binary files, PIL images, numpy arrays: wrapped in ``Image``).
    """
    check_batch(uris, "embed_image", param="uris")
    parts: list[ImageURL | Image] = []
    for index, uri in enumerate(uris):
        try:
            if isinstance(uri, (str, os.PathLike)):
                parts.append(image_from_uri(uri))
            elif isinstance(uri, (Image, ImageURL)):
                parts.append(uri)
            else:
                part = Image(uri)
                check_source(part.source, param="uris")
                parts.append(part)
        except InputValidationError as exc:
            raise exc.at_index(index) from None
    return parts
