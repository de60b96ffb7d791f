"""The emulator's stand-in embedding: deterministic, cheap, and roughly meaningful.

THIS IS NOT THE AUROUS MODEL. It exists so that plumbing (storage, retrieval, ranking code,
caches) can be tested offline with vectors that behave plausibly. Never judge retrieval quality
with it.

How a vector is made (length ``dimension``, L2-normalised):

- Text is lexical: NFKC-normalised, case-folded word tokens (a few stop words dropped, a
  trailing plural "s" folded) are feature-hashed into the vector, each token into 4 signed
  buckets, weighted by the square root of its count. Texts sharing words are close.
- An image is decoded (Pillow) and reduced to an 8x8 RGB grid. Its "visual words" (names of the
  colours covering at least 1/8 of it, ``bright``/``dark``, ``landscape``/``portrait``/
  ``square``) are hashed into the SAME buckets as text tokens, so the text "red" lands near a
  red image; the grid itself adds a pixel component, so similar images are close.
- An https image URL that is not an emulator file URL cannot be fetched offline: its path words
  stand in for its content (``.../red-leather-bag.jpg`` embeds like the words red leather bag).
- Parts are normalised and summed; then a small dense "fingerprint" seeded by the canonical
  input in order is added, so every distinct input gets a distinct vector and part order counts
  a little. A plain string and a single text part with the same text are the same input.

Determinism: hashing uses hashlib (never ``hash()``); sums run in a fixed order; only
IEEE-exact operations (+, *, /, sqrt) are used; components are written with 7 significant
digits. The same input
gives the same vector on any machine (for JPEG, given the same decoder; the colour words are
robust to small decoder differences anyway).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias
from urllib.parse import unquote, urlsplit

import numpy

from aurous_embed.testing._imaging import GRID, PixelGrid

_PERSON = b"aurous-emu-v1"  # blake2b personalisation: versions the whole hashing scheme
_SLOTS_PER_TOKEN = 4
FINGERPRINT_WEIGHT = 0.15
VISUAL_WORDS_WEIGHT = 0.8  # with PIXEL_WEIGHT, a unit vector: 0.8^2 + 0.6^2 = 1
PIXEL_WEIGHT = 0.6

_WORD = re.compile(r"[^\W_]+")
_STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "with",
    ]
)
_SYNONYMS = {"grey": "gray", "colour": "color"}
_URL_NOISE = frozenset(
    ["jpg", "jpeg", "png", "webp", "gif", "avif", "bmp", "tif", "tiff", "mp4", "mov", "webm", "mkv"]
)

# Named colours for the visual words (nearest by squared RGB distance: integer maths only).
PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (200, 30, 30)),
    ("orange", (240, 140, 20)),
    ("yellow", (240, 220, 30)),
    ("green", (40, 160, 50)),
    ("cyan", (30, 190, 200)),
    ("blue", (30, 70, 200)),
    ("purple", (120, 50, 170)),
    ("pink", (240, 140, 190)),
    ("brown", (120, 70, 30)),
    ("white", (245, 245, 245)),
    ("gray", (128, 128, 128)),
    ("black", (10, 10, 10)),
)


@dataclass(frozen=True)
class TextItem:
    """Text to embed."""

    text: str


@dataclass(frozen=True)
class ImageItem:
    """A decoded image, identified by the SHA-256 of its bytes."""

    sha256: str
    grid: PixelGrid


@dataclass(frozen=True)
class UrlItem:
    """A media URL that cannot be fetched: embedded from its path words."""

    kind: str  # "image_url" or "video_url"
    url: str


Item: TypeAlias = TextItem | ImageItem | UrlItem
Sparse: TypeAlias = dict[int, float]


def tokens(text: str) -> list[str]:
    """Normalised word tokens of a text (what the lexical part hashes)."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    kept = [_fold(w) for w in words if w not in _STOP_WORDS]
    if kept:
        return kept
    if words:  # only stop words: keep them rather than embed nothing
        return [_fold(w) for w in words]
    stripped = text.strip()
    return [stripped.casefold()] if stripped else ["\x00blank"]


def _fold(word: str) -> str:
    word = _SYNONYMS.get(word, word)
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@lru_cache(maxsize=65_536)
def _slots(feature: str, dimension: int) -> tuple[tuple[int, float], ...]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=16, person=_PERSON).digest()
    slots = []
    for k in range(_SLOTS_PER_TOKEN):
        word = int.from_bytes(digest[4 * k : 4 * k + 4], "little")
        slots.append(((word >> 1) % dimension, 0.5 if word & 1 else -0.5))
    return tuple(slots)


def _add(acc: Sparse, feature: str, weight: float, dimension: int) -> None:
    for index, sign in _slots(feature, dimension):
        acc[index] = acc.get(index, 0.0) + sign * weight


def _normalised(acc: Sparse) -> Sparse:
    norm = math.sqrt(sum(v * v for v in acc.values()))
    return {i: v / norm for i, v in acc.items()} if norm > 0 else {}


def _words_vector(words: Iterable[str], dimension: int) -> Sparse:
    counts = Counter(words)
    acc: Sparse = {}
    for word in sorted(counts):  # sorted: a fixed summation order
        _add(acc, word, math.sqrt(counts[word]), dimension)
    return _normalised(acc)


def visual_words(grid: PixelGrid) -> list[tuple[str, float]]:
    """The words an image contributes, with weights (what makes "red" near a red image)."""
    names: Counter[str] = Counter()
    brightness = 0
    for r, g, b in grid.cells:
        names[_colour_name(r, g, b)] += 1
        brightness += max(r, g, b)
    cells = len(grid.cells)
    words = [(name, n / cells) for name, n in sorted(names.items()) if n * GRID >= cells]
    mean = brightness / cells
    if mean >= 180:
        words.append(("bright", 0.35))
    elif mean <= 70:
        words.append(("dark", 0.35))
    if grid.width * 4 >= grid.height * 5:
        words.append(("landscape", 0.25))
    elif grid.height * 4 >= grid.width * 5:
        words.append(("portrait", 0.25))
    else:
        words.append(("square", 0.25))
    return words


def _colour_name(r: int, g: int, b: int) -> str:
    best, best_distance = "", 1 << 30
    for name, (pr, pg, pb) in PALETTE:
        distance = (r - pr) ** 2 + (g - pg) ** 2 + (b - pb) ** 2
        if distance < best_distance:
            best, best_distance = name, distance
    return best


def _image_vector(grid: PixelGrid, dimension: int) -> Sparse:
    words: Sparse = {}
    for word, weight in visual_words(grid):
        _add(words, word, weight, dimension)
    pixels: Sparse = {}
    for cell, rgb in enumerate(grid.cells):
        for channel, value in enumerate(rgb):
            # 32 levels, centred on 0: odd integers -31..31, so a small decoder difference in
            # the low bits rarely moves a value.
            _add(pixels, f"\x00px{cell}.{channel}", 2 * (value >> 3) - 31, dimension)
    acc: Sparse = {}
    for part, weight in (
        (_normalised(words), VISUAL_WORDS_WEIGHT),
        (_normalised(pixels), PIXEL_WEIGHT),
    ):
        for index, component in part.items():
            acc[index] = acc.get(index, 0.0) + component * weight
    return acc


def _url_words(url: str) -> list[str]:
    path = unquote(urlsplit(url).path)
    words = [w for w in tokens(path) if w not in _URL_NOISE and w != "\x00blank"]
    return words or [url]


def canonical_key(items: Sequence[Item]) -> str:
    """The canonical input, in order; equal keys mean equal vectors."""
    rows: list[list[str]] = []
    for item in items:
        if isinstance(item, TextItem):
            rows.append(["text", item.text])
        elif isinstance(item, ImageItem):
            rows.append(["image", item.sha256])
        else:
            rows.append([item.kind, item.url])
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"))


class Embedder:
    """Makes stand-in vectors of one length, with a small cache of serialised results.

    Args:
        dimension: Vector length (the emulator's native dimension).
        cache_size: How many serialised vectors to keep (keyed by canonical input).
    """

    def __init__(self, dimension: int, cache_size: int = 1024) -> None:
        if dimension < 8:
            raise ValueError("dimension must be at least 8")
        self.dimension = dimension
        # printf-style formatting of the whole array at once: correctly rounded to 7
        # significant digits by Python's own dtoa (the same text on every machine), and about
        # twice as fast as json.dumps of the floats.
        self._format = ("[" + ",".join(["%.7g"] * dimension) + "]").encode()
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache_size

    def embed(self, items: Sequence[Item]) -> list[float]:
        """Return the vector of an input (as the response carries it)."""
        return [float(x) for x in json.loads(self.embed_json(items))]

    def embed_json(self, items: Sequence[Item]) -> bytes:
        """Return the vector of an input as a JSON array (what the response carries)."""
        key = canonical_key(items)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        encoded = self._format % tuple(self._vector(items, key))
        self._cache[key] = encoded
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return encoded

    def _vector(self, items: Sequence[Item], key: str) -> list[float]:
        dimension = self.dimension
        document: Sparse = {}
        for item in items:
            if isinstance(item, TextItem):
                part = _words_vector(tokens(item.text), dimension)
            elif isinstance(item, ImageItem):
                part = _normalised(_image_vector(item.grid, dimension))
            else:
                part = _words_vector(_url_words(item.url), dimension)
            for index, value in part.items():
                document[index] = document.get(index, 0.0) + value
        document = _normalised(document)

        # The fingerprint: exact integers from SHAKE-256 (little-endian on every machine).
        seed = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        raw = hashlib.shake_256(seed + dimension.to_bytes(4, "little")).digest(2 * dimension)
        # numpy for the dense part (the emulator's hot path): the same IEEE operations as the
        # scalar formula, so the same bits; the sum of squares is an exact integer.
        ints = numpy.frombuffer(raw, dtype="<i2")
        wide = ints.astype(numpy.int64)
        scale = FINGERPRINT_WEIGHT / math.sqrt(int(wide @ wide) or 1)
        # |fingerprint + document|^2 = w^2 + 2 <f, d> + |d|^2, and d is sparse: only its own
        # entries need a loop (in sorted order, so the sum is the same everywhere).
        order = sorted(document)
        cross = 0.0
        for index in order:
            cross += int(ints[index]) * scale * document[index]
        norm = math.sqrt(
            FINGERPRINT_WEIGHT * FINGERPRINT_WEIGHT + 2.0 * cross + (1.0 if document else 0.0)
        )
        factor = scale / norm
        vector: list[float] = (ints.astype(numpy.float64) * factor).tolist()
        for index in order:
            vector[index] = (int(ints[index]) * scale + document[index]) / norm
        return vector
