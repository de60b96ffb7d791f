"""Local images (bytes, paths, PIL images, numpy arrays) to PNG/JPEG/WebP bytes the API accepts.

Bytes that already meet the limits (PNG/JPEG/WebP, at most 10 MB and 4096 px on the longer side)
are sent unchanged. Anything else is re-encoded or downscaled with Pillow (extra ``images``); without
Pillow a clear :class:`MissingDependencyError` names the extra.

The format sniffing and header size parsing below are hand-written on purpose: they keep the core
free of dependencies (httpx only) while still catching non-images and oversized images before a
request is sent. They read a few header bytes, never decode pixels.

Nothing here grows without bound: a file or stream is read up to ``MAX_IMAGE_SOURCE_BYTES`` (and a
FIFO or device is refused without opening it), one image is decoded only up to
``MAX_DECODE_PIXELS``, and all conversions of the process together hold at most
``DECODE_BUDGET_PIXELS`` decoded at once (a JPEG is decoded at a reduced scale when it is to be
downscaled anyway).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import io
import math
import os
import stat
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aurous_embed._config import (
    BIG_IMAGE_PIXELS,
    DECODE_BUDGET_PIXELS,
    MAX_DECODE_PIXELS,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_SIDE,
    MAX_IMAGE_SOURCE_BYTES,
)
from aurous_embed._errors import InputValidationError, MissingDependencyError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

IMAGES_EXTRA_HINT = 'pip install "aurous-embed[images]"'


def sniff_mime(data: bytes) -> str | None:
    """The MIME type of PNG, JPEG or WebP bytes, from their magic numbers; ``None`` otherwise."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def header_size(data: bytes, mime: str) -> tuple[int, int] | None:
    """(width, height) read from the image header, or ``None`` if the header is unreadable."""
    try:
        if mime == "image/png":
            if data[12:16] != b"IHDR":
                return None
            width, height = struct.unpack(">II", data[16:24])
            return int(width), int(height)
        if mime == "image/webp":
            return _webp_size(data)
        if mime == "image/jpeg":
            return _jpeg_size(data)
    except (struct.error, IndexError):
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the frame tag and start code
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":  # lossless: 14-bit sizes packed after the signature byte
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: 24-bit canvas sizes minus one
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        # SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None


def _pil() -> Any:
    try:
        from PIL import Image as PILImageModule
    except ImportError:
        raise MissingDependencyError(
            f"this image needs Pillow to be converted or resized: {IMAGES_EXTRA_HINT}"
        ) from None
    return PILImageModule


def is_pil_image(value: object) -> bool:
    """True for a PIL image, without importing Pillow when it is not already loaded."""
    module = type(value).__module__
    return module.startswith("PIL.") and hasattr(value, "save") and hasattr(value, "size")


def is_ndarray(value: object) -> bool:
    """True for a numpy array, without importing numpy."""
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def is_path_like(value: object) -> bool:
    return isinstance(value, (str, os.PathLike))


def is_binary_file(value: object) -> bool:
    """A binary file-like object (``BytesIO``, an open ``rb`` file)."""
    return isinstance(value, io.IOBase) or (
        callable(getattr(value, "read", None)) and not isinstance(value, (str, bytes))
    )


def is_one_pass_stream(value: object) -> bool:
    """A binary stream that cannot be read twice (no ``getvalue``, not seekable)."""
    if (
        not is_binary_file(value)
        or is_pil_image(value)
        or callable(getattr(value, "getvalue", None))
    ):
        return False
    seekable = getattr(value, "seekable", None)
    try:
        return not (callable(seekable) and seekable())
    except (OSError, ValueError):  # e.g. closed: its check says so
        return False


def _too_big(what: str, *, param: str) -> InputValidationError:
    return InputValidationError(
        f"{what} is over {MAX_IMAGE_SOURCE_BYTES:,} bytes, the most this client reads of one "
        "image (images over 10 MB are only read to be converted)",
        param=param,
    )


def read_binary_file(source: object, *, param: str) -> bytes:
    """The bytes of a file-like object, from the start, without moving its position for good.

    Reads at most ``MAX_IMAGE_SOURCE_BYTES`` (an endless stream is refused, not read whole).
    """
    handle: Any = source
    try:
        getvalue = getattr(source, "getvalue", None)
        if callable(getvalue):  # BytesIO: no seeking needed
            data = getvalue()
        else:
            seekable = getattr(handle, "seekable", None)
            position = handle.tell() if callable(seekable) and seekable() else None
            if position is not None:
                handle.seek(0)
            data = handle.read(MAX_IMAGE_SOURCE_BYTES + 1)
            if position is not None:
                handle.seek(position)
    except (
        Exception
    ) as exc:  # closed, odd or failing file objects (a network stream may raise anything)
        raise InputValidationError(
            f"cannot read the image stream: {type(exc).__name__}: {exc}", param=param
        ) from None
    if not isinstance(data, (bytes, bytearray)):
        raise InputValidationError(
            "an image stream must be binary (open the file with 'rb')", param=param
        )
    if len(data) > MAX_IMAGE_SOURCE_BYTES:
        raise _too_big("the image stream", param=param)
    return bytes(data)


def _regular_file(path: Path, *, param: str) -> int:
    """The size of ``path`` if it is a regular file within the limits; a typed refusal otherwise.

    Decided from ``stat`` alone: a FIFO or a device is never opened (opening a FIFO blocks, and a
    device may never end).
    """
    text = str(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputValidationError(
            f"image file {text[:200]!r} does not exist", param=param
        ) from None
    except (OSError, ValueError) as exc:  # too long, a NUL byte, no permission, a loop
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InputValidationError(
            f"cannot read image file {text[:200]!r}: {reason}", param=param
        ) from None
    mode = info.st_mode
    if not stat.S_ISREG(mode):
        what = (
            "a directory"
            if stat.S_ISDIR(mode)
            else "a named pipe (FIFO)"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a regular file"
        )
        raise InputValidationError(
            f"image file {text[:200]!r} is {what}, not a regular file", param=param
        )
    if info.st_size > MAX_IMAGE_SOURCE_BYTES:
        raise _too_big(f"image file {text[:200]!r} ({info.st_size:,} bytes)", param=param)
    return int(info.st_size)


def read_image_file(path: Path, *, param: str) -> bytes:
    """The bytes of an image file (checked by :func:`_regular_file` first)."""
    _regular_file(path, param=param)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_IMAGE_SOURCE_BYTES + 1)
    except OSError as exc:
        raise InputValidationError(f"cannot read image file: {exc}", param=param) from None
    if len(data) > MAX_IMAGE_SOURCE_BYTES:  # it grew since the check
        raise _too_big(f"image file {str(path)[:200]!r}", param=param)
    if not data:
        raise InputValidationError(f"image file {str(path)[:200]!r} is empty", param=param)
    return data


def check_source(source: object, *, param: str) -> None:
    """Cheap checks of an image source, done for every item before a batch sends anything."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise InputValidationError("image bytes are empty", param=param)
        return
    if is_path_like(source):
        try:
            text = os.fspath(source)  # type: ignore[call-overload]
        except TypeError as exc:
            raise InputValidationError(f"not a file path: {exc}", param=param) from None
        if not isinstance(text, str):
            raise InputValidationError("an image path must be a str", param=param)
        if "://" in text or text.startswith("data:"):
            raise InputValidationError(
                f"{text[:80]!r} is a URI, not a file path: use ImageURL(url) for https URLs or "
                "image_from_uri(uri), which also reads file:// and data: URIs",
                param=param,
            )
        _regular_file(Path(text), param=param)
        return
    if is_pil_image(source):
        _check_pil_image(source, param=param)
        return
    if is_ndarray(source):
        _check_array(source, param=param)
        _check_pixels((source.shape[1], source.shape[0]), param=param)  # type: ignore[attr-defined]
        return
    if is_binary_file(source):
        if getattr(source, "closed", False) is True:
            raise InputValidationError("the image stream is closed", param=param)
        return
    raise InputValidationError(
        "an image must be a path, bytes, a binary file object, a PIL image or a numpy uint8 array, "
        f"not {type(source).__name__}",
        param=param,
    )


class _PixelBudget:
    """How many pixels the process's image conversions may hold decoded at once (thread-safe).

    A conversion takes its image's pixel count (or the whole budget, if it is larger) before it
    decodes and gives it back after: huge images are decoded one after another, small ones side by
    side.
    """

    def __init__(self, pixels: int) -> None:
        self.capacity = pixels
        self._free = pixels
        self._ready = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        share = min(pixels, self.capacity)
        with self._ready:
            self._ready.wait_for(lambda: self._free >= share)
            self._free -= share
        try:
            yield
        finally:
            with self._ready:
                self._free += share
                self._ready.notify_all()


DECODE_BUDGET = _PixelBudget(DECODE_BUDGET_PIXELS)
_OPEN_LOCK = threading.Lock()  # warnings.catch_warnings changes process-wide state


def _open(target: object, *, param: str, problem: str) -> Any:
    """Pillow's lazy open (the header only), for an image this module bounds itself: Pillow's
    decompression-bomb warning is silenced, and more than ``MAX_DECODE_PIXELS`` is refused."""
    pil = _pil()
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", pil.DecompressionBombWarning)
            image = pil.open(target)
    except Exception as exc:  # Pillow raises many types for bad data
        raise _undecodable(exc, problem, param=param) from None
    _check_pixels(image.size, param=param)
    return image


def _check_pixels(size: tuple[int, int], *, param: str) -> None:
    width, height = size
    if width * height > MAX_DECODE_PIXELS:
        raise InputValidationError(
            f"image {width}x{height} px is over {MAX_DECODE_PIXELS:,} pixels, the most this "
            "client decodes for one image (downscale it first)",
            param=param,
        )


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
        return _pil()
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
        raise _too_big("the image stream", param=param)
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
    _check_pixels(size, param=param)
    problem = _over_limits(size, total)
    if problem is not None:
        _converter(problem, fit=fit, param=param)


@functools.cache
def _convertible(mode: str) -> bool:
    """Whether Pillow converts images of ``mode`` to RGB and RGBA (``"La"`` does not)."""
    pil = _pil()
    try:
        pixel = pil.new(mode, (1, 1))
        pixel.convert("RGB")
        pixel.convert("RGBA")
    except Exception:  # Pillow raises ValueError for most, other types for exotic modes
        return False
    return True


def _check_pil_image(image: Any, *, param: str) -> None:
    """A PIL image this client can convert: open, not empty, within the pixel bound, a known mode."""
    # Pillow keeps a closed image's pixels as a DeferredError that raises on use; a lazily opened,
    # not yet loaded image has none (``_im is None``) and is fine.
    if type(getattr(image, "_im", None)).__name__ == "DeferredError":
        raise InputValidationError("the PIL image is closed", param=param)
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InputValidationError(
            f"a PIL image has an empty dimension: {width}x{height}", param=param
        )
    _check_pixels((width, height), param=param)
    mode = image.mode
    if not isinstance(mode, str) or not _convertible(mode):
        raise InputValidationError(
            f"a PIL image in mode {mode!r} cannot be converted to RGB "
            "(convert it first, e.g. image.convert('RGBA'))",
            param=param,
        )


def _check_array(array: Any, *, param: str) -> None:
    if str(array.dtype) != "uint8":
        raise InputValidationError(
            f"a numpy image must have dtype uint8, not {array.dtype} "
            "(scale floats in [0, 1] with (a * 255).astype('uint8'))",
            param=param,
        )
    shape = tuple(array.shape)
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3, 4))):
        raise InputValidationError(
            f"a numpy image must be HxW or HxWxC with C in 1, 3, 4; got shape {shape}", param=param
        )
    if 0 in shape:
        raise InputValidationError(f"a numpy image has an empty dimension: {shape}", param=param)


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
            raise _too_big(f"image bytes ({len(source):,})", param=param)
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
    pil = _pil()
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

    return _decoding(width * height, convert)


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

    return _decoding(width * height, convert)


_BIG_THREAD = "aurous-big-image"  # not "aurous-embed-": the batch workers' prefix
_big_pool: concurrent.futures.ThreadPoolExecutor | None = None
_big_pool_lock = threading.Lock()


def _decoding(pixels: int, convert: Callable[[], bytes]) -> bytes:
    """Run one conversion holding its pixels in :data:`DECODE_BUDGET`; one of more than
    ``BIG_IMAGE_PIXELS`` runs on the process's one big-image thread (see ``_config``)."""

    def held() -> bytes:
        with DECODE_BUDGET.hold(pixels):
            return convert()

    if pixels <= BIG_IMAGE_PIXELS or threading.current_thread().name.startswith(_BIG_THREAD):
        return held()
    global _big_pool
    with _big_pool_lock:
        if _big_pool is None:
            _big_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=_BIG_THREAD)
        pool = _big_pool
    return pool.submit(held).result()


def _reencode(
    image: PILImage, *, fit: bool, param: str, lossy_source: bool, side: int = MAX_IMAGE_SIDE
) -> bytes:
    """Encode a PIL image as PNG (or JPEG for photos), downscaling to ``side`` (the limits)."""
    pil = _pil()
    if max(image.size) > side:
        if not fit and max(image.size) > MAX_IMAGE_SIDE:
            raise InputValidationError(
                f"image {image.size[0]}x{image.size[1]} px is over {MAX_IMAGE_SIDE} px", param=param
            )
        # A new, smaller image (the caller's is left alone); reducing by whole factors first
        # keeps the intermediate images small.
        image = image.resize(_fit_scale(image.size, side), pil.Resampling.LANCZOS, reducing_gap=3.0)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if has_alpha else "RGB")
    use_jpeg = lossy_source and not has_alpha
    for _ in range(8):
        buffer = io.BytesIO()
        if use_jpeg:
            image.convert("RGB").save(buffer, format="JPEG", quality=90)
        else:
            image.save(buffer, format="PNG", optimize=False)
        if buffer.tell() <= MAX_IMAGE_BYTES:
            return buffer.getvalue()
        if not use_jpeg and not has_alpha:
            use_jpeg = True  # a big lossless photo: JPEG first, then downscale
            continue
        width, height = image.size
        image = image.resize((max(1, width * 3 // 4), max(1, height * 3 // 4)))
    raise InputValidationError(
        f"cannot bring the image under {MAX_IMAGE_BYTES:,} bytes", param=param
    )  # pragma: no cover - eight 25% downscales always get there
