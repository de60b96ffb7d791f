"""The content parts one input is made of (``Text``, ``Image``, ``ImageURL``, ``VideoURL``) and the
shapes of an input before and after normalisation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeAlias

from aurous_embed._image_sources import is_ndarray, is_pil_image


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


def count_images(value: Normalized) -> int:
    """How many image parts (local or URL) a normalised input holds: the API's per-input cap."""
    return 0 if isinstance(value, str) else sum(isinstance(p, (Image, ImageURL)) for p in value)


def has_local_image(value: Normalized) -> bool:
    """Whether building the request means reading or encoding a local image."""
    return not isinstance(value, str) and any(isinstance(part, Image) for part in value)
