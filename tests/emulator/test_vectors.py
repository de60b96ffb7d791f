"""The stand-in vectors: deterministic, normalised, lexical for text, colour-aware for images."""

from __future__ import annotations

import base64
import hashlib
import io
import math
import random

import httpx
from PIL import Image

from aurous_embed.testing._vectors import Embedder, TextItem, tokens
from tests.emulator.helpers import (
    MakeEmulator,
    b64_part,
    body,
    connect,
    image_bytes,
    text_part,
    url_part,
    vector,
)
from tests.helpers import cosine

# A fixed 6x4 PNG (red, one blue and one white pixel): literal bytes, so the golden digest
# below does not depend on the local zlib or Pillow encoder.
GOLDEN_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAYAAAAECAIAAAAiZtkUAAAAHklEQVR4nGNkYPj/n4GRAQkw/mdAB0wYIphC//8DAMy9BQPFzy1xAAAAAElFTkSuQmCC"
)


def _embed(client: httpx.Client, input_: object) -> list[float]:
    return vector(client.post("/embeddings", json=body(input_)))


def _raw(client: httpx.Client, input_: object) -> bytes:
    payload = client.post("/embeddings", json=body(input_)).content
    start = payload.index(b'"embedding":') + len(b'"embedding":')
    return payload[start : payload.index(b"]", start) + 1]


def test_same_input_same_vector_on_any_machine(client: httpx.Client) -> None:
    # Golden digests pin the exact bytes: a change here changes every user's stored vectors.
    text = _raw(client, "Product photo of a leather messenger bag.")
    assert hashlib.sha256(text).hexdigest() == (
        "6a9b00a766eefdeb1bedaeb8b123a1e2894717f7f2ec8f46735c53ccfadd7389"
    )
    mixed = _raw(client, [text_part("red"), b64_part(GOLDEN_PNG)])
    assert hashlib.sha256(mixed).hexdigest() == (
        "c2d7a91771ca04090d4092e6e72985f6ff87a35f1a2343f0a6f23033715a74d8"
    )


def test_vectors_do_not_depend_on_the_cache_or_the_instance(client: httpx.Client) -> None:
    over_http = _embed(client, "some words here")
    fresh = Embedder(2048, cache_size=0).embed([TextItem("some words here")])
    assert over_http == fresh


def test_vectors_are_unit_length(client: httpx.Client) -> None:
    for input_ in (
        "a",
        "x" * 5000,
        [b64_part(image_bytes("green"))],
        [text_part("a"), url_part("https://e.com/b.jpg")],
    ):
        v = _embed(client, input_)
        assert math.isclose(math.fsum(x * x for x in v), 1.0, abs_tol=1e-5)


def test_a_string_equals_a_single_text_part(client: httpx.Client) -> None:
    assert _embed(client, "hello there") == _embed(client, [text_part("hello there")])


def test_distinct_inputs_get_distinct_vectors(client: httpx.Client) -> None:
    a, b = _embed(client, "leather bag"), _embed(client, "bag leather")
    assert a != b
    assert cosine(a, b) > 0.95  # same words, different order


def test_parts_combine_in_order(client: httpx.Client) -> None:
    ab = _embed(client, [text_part("alpha"), text_part("beta")])
    ba = _embed(client, [text_part("beta"), text_part("alpha")])
    assert ab != ba
    assert cosine(ab, ba) > 0.9
    assert cosine(ab, _embed(client, "alpha")) > 0.5


def test_text_is_lexical(client: httpx.Client) -> None:
    query = _embed(client, "red leather bag")
    near = _embed(client, "A leather bag for work")
    far = _embed(client, "Quantum chromodynamics lecture notes")
    assert cosine(query, near) > 0.4
    assert abs(cosine(query, far)) < 0.1
    # case, plurals and "grey"/"gray" fold together
    assert cosine(_embed(client, "Leather Bags"), _embed(client, "leather bag")) > 0.9
    assert tokens("Grey BAGS, the shoes!") == ["gray", "bag", "shoe"]


def test_colour_words_meet_images(client: httpx.Client) -> None:
    red = _embed(client, [b64_part(image_bytes("red"))])
    blue = _embed(client, [b64_part(image_bytes((20, 60, 210)))])
    for word, image, other in (("red", red, blue), ("blue", blue, red)):
        text = _embed(client, word)
        assert cosine(text, image) > 0.5
        assert cosine(text, image) > cosine(text, other) + 0.4
    assert cosine(_embed(client, "a red photo"), red) > cosine(_embed(client, "a blue photo"), red)


def _noisy(colour: tuple[int, int, int], seed: int, fmt: str = "PNG") -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", (48, 48), colour)
    pixels = image.load()
    assert pixels is not None
    for x in range(48):
        for y in range(48):
            pixels[x, y] = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in colour)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_similar_images_are_close(client: httpx.Client) -> None:
    red_a = _embed(client, [b64_part(_noisy((210, 30, 30), 1))])
    red_b = _embed(client, [b64_part(_noisy((225, 20, 35), 2, "JPEG"))])
    green = _embed(client, [b64_part(_noisy((40, 170, 50), 3))])
    assert red_a != red_b
    assert cosine(red_a, red_b) > 0.9
    assert cosine(red_a, red_b) > cosine(red_a, green) + 0.5


def test_transparent_pixels_count_as_white(client: httpx.Client) -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (16, 16), (0, 0, 0, 0)).save(buffer, format="PNG")
    transparent = _embed(client, [b64_part(buffer.getvalue())])
    assert cosine(transparent, _embed(client, "white")) > 0.5


def test_outside_urls_embed_from_their_path_words(client: httpx.Client) -> None:
    by_url = _embed(client, [url_part("https://cdn.example.com/img/Red-Leather-Bag.jpg?w=800")])
    assert cosine(by_url, _embed(client, "red leather bag")) > 0.7
    assert abs(cosine(by_url, _embed(client, "blue ocean waves"))) < 0.1


def test_dimension_setting_changes_the_length_only(make_emulator: MakeEmulator) -> None:
    small = make_emulator(native_dimension=256)
    with connect(small) as http:
        a, b = _embed(http, "leather bag"), _embed(http, "leather bags for work")
    assert len(a) == len(b) == 256
    assert cosine(a, b) > 0.4
