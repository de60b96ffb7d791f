"""Image checks and features for the emulator: format sniffing, header sizes, a tiny pixel grid.

Sizes are read from the file headers by hand, before Pillow touches the bytes: Pillow's
decompression-bomb check would otherwise turn a crafted header into a process-wide warning,
and checking the documented 4096 px cap first keeps every decode small.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from aurous_embed._config import MAX_IMAGE_BYTES, MAX_IMAGE_SIDE
from aurous_embed.testing._envelope import INVALID_FORMAT, VALUE_OUT_OF_RANGE

GRID = 8  # images are reduced to GRID x GRID cells before any feature is taken


class ImageProblem(Exception):
    """An image that breaks a rule; ``code`` is the envelope code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ImageInfo:
    """What the header says about an image."""

    mime: str
    width: int
    height: int


def sniff_mime(data: bytes) -> str | None:
    """Return the MIME type of PNG, JPEG or WebP bytes, else ``None``."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def inspect_image(data: bytes) -> ImageInfo:
    """Check bytes against the image rules (PNG/JPEG/WebP, 10 MB, 4096 px per side).

    Raises:
        ImageProblem: With ``invalid_format`` or ``value_out_of_range``.
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageProblem(
            VALUE_OUT_OF_RANGE,
            f"image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES} bytes (10 MB)",
        )
    mime = sniff_mime(data)
    if mime is None:
        raise ImageProblem(INVALID_FORMAT, "image must be PNG, JPEG or WebP")
    size = _header_size(data, mime)
    if size is None:
        raise ImageProblem(INVALID_FORMAT, f"image is not a readable {mime} file")
    width, height = size
    if max(width, height) > MAX_IMAGE_SIDE:
        raise ImageProblem(
            VALUE_OUT_OF_RANGE,
            f"image is {width}x{height} px; the limit is {MAX_IMAGE_SIDE} px on the longer side",
        )
    return ImageInfo(mime, width, height)


def _header_size(data: bytes, mime: str) -> tuple[int, int] | None:
    size: tuple[int, int] | None
    try:
        if mime == "image/png":
            if data[12:16] != b"IHDR":
                return None
            size = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        elif mime == "image/jpeg":
            size = _jpeg_size(data)
        else:
            size = _webp_size(data)
    except IndexError:
        return None
    if size is None or size[0] < 1 or size[1] < 1:
        return None
    return size


# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF:
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
        return width, height
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            return None
        b0, b1, b2, b3 = data[21:25]
        width = 1 + (((b1 & 0x3F) << 8) | b0)
        height = 1 + (((b3 & 0x0F) << 10) | (b2 << 2) | ((b1 & 0xC0) >> 6))
        return width, height
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return width, height
    return None


@dataclass(frozen=True)
class PixelGrid:
    """An image reduced to ``GRID x GRID`` RGB cells (row-major, 0-255), plus its size."""

    cells: tuple[tuple[int, int, int], ...]
    width: int
    height: int


def pixel_grid(data: bytes) -> PixelGrid:
    """Decode an image (already checked by :func:`inspect_image`) into a small RGB grid.

    Transparent pixels are composited over white, so a transparent PNG is not "black".

    Raises:
        ImageProblem: ``invalid_format`` if the bytes do not decode.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            # JPEG only: let the decoder scale down by up to 8x while decoding (much faster).
            opened.draft("RGB", (GRID * 8, GRID * 8))
            image = opened.convert("RGBA") if _has_alpha(opened) else opened.convert("RGB")
        if image.mode == "RGBA":
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            background.alpha_composite(image)
            image = background.convert("RGB")
        small = image.resize((GRID, GRID), Image.Resampling.BOX)
        raw = small.tobytes()
    except (OSError, ValueError, SyntaxError) as exc:  # what Pillow raises on bad data
        # (Pillow's message names the in-memory stream object: say what failed, not where)
        raise ImageProblem(
            INVALID_FORMAT, f"image does not decode ({type(exc).__name__})"
        ) from None
    cells = tuple((raw[i], raw[i + 1], raw[i + 2]) for i in range(0, len(raw), 3))
    return PixelGrid(cells, width, height)


def _has_alpha(image: object) -> bool:
    mode = getattr(image, "mode", "")
    info = getattr(image, "info", {})
    return mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in info)
