"""Local image sources (bytes, paths, binary streams, PIL images, numpy arrays): what kind a value
is, reading it within bounds, and the cheap checks every image of a batch passes before anything
is sent.

The format sniffing and header size parsing are hand-written on purpose: they keep the core free
of dependencies (httpx only) while still catching non-images and oversized images before a request
is sent. They read a few header bytes, never decode pixels. A file or stream is read up to
``MAX_IMAGE_SOURCE_BYTES``, and a FIFO or device is refused without opening it.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import struct
from pathlib import Path
from typing import Any

from aurous_embed._config import MAX_IMAGE_SOURCE_BYTES
from aurous_embed._errors import InputValidationError, MissingDependencyError
from aurous_embed._pixel_budget import check_pixels

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


def pillow() -> Any:
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


def too_big(what: str, *, param: str) -> InputValidationError:
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
        raise too_big("the image stream", param=param)
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
        raise too_big(f"image file {text[:200]!r} ({info.st_size:,} bytes)", param=param)
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
        raise too_big(f"image file {str(path)[:200]!r}", param=param)
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
        check_pixels((source.shape[1], source.shape[0]), param=param)  # type: ignore[attr-defined]
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


@functools.cache
def _convertible(mode: str) -> bool:
    """Whether Pillow converts images of ``mode`` to RGB and RGBA (``"La"`` does not)."""
    pil = pillow()
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
    check_pixels((width, height), param=param)
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
