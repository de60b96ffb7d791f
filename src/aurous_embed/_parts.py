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
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit
from urllib.request import url2pathname

from aurous_embed._config import IMAGE_FILE_SUFFIXES
from aurous_embed._errors import InputValidationError
from aurous_embed._image_sources import (
    check_source,
    is_binary_file,
    is_ndarray,
    is_one_pass_stream,
    is_pil_image,
    read_binary_file,
)
from aurous_embed._images import encode_image
from aurous_embed._part_checks import (
    BATCH_HINT,
    check_batch,
    check_counts,
    check_part,
    check_text,
    check_url,
)
from aurous_embed._part_types import (
    EmbedInput,
    Image,
    ImageURL,
    Normalized,
    Part,
    Text,
    VideoURL,
    has_local_image,
)

# The part types and the checks the clients use are re-exported: this module is the inputs layer's
# face (``aurous_embed`` exports the part types from here).
__all__ = [
    "EmbedInput",
    "Image",
    "ImageURL",
    "Normalized",
    "Part",
    "Text",
    "VideoURL",
    "check_batch",
    "has_local_image",
    "image_from_uri",
    "images_from_uris",
    "input_to_wire",
    "normalize_input",
    "normalize_inputs",
]

_PART_TYPES = (Text, ImageURL, Image, VideoURL)


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
    check_counts(parts)
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
