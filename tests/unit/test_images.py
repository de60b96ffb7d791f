"""Local images: pass-through within limits, conversion and downscaling with Pillow, clear errors."""

from __future__ import annotations

import base64
import builtins
import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from aurous_embed import (
    AurousClient,
    BatchEmbeddingError,
    Image,
    InputValidationError,
    MissingDependencyError,
    Text,
)
from aurous_embed._config import MAX_IMAGE_BYTES, MAX_IMAGE_SIDE
from aurous_embed._image_sources import header_size, sniff_mime
from aurous_embed._images import encode_image
from tests.helpers import png
from tests.unit.conftest import FakeAPI

PIL = pytest.importorskip("PIL.Image")
np = pytest.importorskip("numpy")


def decode(data: bytes) -> Any:
    image = PIL.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_header_sizes_without_decoding(fmt: str) -> None:
    data = png((37, 21), fmt=fmt)
    mime = sniff_mime(data)
    assert mime == f"image/{fmt.lower()}"
    assert header_size(data, mime) == (37, 21)


def test_lossless_and_extended_webp_sizes() -> None:
    buffer = io.BytesIO()
    PIL.new("RGBA", (300, 5), (1, 2, 3, 4)).save(buffer, format="WEBP", lossless=True)
    assert header_size(buffer.getvalue(), "image/webp") == (300, 5)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_acceptable_bytes_are_sent_unchanged(fmt: str) -> None:
    data = png((64, 48), fmt=fmt)
    assert encode_image(data, fit=True, param="p") == data


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_formats_are_converted(fmt: str) -> None:
    out = encode_image(png((10, 8), fmt=fmt), fit=True, param="p")
    assert sniff_mime(out) == "image/png"
    assert decode(out).size == (10, 8)


def test_oversized_image_is_downscaled_keeping_aspect() -> None:
    out = encode_image(png((MAX_IMAGE_SIDE + 904, 1000), fmt="JPEG"), fit=True, param="p")
    image = decode(out)
    assert max(image.size) == MAX_IMAGE_SIDE
    assert image.size[1] == round(1000 * MAX_IMAGE_SIDE / (MAX_IMAGE_SIDE + 904))
    assert image.format == "JPEG"  # a photo stays a photo


def test_oversized_with_fit_false_raises() -> None:
    with pytest.raises(InputValidationError, match="4096 px") as info:
        encode_image(png((MAX_IMAGE_SIDE + 1, 2)), fit=False, param="input[0].image_url.b64_json")
    assert info.value.param == "input[0].image_url.b64_json"


def test_over_10mb_is_reencoded_under_the_limit() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PIL.fromarray(noise).save(buffer, format="PNG")
    assert buffer.tell() > MAX_IMAGE_BYTES
    out = encode_image(buffer.getvalue(), fit=True, param="p")
    assert len(out) <= MAX_IMAGE_BYTES
    assert sniff_mime(out) == "image/jpeg"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"definitely not an image", "cannot decode"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 8, "corrupt or truncated"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 4, "corrupt or truncated"),
    ],
)
def test_corrupt_images(data: bytes, fragment: str) -> None:
    with pytest.raises(InputValidationError, match=fragment):
        encode_image(data, fit=True, param="p")


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.zeros((4, 4, 3), dtype=np.float32), "dtype uint8"),
        (np.zeros((4, 4, 2), dtype=np.uint8), "HxWxC"),
        (np.zeros((4,), dtype=np.uint8), "HxWxC"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "empty dimension"),
    ],
)
def test_bad_arrays(client: AurousClient, api: FakeAPI, array: Any, fragment: str) -> None:
    with pytest.raises(InputValidationError, match=fragment) as info:
        client.embed_many(["ok", Image(array)])
    assert (info.value.index, info.value.param) == (1, "input[0].image_url.b64_json")
    assert api.requests == []


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1), (5, 7, 3), (5, 7, 4)])
def test_array_shapes(shape: tuple[int, ...]) -> None:
    out = encode_image(np.full(shape, 200, dtype=np.uint8), fit=True, param="p")
    assert decode(out).size == (7, 5)


def test_pil_modes_are_normalised() -> None:
    for mode in ("RGB", "RGBA", "L", "P", "CMYK", "I;16"):
        out = encode_image(PIL.new(mode, (3, 3)), fit=True, param="p")
        assert sniff_mime(out) == "image/png"


def png16(size: tuple[int, int], pixel: tuple[int, ...]) -> bytes:
    """A 16-bit-per-channel PNG written by hand (Pillow reads them but writes only greyscale):
    one value grey+alpha, three RGB, four RGBA."""
    colour_type = {2: 4, 3: 2, 4: 6}[len(pixel)]
    row = b"\x00" + struct.pack(f">{len(pixel)}H", *pixel) * size[0]

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", *size, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size[1]))
        + chunk(b"IEND", b"")
    )


def pil_image(mode: str) -> Any:
    """A 400x300 image of one colour in ``mode``; see ``DOWNSCALED`` for what it becomes."""
    size = (400, 300)
    if mode.startswith("I;16"):
        return PIL.new("I", size, 40000).convert(mode)  # Pillow's I;16B etc. make clips to 255
    if mode == "P":  # a palette image whose one colour is transparent
        image = PIL.new("P", size, 3)
        image.putpalette([10, 20, 30] * 256)
        image.info["transparency"] = 3
        return image
    fills: dict[str, Any] = {
        "I": 200,
        "F": 200.0,
        "LA": (90, 50),
        "PA": (0, 50),
        "RGBa": (40, 40, 40, 50),
        "CMYK": (0, 0, 0, 0),
        "1": 1,
        "YCbCr": (200, 128, 128),
        "LAB": (0, 128, 128),
        "HSV": (0, 0, 200),
        "RGBX": (200, 30, 30, 0),
    }
    return PIL.new(mode, size, fills[mode])


# mode -> (the mode sent, its pixel: 16-bit greyscale stays 16-bit, transparency stays)
DOWNSCALED: dict[str, tuple[str, Any]] = {
    "I;16": ("I;16", 40000),
    "I;16B": ("I;16", 40000),
    "I;16L": ("I;16", 40000),
    "I;16N": ("I;16", 40000),
    "I": ("RGB", (200, 200, 200)),
    "F": ("RGB", (200, 200, 200)),
    "LA": ("LA", (90, 50)),
    "PA": ("RGBA", (0, 0, 0, 50)),
    "P": ("RGBA", (None, None, None, 0)),  # transparent: its colour does not matter
    "RGBa": ("RGBA", (204, 204, 204, 50)),
    "CMYK": ("RGB", (255, 255, 255)),
    "1": ("L", 255),
    "YCbCr": ("RGB", (200, 200, 200)),
    "LAB": ("RGB", (0, 0, 0)),
    "HSV": ("RGB", (200, 200, 200)),
    "RGBX": ("RGB", (200, 30, 30)),
}


def saved(mode: str, fmt: str | None) -> Any:
    """The image as the caller gives it: a PIL image (``fmt`` None), or the bytes of a file."""
    image = pil_image(mode)
    if fmt is None:
        return image
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def assert_pixel(image: Any, expected: Any) -> None:
    got = image.getpixel((image.width // 2, image.height // 2))
    got, expected = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
    close = (e is None or abs(g - e) <= 2 for g, e in zip(got, expected, strict=True))
    assert all(close), (got, expected)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        *[(mode, None) for mode in DOWNSCALED],  # a PIL image
        *[(m, "PNG") for m in ("I;16", "LA", "P", "1")],  # sent as they are, if small
        *[(m, "TIFF") for m in ("I;16", "I;16B", "I", "F", "LA", "PA", "CMYK", "1")],
    ],
)
def test_max_side_downscales_every_mode_keeping_depth_and_transparency(
    mode: str, fmt: str | None
) -> None:
    source = saved(mode, fmt)
    opened = source if fmt is None else PIL.open(io.BytesIO(source))
    assert opened.mode == mode  # the case is what it says
    out = decode(encode_image(source, fit=True, param="p", max_side=50))
    sent_mode, pixel = DOWNSCALED[mode]
    assert (out.format, out.mode, out.size) == ("PNG", sent_mode, (50, 37))
    assert_pixel(out, pixel)


@pytest.mark.parametrize(
    ("pixel", "sent_mode", "sent_pixel"),
    [
        ((40000, 32768), "RGBA", (156, 156, 156, 128)),  # Pillow reads it as RGBA
        ((40000, 20000, 1000), "RGB", (156, 78, 3)),
        ((40000, 20000, 1000, 32768), "RGBA", (156, 78, 3, 128)),
    ],
)
def test_max_side_downscales_16_bit_colour_pngs(
    pixel: tuple[int, ...], sent_mode: str, sent_pixel: tuple[int, ...]
) -> None:
    out = decode(encode_image(png16((400, 300), pixel), fit=True, param="p", max_side=50))
    assert (out.mode, out.size) == (sent_mode, (50, 37))
    assert_pixel(out, sent_pixel)


@pytest.mark.parametrize("max_side", [None, 200])
def test_a_16_bit_scan_too_big_for_png_is_a_jpeg_scaled_to_8_bits(
    monkeypatch: pytest.MonkeyPatch, max_side: int | None
) -> None:
    noise = np.random.default_rng(1).integers(39000, 41000, (300, 400), dtype=np.uint16)
    scan = PIL.fromarray(noise)
    assert scan.mode == "I;16"
    monkeypatch.setattr("aurous_embed._images.MAX_IMAGE_BYTES", 6000)  # no 16-bit PNG fits
    out = decode(encode_image(scan, fit=True, param="p", max_side=max_side))
    assert out.format == "JPEG"
    low, high = out.convert("L").getextrema()
    assert 140 <= low <= high <= 170  # 40000 / 256 = 156, not clipped to 255


def test_a_large_16_bit_scan_is_downscaled_in_whole_factors() -> None:
    scan = PIL.new("I", (6000, 4000), 40000).convert("I;16")
    buffer = io.BytesIO()
    scan.save(buffer, format="PNG")
    out = decode(encode_image(buffer.getvalue(), fit=True, param="p", max_side=1000))
    assert (out.mode, out.size) == ("I;16", (1000, 666))
    assert out.getextrema() == (40000, 40000)


def test_an_image_pillow_cannot_convert_is_an_input_error_naming_the_item(
    client: AurousClient, api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("image has wrong mode")

    monkeypatch.setattr(PIL.Image, "resize", refuse)
    with pytest.raises(BatchEmbeddingError) as info:
        client.embed_many(["a", Image(png((400, 300)), max_side=50), "c"])
    error = info.value.errors[1]
    assert isinstance(error, InputValidationError)
    assert error.param == "input[0].image_url.b64_json"
    assert error.reason == "cannot convert the image (mode 'RGB'): ValueError: image has wrong mode"
    assert list(info.value.errors) == [1] and len(api.requests) == 2


def test_corrupt_file_in_a_batch_stops_the_batch_before_anything_is_sent(
    client: AurousClient, api: FakeAPI, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8)
    with pytest.raises(InputValidationError, match="corrupt or truncated") as info:
        client.embed_many(["a", Image(bad), "c"])
    assert info.value.index == 1
    assert info.value.param == "input[0].image_url.b64_json"
    assert api.requests == []


def test_image_file_that_breaks_after_the_check_fails_only_its_item(
    client: AurousClient, api: FakeAPI, tmp_path: Path
) -> None:
    # The header check passes (a 5 MB JPEG whose size marker lies beyond the bytes read up front);
    # the full read finds no size: that item fails, the others are embedded.
    bad = tmp_path / "big-exif.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe1\xff\xff" + bytes(65533) * 80)
    with pytest.raises(BatchEmbeddingError) as info:
        client.embed_many(["a", Image(bad), "c"])
    errors = info.value.errors
    assert list(errors) == [1]
    assert isinstance(errors[1], InputValidationError)
    assert errors[1].param == "input[0].image_url.b64_json"
    assert len(api.requests) == 2


def test_without_pillow_a_conversion_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__
    small_png = png((2, 2))  # made while Pillow can still be imported

    def no_pil(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    gif = b"GIF89a" + struct.pack("<HH", 1, 1) + b"\x00" * 20
    with pytest.raises(MissingDependencyError, match=r"aurous-embed\[images\]"):
        encode_image(gif, fit=True, param="p")
    assert (
        encode_image(small_png, fit=True, param="p") == small_png
    )  # within limits: no Pillow needed


def test_image_json_is_b64_json_never_a_data_uri(client: AurousClient, api: FakeAPI) -> None:
    client.embed(Image(png((4, 4))))
    part = json.loads(api.requests[0].content)["input"][0]
    assert set(part["image_url"]) == {"b64_json"}
    assert not part["image_url"]["b64_json"].startswith("data:")
    base64.b64decode(part["image_url"]["b64_json"], validate=True)


def test_binary_file_objects(client: AurousClient, api: FakeAPI, tmp_path: Path) -> None:
    data = png((3, 3))
    stream = io.BytesIO(data)
    stream.seek(2)
    client.embed(Image(stream))
    path = tmp_path / "f.png"
    path.write_bytes(data)
    with path.open("rb") as handle:
        handle.read(5)
        client.embed([Text("caption"), handle])  # a file object inside a parts list is an image
        assert handle.tell() == 5  # position restored
    sent = [json.loads(r.content)["input"] for r in api.requests]
    assert base64.b64decode(sent[0][0]["image_url"]["b64_json"]) == data
    assert base64.b64decode(sent[1][1]["image_url"]["b64_json"]) == data
    with pytest.raises(InputValidationError, match="binary"):
        client.embed(Image(io.StringIO("text")))
    with pytest.raises(InputValidationError, match="empty"):
        client.embed(Image(io.BytesIO(b"")))
