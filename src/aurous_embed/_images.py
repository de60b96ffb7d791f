"""Local images to PNG/JPEG/WebP bytes the API accepts, and the header pre-check of a batch.

Bytes that already meet the limits (PNG/JPEG/WebP, at most 10 MB and 4096 px on the longer side)
are sent unchanged. Anything else is re-encoded or downscaled with Pillow (extra ``images``);
without Pillow a clear :class:`MissingDependencyError` names the extra. Reading sources is
:mod:`._image_sources`; how many pixels are decoded at once is :mod:`._pixel_budget` (a JPEG is
decoded at a reduced scale when it is to be downscaled anyway).
"""

from __future__ import annotations

import io
import math
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aurous_embed._config import MAX_IMAGE_BYTES, MAX_IMAGE_SIDE, MAX_IMAGE_SOURCE_BYTES
from aurous_embed._errors import InputValidationError, MissingDependencyError
from aurous_embed._image_sources import (
    check_source,
    header_size,
    is_binary_file,
    is_ndarray,
    is_path_like,
    is_pil_image,
    pillow,
    read_binary_file,
    read_image_file,
    sniff_mime,
    too_big,
)
from aurous_embed._pixel_budget import check_pixels, decoding

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

_OPEN_LOCK = threading.Lock()  # warnings.catch_warnings changes process-wide state


def _open(target: object, *, param: str, problem: str) -> Any:
    """Pillow's lazy open (the header only), for an image this module bounds itself: Pillow's
    decompression-bomb warning is silenced, and more than ``MAX_DECODE_PIXELS`` is refused."""
    pil = pillow()
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", pil.DecompressionBombWarning)
            image = pil.open(target)
    except Exception as exc:  # Pillow raises many types for bad data
        raise _undecodable(exc, problem, param=param) from None
    check_pixels(image.size, param=param)
    return image


def _fit_scale(size: tuple[int, int], side: int = MAX_IMAGE_SIDE) -> tuple[int, int]:
    """``size`` scaled down so that its longer side is at most ``side``."""
    width, height = size
    ratio = min(1.0, side / max(width, height))
    return max(1, math.floor(width * ratio)), max(1, math.floor(height * ratio))


NOT_AN_IMAGE = "not a PNG, JPEG or WebP image"


def _corrupt(mime: str, *, param: str) -> InputValidationError:
    return InputValidationError(
        f"the {mime} header is corrupt or truncated; cannot read the image size", param=param
    )


def _over_limits(size: tuple[int, int], nbytes: int, side: int = MAX_IMAGE_SIDE) -> str | None:
    """What makes a PNG/JPEG/WebP unacceptable as it is, or ``None``."""
    if max(size) > side:
        return f"{size[0]}x{size[1]} px is over {side} px"
    if nbytes > MAX_IMAGE_BYTES:
        return f"{nbytes:,} bytes is over {MAX_IMAGE_BYTES:,}"
    return None


def _converter(problem: str, *, fit: bool, param: str) -> Any:
    """Pillow, to convert an image with ``problem``; refused with ``fit=False`` or without Pillow."""
    if not fit:
        raise InputValidationError(
            f"image {problem} and fit=False forbids converting it", param=param
        )
    try:
        return pillow()
    except MissingDependencyError as exc:
        raise MissingDependencyError(f"image {problem}; {exc}") from None


def _undecodable(exc: Exception, problem: str, *, param: str) -> InputValidationError:
    return InputValidationError(
        f"cannot decode image ({problem}): {type(exc).__name__}: {exc}", param=param
    )


# How much of an image the batch pre-check reads: the first few KB hold every PNG/WebP header and
# most JPEG ones; only a JPEG whose size marker is not there yet is read further, up to 256 KB
# (ordinary EXIF/ICC segments). A size marker beyond that is checked when the request is built.
_HEAD_FIRST = 4096
_HEAD_MAX = 256 * 1024


def precheck_image(source: object, *, fit: bool, param: str) -> None:
    """Everything about a local image that can be known from its header, before a batch sends.

    Catches missing files, non-images, corrupt headers and (with ``fit=False``) images over the
    limits, reading a few KB per image and decoding no pixels, so that a bad image in a batch of
    thousands stops the batch before anything is sent or charged.
    """
    check_source(source, param=param)
    if isinstance(source, (bytes, bytearray, memoryview)):
        _precheck_head(
            lambda size: bytes(source[:size]),
            total=len(source),
            fit=fit,
            param=param,
            source=source,
        )
    elif is_path_like(source):
        path = Path(source)  # type: ignore[arg-type]
        try:
            with path.open("rb") as handle:  # a regular file within the limits (check_source)
                total = os.fstat(handle.fileno()).st_size
                head = handle.read(_HEAD_FIRST)

                def read(size: int) -> bytes:
                    nonlocal head
                    if size > len(head) and len(head) < total:
                        head += handle.read(size - len(head))
                    return head[:size]

                if not head:
                    raise InputValidationError(f"image file {str(source)!r} is empty", param=param)
                _precheck_head(read, total=total, fit=fit, param=param, source=path)
        except OSError as exc:
            raise InputValidationError(f"cannot read image file: {exc}", param=param) from None
    elif is_pil_image(source) or is_ndarray(source):
        if is_pil_image(source):
            width, height = source.size  # type: ignore[attr-defined]
        else:
            height, width = source.shape[:2]  # type: ignore[attr-defined]
        if not fit and max(width, height) > MAX_IMAGE_SIDE:
            raise InputValidationError(
                f"image {width}x{height} px is over {MAX_IMAGE_SIDE} px and fit=False forbids "
                "converting it",
                param=param,
            )
    elif is_binary_file(source):
        _precheck_stream(source, fit=fit, param=param)


def _precheck_stream(source: object, *, fit: bool, param: str) -> None:
    """A stream's header and size, if it can be read and rewound (a ``BytesIO``, an open file);
    a stream that cannot is read once, bounded, when its request is built."""
    handle: Any = source
    try:
        getvalue = getattr(handle, "getvalue", None)
        if callable(getvalue):
            data = getvalue()
            head, total = data[:_HEAD_MAX], len(data)
        else:
            seekable = getattr(handle, "seekable", None)
            if not (callable(seekable) and seekable()):
                return
            position = handle.tell()
            handle.seek(0)
            head = handle.read(_HEAD_MAX)
            total = len(head)
            while total <= MAX_IMAGE_SOURCE_BYTES:  # counted, not kept
                chunk = handle.read(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
            handle.seek(position)
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise InputValidationError(f"cannot read the image stream: {exc}", param=param) from None
    if not isinstance(head, (bytes, bytearray)):
        raise InputValidationError(
            "an image stream must be binary (open the file with 'rb')", param=param
        )
    if total > MAX_IMAGE_SOURCE_BYTES:
        raise too_big("the image stream", param=param)
    if total == 0:
        raise InputValidationError("the image stream is empty", param=param)
    _precheck_head(lambda size: bytes(head[:size]), total=total, fit=fit, param=param, source=head)


def _precheck_head(
    read: Callable[[int], bytes], *, total: int, fit: bool, param: str, source: object
) -> None:
    head = read(_HEAD_FIRST)
    mime = sniff_mime(head)
    if mime is None:  # anything else needs Pillow: can it read this at all (header only)?
        _converter(NOT_AN_IMAGE, fit=fit, param=param)
        target = source if isinstance(source, Path) else io.BytesIO(bytes(source))  # type: ignore[call-overload]
        with _open(target, param=param, problem=NOT_AN_IMAGE):
            pass
        return
    size = header_size(head, mime)
    if size is None and len(head) < total:
        head = read(_HEAD_MAX)
        size = header_size(head, mime)
    if size is None:
        if len(head) >= total:
            raise _corrupt(mime, param=param)
        return  # a size marker beyond what was read (huge JPEG metadata): checked when encoded
    check_pixels(size, param=param)
    problem = _over_limits(size, total)
    if problem is not None:
        _converter(problem, fit=fit, param=param)


def encode_image(source: object, *, fit: bool, param: str, max_side: int | None = None) -> bytes:
    """Bytes of a PNG/JPEG/WebP image within the limits, ready for ``image_url.b64_json``;
    ``max_side`` downscales it further (its longer side), whatever ``fit`` says.

    Raises:
        InputValidationError: unreadable or corrupt image, over the client's bounds, or over the
            limits with ``fit=False``.
        MissingDependencyError: conversion needed but Pillow (or numpy) is not installed.
    """
    check_source(source, param=param)
    side = MAX_IMAGE_SIDE if max_side is None else min(max_side, MAX_IMAGE_SIDE)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) > MAX_IMAGE_SOURCE_BYTES:
            raise too_big(f"image bytes ({len(source):,})", param=param)
        return _fit_bytes(bytes(source), fit=fit, param=param, side=side)
    if is_path_like(source):
        data = read_image_file(Path(source), param=param)  # type: ignore[arg-type]
        return _fit_bytes(data, fit=fit, param=param, side=side)
    if is_binary_file(source) and not is_pil_image(source):
        data = read_binary_file(source, param=param)
        if not data:
            raise InputValidationError("the image stream is empty", param=param)
        return _fit_bytes(data, fit=fit, param=param, side=side)
    filename = _lazy_file(source)
    if filename is not None:  # decode a copy of our own: the caller's object stays undecoded
        return encode_image(filename, fit=fit, param=param, max_side=max_side)
    pil = pillow()
    shape: Any = source.shape if is_ndarray(source) else None  # type: ignore[attr-defined]
    width, height = (shape[1], shape[0]) if shape is not None else source.size  # type: ignore[attr-defined]
    # The caller's pixels count against the process's decode budget like a file's: a lazily
    # opened PIL image is decoded here, and a conversion makes copies of the same size.

    def convert() -> bytes:
        try:
            if shape is not None:
                array: Any = source
                # Pillow has no mode for HxWx1; it is a grey image.
                image: PILImage = pil.fromarray(
                    array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array
                )
            else:
                image = source  # type: ignore[assignment]
                image.load()
        except Exception as exc:  # Pillow raises many types for bad data
            raise _undecodable(exc, "a PIL image or numpy array", param=param) from None
        return _reencode(image, fit=fit, param=param, lossy_source=False, side=side)

    return decoding(width * height, convert)


def _lazy_file(source: object) -> str | None:
    """The file a PIL image was lazily opened from and not decoded yet (first frame), else None.

    Decoding such an image in place would leave its pixels in the caller's object (a list of six
    opened 12,000 x 12,000 PNGs would end up holding 3.5 GB); reading the file again costs a
    re-read and keeps the bound."""
    if not is_pil_image(source) or getattr(source, "_im", True) is not None:
        return None
    filename = getattr(source, "filename", None)
    tell = getattr(source, "tell", None)
    if not isinstance(filename, str) or not filename or not callable(tell) or tell() != 0:
        return None
    return filename if os.path.isfile(filename) else None


def _fit_bytes(data: bytes, *, fit: bool, param: str, side: int = MAX_IMAGE_SIDE) -> bytes:
    mime = sniff_mime(data)
    problem = NOT_AN_IMAGE
    if mime is not None:
        size = header_size(data, mime)
        if size is None:
            raise _corrupt(mime, param=param)
        over = _over_limits(size, len(data), side)
        if over is None:
            return data  # already acceptable: send the caller's bytes untouched
        problem = over
    # Asked for (max_side) or needed (over the API's limits): convert.
    _converter(problem, fit=fit or side < MAX_IMAGE_SIDE, param=param)
    image = _open(io.BytesIO(data), param=param, problem=problem)
    if image.format == "JPEG" and max(image.size) > side:
        # Decode at 1/2, 1/4 or 1/8 scale straight from the DCT: it is downscaled anyway.
        image.draft("RGB", _fit_scale(image.size, side))
    width, height = image.size

    def convert() -> bytes:
        try:
            image.load()
        except Exception as exc:  # Pillow raises many types for bad data
            raise _undecodable(exc, problem, param=param) from None
        return _reencode(image, fit=fit, param=param, lossy_source=mime == "image/jpeg", side=side)

    return decoding(width * height, convert)


def _reencode(
    image: PILImage, *, fit: bool, param: str, lossy_source: bool, side: int = MAX_IMAGE_SIDE
) -> bytes:
    """Encode a PIL image as PNG (or JPEG for photos), downscaling to ``side`` (the limits); an
    image in any mode Pillow opens, and one it cannot convert is an :class:`InputValidationError`."""
    mode = image.mode
    try:
        return _encode(image, fit=fit, param=param, lossy_source=lossy_source, side=side)
    except InputValidationError:
        raise
    except Exception as exc:  # Pillow raises many types for what it cannot convert
        raise InputValidationError(
            f"cannot convert the image (mode {mode!r}): {type(exc).__name__}: {exc}", param=param
        ) from None


_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _encode(image: PILImage, *, fit: bool, param: str, lossy_source: bool, side: int) -> bytes:
    has_alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
    image = _encodable(image, has_alpha=has_alpha)
    if max(image.size) > side:
        if not fit and max(image.size) > MAX_IMAGE_SIDE:
            raise InputValidationError(
                f"image {image.size[0]}x{image.size[1]} px is over {MAX_IMAGE_SIDE} px", param=param
            )
        image = _resized(image, _fit_scale(image.size, side))
    use_jpeg = lossy_source and not has_alpha
    for _ in range(8):
        buffer = io.BytesIO()
        if use_jpeg:
            _eight_bit(image).convert("RGB").save(buffer, format="JPEG", quality=90)
        else:
            image.save(buffer, format="PNG", optimize=False)
        if buffer.tell() <= MAX_IMAGE_BYTES:
            return buffer.getvalue()
        if not use_jpeg and not has_alpha:
            use_jpeg = True  # a big lossless photo: JPEG first, then downscale
            continue
        width, height = image.size
        image = _resized(image, (max(1, width * 3 // 4), max(1, height * 3 // 4)))
    raise InputValidationError(
        f"cannot bring the image under {MAX_IMAGE_BYTES:,} bytes", param=param
    )  # pragma: no cover - eight 25% downscales always get there


def _encodable(image: PILImage, *, has_alpha: bool) -> PILImage:
    """``image`` in a mode that PNG writes and Pillow resamples: L, LA, RGB, RGBA, or I;16 for
    16-bit greyscale (kept 16-bit: Pillow's own I;16 conversions clip to 8 bits)."""
    mode = image.mode
    if mode in ("RGB", "RGBA", "L", "LA", "I;16"):
        return image
    if mode.startswith("I;16"):  # I;16B, I;16L, I;16N: through I, which keeps the values
        return image.convert("I").convert("I;16")
    if mode == "1":
        return image.convert("LA" if has_alpha else "L")
    return image.convert("RGBA" if has_alpha else "RGB")


def _resized(image: PILImage, size: tuple[int, int]) -> PILImage:
    """A new, smaller image (the caller's is left alone); reducing by whole factors first keeps
    the intermediate images small. 16-bit greyscale is resampled as I (``reduce`` has no I;16)."""
    pil = pillow()
    if image.mode == "I;16":
        return _resized(image.convert("I"), size).convert("I;16")
    return image.resize(size, pil.Resampling.LANCZOS, reducing_gap=3.0)


def _eight_bit(image: PILImage) -> PILImage:
    """16-bit greyscale scaled to 8 bits for JPEG (Pillow's conversion would clip it)."""
    if image.mode != "I;16":
        return image
    return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
