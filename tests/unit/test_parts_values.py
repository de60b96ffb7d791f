"""Parts as values: their defaults, how they print, and that they cannot change after checking."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from aurous_embed import Image, ImageURL, Text, VideoURL


def test_image_defaults() -> None:
    image = Image(b"abc")
    assert image.fit is True  # over-limit images are downscaled unless asked not to
    assert image.max_side is None


@pytest.mark.parametrize(
    ("image", "text"),
    [
        (Image(b"abc"), "Image(<3 bytes>)"),
        (Image(bytearray(b"abcd")), "Image(<4 bytes>)"),
        (Image(memoryview(b"ab")), "Image(<2 bytes>)"),
        (Image(Path("a.png")), f"Image({Path('a.png')!r})"),
        (Image("a.png", fit=False), "Image('a.png', fit=False)"),
        (Image(b"abc", max_side=64), "Image(<3 bytes>, max_side=64)"),
        (Image(b"abc", fit=False, max_side=64), "Image(<3 bytes>, fit=False, max_side=64)"),
    ],
)
def test_image_repr_never_dumps_the_pixels(image: Image, text: str) -> None:
    assert repr(image) == text


def test_image_repr_of_arrays_and_pictures() -> None:
    np = pytest.importorskip("numpy")
    pil = pytest.importorskip("PIL.Image")
    assert repr(Image(np.zeros((2, 3, 4), dtype=np.uint8))) == "Image(<ndarray (2, 3, 4) uint8>)"
    assert repr(Image(pil.new("RGBA", (5, 7)))) == "Image(<PIL RGBA 5x7>)"


def test_parts_are_frozen_values() -> None:
    assert Text("a") == Text("a")
    assert hash(ImageURL("https://example.com/a.png")) == hash(
        ImageURL("https://example.com/a.png")
    )
    assert VideoURL("https://example.com/v.mp4") != ImageURL("https://example.com/v.mp4")
    fields = [
        (Text("a"), "text"),
        (ImageURL("https://x.example/a"), "url"),
        (VideoURL("https://x.example/v"), "url"),
        (Image(b"x"), "source"),
    ]
    for part, name in fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(part, name, "b")
    # Two images are the same part only when they are the same object (sources may not compare).
    data = b"x"
    assert Image(data) != Image(data)
