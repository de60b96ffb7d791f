"""Cache keys pinned for every kind of input, and the cache's storage at its edges.

A key that silently changes makes every stored vector unreachable (money paid again); a key that
leaves part of the input out hands one input's vector to another. So each kind of input has a known
key here: if one of these changes on purpose, ``KEY_VERSION`` must move with it.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from aurous_embed import (
    CacheStats,
    Image,
    ImageURL,
    InputValidationError,
    SQLiteCache,
    Text,
    VideoURL,
)
from aurous_embed._cache import (
    KEY_VERSION,
    WRITE_BATCH,
    PackedVector,
    StatsCounter,
    _commit_pending,
    _pack,
    _unpack,
    cache_key,
    get_many,
    open_cache,
)
from tests.helpers import png, settle
from tests.unit.conftest import MakeClient

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(24))  # hashed, never decoded
ENDPOINT = "https://api.aurous-labs.com/v1"
MODEL = "aurous-embed-vision-1.0"
VERSION = "2026-05-15"


def key(value: object, **options: object) -> str | None:
    settings: dict[str, object] = {
        "endpoint": ENDPOINT,
        "model": MODEL,
        "api_version": VERSION,
        "dimensions": None,
        "cache_urls": False,
        **options,
    }
    return cache_key(value, **settings)  # type: ignore[arg-type]


def pixels() -> object:
    np = pytest.importorskip("numpy")
    return np.arange(12, dtype=np.uint8).reshape(2, 2, 3)


def picture(color: tuple[int, int, int] = (10, 20, 30), mode: str = "RGB") -> object:
    pil = pytest.importorskip("PIL.Image")
    return pil.new(mode, (2, 2), color)


# --- known keys ------------------------------------------------------------------------------


def test_key_version() -> None:
    assert KEY_VERSION == 2


def test_a_text_key_is_pinned() -> None:
    assert key("hello") == "901389122ae8ad409484174ff8a1038cbfe3a94b9eb27c919df67355fe3a15fd"
    assert key("hello", dimensions=1024) == (
        "fcd4cb2a2345932fdae12bcc141101453607068f40fbf6a6b636d597fcb56cfd"
    )
    # The recipe: endpoint, model, version, dimensions and the text, NUL-separated.
    head = f"2\x00{ENDPOINT}\x00{MODEL}\x00{VERSION}\x00None\x00str\x00"
    assert key("hello") == hashlib.sha256((head + "hello").encode()).hexdigest()


def test_a_text_parts_key_is_pinned() -> None:
    value = (Text("title"), Text("café"))
    assert key(value) == "eb64988a29fcb4c0851ac6cec667129cbd18d3f499e69d08e16a834ce9b27034"
    # The recipe: the SHA-256 of compact, sorted, UTF-8 JSON.
    canonical = json.dumps(
        [2, ENDPOINT, MODEL, VERSION, None, [{"text": "title"}, {"text": "café"}]],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert key(value) == hashlib.sha256(canonical.encode()).hexdigest()


def test_a_url_key_is_pinned_when_urls_are_cached() -> None:
    image = (ImageURL("https://example.com/a.png"),)
    video = (VideoURL("https://example.com/a.mp4"),)
    assert key(image, cache_urls=True) == (
        "cea86ac53d1085744fc3d44b488c8c41be7b5ee14694f436fc63701c2cc3e21c"
    )
    assert key(video, cache_urls=True) == (
        "f2ed6200c8a9c7aa7bd4c70e8e7f36ee618697f0e744c8cdbd93d36c04c19a2c"
    )
    assert key(image) is None
    assert key(video) is None
    # One URL part makes the whole input uncacheable unless opted in.
    assert key((Text("caption"), ImageURL("https://example.com/a.png"))) is None


def test_local_image_keys_are_pinned_and_depend_on_content_only() -> None:
    by_bytes = "4ad0e843259463dd34547f2829b1a0e674d420068fa10bc2379463da44c8323e"
    assert key((Image(PNG),)) == by_bytes
    assert key((Image(bytearray(PNG)),)) == by_bytes
    assert key((Image(memoryview(PNG)),)) == by_bytes
    assert key((Image(io.BytesIO(PNG)),)) == by_bytes  # a file object: its bytes
    assert key((Image(PNG, fit=False, max_side=512),)) == (
        "4772596f1e3ab03008b92caebaf64e9afd0e95b373c1aa4b769619a98540945b"
    )


def test_a_path_key_is_its_files_content(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(PNG)
    assert key((Image(path),)) == key((Image(PNG),))
    assert key((Image(str(path)),)) == key((Image(PNG),))
    # Files are read in blocks: a big file is hashed whole, not just its first block.
    big = tmp_path / "big.png"
    big.write_bytes(PNG + bytes(3 << 20))
    other = tmp_path / "other.png"
    other.write_bytes(PNG + bytes(3 << 20) + b"!")
    assert key((Image(big),)) == key((Image(big.read_bytes()),))
    assert key((Image(big),)) != key((Image(other),))


def test_a_numpy_array_key_is_pinned() -> None:
    assert key((Image(pixels()),)) == (
        "2a1165fc4ca0e56327a4afa1e3bc2ac3c0554ea7b72157e3f62c0b588751d63b"
    )


def test_a_pil_image_key_is_pinned() -> None:
    assert key((Image(picture()),)) == (
        "63bbcfe7c303313e757ee97dbfc71ffa7f58364d6b175cbe6711c366cce46d34"
    )


async def test_the_clients_store_under_the_pinned_keys(make: MakeClient) -> None:
    """Both clients hand the cache exactly the keys pinned above (one recipe, not two)."""

    class Store:
        def __init__(self) -> None:
            self.data: dict[str, list[float]] = {}

        def get(self, key: str) -> list[float] | None:
            return self.data.get(key)

        def put(self, key: str, embedding: Sequence[float]) -> None:
            self.data[key] = list(embedding)

    store = Store()
    client = make(cache=store, base_url=ENDPOINT, model=MODEL, api_version=VERSION)
    await settle(client.embed("hello"))
    await settle(client.embed("hello", dimensions=1024))
    await settle(client.embed([Text("title"), Text("café")]))
    picture_bytes = png()  # a real picture this time: the client checks what it sends
    await settle(client.embed([Image(picture_bytes)]))
    await settle(client.embed([ImageURL("https://example.com/a.png")]))  # not cached: a URL
    assert sorted(store.data) == sorted(
        [
            "901389122ae8ad409484174ff8a1038cbfe3a94b9eb27c919df67355fe3a15fd",
            "fcd4cb2a2345932fdae12bcc141101453607068f40fbf6a6b636d597fcb56cfd",
            "eb64988a29fcb4c0851ac6cec667129cbd18d3f499e69d08e16a834ce9b27034",
            key((Image(picture_bytes),)),
        ]
    )
    assert client.cache_stats == CacheStats(hits=0, misses=4, writes=4, bypassed=1)


# --- different content, different key ----------------------------------------------------------


def test_every_part_of_the_input_is_in_the_key() -> None:
    np = pytest.importorskip("numpy")
    array = pixels()
    keys = [
        key("hello"),
        key("hello!"),
        key((Text("hello"),)),
        key((Text("hello!"),)),
        key((Text("a"), Text("b"))),
        key((Text("b"), Text("a"))),
        key((Text("a"), Text("b"), Text("c"))),
        key((ImageURL("https://example.com/a.png"),), cache_urls=True),
        key((ImageURL("https://example.com/b.png"),), cache_urls=True),
        key((VideoURL("https://example.com/a.png"),), cache_urls=True),
        key((Image(PNG),)),
        key((Image(PNG + b"!"),)),
        key((Image(PNG, fit=False),)),
        key((Image(PNG, max_side=512),)),
        key((Image(PNG, max_side=256),)),
        key((Image(io.BytesIO(PNG + b"?")),)),
        key((Image(array),)),
        key((Image(array + 1),)),
        key((Image(array.reshape(3, 2, 2)),)),  # same bytes, another shape
        key((Image(array.astype(np.int8)),)),  # same bytes, another dtype
        key((Image(picture()),)),
        key((Image(picture((10, 20, 31))),)),
        key((Image(picture((10, 20, 30, 255), "RGBA")),)),
        key((Text("a"), Image(PNG))),
        key((Image(PNG), Text("a"))),
    ]
    assert None not in keys
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    "option",
    [
        {"endpoint": "http://127.0.0.1:8787/v1"},
        {"model": "other-model"},
        {"api_version": None},
        {"dimensions": 1024},
    ],
)
def test_the_request_settings_are_in_every_key(option: dict[str, object]) -> None:
    for value in ("hello", (Text("hello"),), (Image(PNG),)):
        assert key(value, **option) != key(value)


# --- storage ---------------------------------------------------------------------------------


def test_packed_vectors_read_like_lists() -> None:
    vector = PackedVector(packed([0.5, -1.25, 3.0]))
    assert len(vector) == 3
    assert vector[1] == -1.25
    assert vector[-1] == 3.0
    assert vector[:2] == [0.5, -1.25]
    assert vector.tolist() == [0.5, -1.25, 3.0]
    assert vector.tolist() is vector.tolist()  # built once
    assert vector == [0.5, -1.25, 3.0]
    assert vector == (0.5, -1.25, 3.0)
    assert vector != [0.5, -1.25]
    assert vector != "abc"
    assert vector == PackedVector(packed([0.5, -1.25, 3.0]))
    assert vector != PackedVector(packed([0.5, -1.25, 3.5]))
    assert repr(vector) == "PackedVector(3 floats)"
    with pytest.raises(TypeError):
        hash(vector)


def packed(values: Sequence[float]) -> bytes:
    """Vectors are stored as little-endian float64, whatever the machine."""
    data = _pack(values)
    assert data == b"".join(struct.pack("<d", v) for v in values)
    assert _unpack(data) == list(values)
    return data


def test_stats_counter_adds_each_counter_to_its_own_field() -> None:
    stats = StatsCounter()
    assert stats.snapshot() == CacheStats(0, 0, 0, 0) == CacheStats()
    stats.add(hits=1)
    stats.add(misses=2, writes=3)
    stats.add(bypassed=4, hits=5)
    assert stats.snapshot() == CacheStats(hits=6, misses=2, writes=3, bypassed=4)


def test_open_cache_takes_a_path_or_an_object() -> None:
    class Store:
        def get(self, key: str) -> None:
            return None

        def put(self, key: str, embedding: Sequence[float]) -> None:
            pass

    assert open_cache(None) is None
    assert open_cache(False) is None
    store = Store()
    assert open_cache(store) is store
    with pytest.raises(TypeError, match="not int"):
        open_cache(42)


def test_open_cache_opens_sqlite_at_a_path(tmp_path: Path) -> None:
    for path in (tmp_path / "sub" / "deeper" / "a.sqlite", str(tmp_path / "b.sqlite")):
        cache = open_cache(path)
        assert isinstance(cache, SQLiteCache)
        assert repr(cache) == f"SQLiteCache({str(path)!r})"
        cache.close()
        assert Path(path).exists()


def test_get_many_falls_back_to_get_and_skips_misses() -> None:
    class Store:
        def __init__(self) -> None:
            self.data = {"a": [1.0], "b": [2.0]}

        def get(self, key: str) -> list[float] | None:
            return self.data.get(key)

        def put(self, key: str, embedding: Sequence[float]) -> None:
            self.data[key] = list(embedding)

    assert get_many(Store(), ["a", "zz", "b"]) == {"a": [1.0], "b": [2.0]}


def test_sqlite_get_many_spans_more_keys_than_one_query_binds(tmp_path: Path) -> None:
    with SQLiteCache(tmp_path / "many.sqlite") as cache:
        for i in range(1203):
            cache.put(f"k{i}", [float(i)])
        cache.flush()
        cache.put("pending", [-1.0])  # not committed yet: found all the same
        keys = [f"k{i}" for i in range(1203)] + ["pending", "missing"]
        found = cache.get_many(keys)
        assert len(found) == 1204
        assert found["k0"] == [0.0]
        assert found["k499"] == [499.0]
        assert found["k500"] == [500.0]
        assert found["k1202"] == [1202.0]
        assert found["pending"] == [-1.0]
        assert len(cache) == 1204
        assert cache.get("missing") is None


def test_sqlite_stores_exact_floats_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "exact.sqlite"
    with SQLiteCache(path) as cache:
        cache.put("a", [0.1, 1e-300, -2.5])
        cache.put("a", [0.2])
        cache.put("b", PackedVector(packed([7.0])))  # stored as it came
    with SQLiteCache(path) as cache:
        assert cache.get("a") == [0.2]
        assert cache.get("b") == [7.0]
        assert len(cache) == 2


def test_writes_wait_for_a_full_batch_or_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aurous_embed._cache as module

    now = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    path = tmp_path / "timed.sqlite"

    def committed() -> int:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    cache = SQLiteCache(path)
    for i in range(WRITE_BATCH - 1):
        cache.put(f"k{i}", [float(i)])
    assert committed() == 0
    now[0] += 0.5
    cache.put("full", [1.0])  # the 64th pending write commits the batch
    assert committed() == WRITE_BATCH
    now[0] += 0.6  # 1.1 s after the cache opened, 0.6 s after the last commit
    cache.put("x", [1.0])
    now[0] += 0.399
    cache.put("y", [1.0])
    assert committed() == WRITE_BATCH
    now[0] += 0.001  # a second after the last commit: this write commits all that waits
    cache.put("z", [1.0])
    assert committed() == WRITE_BATCH + 3
    cache.close()
    cache.close()  # idempotent
    with pytest.raises(sqlite3.ProgrammingError):
        cache._db.execute("SELECT 1")  # the connection is closed
    assert WRITE_BATCH == 64


def test_a_failed_commit_rolls_back_and_keeps_what_was_pending(tmp_path: Path) -> None:
    with SQLiteCache(tmp_path / "setup.sqlite"):
        pass  # creates the table
    db = sqlite3.connect(tmp_path / "setup.sqlite", isolation_level=None)
    pending: dict[str, Any] = {"a": b"\x00" * 8, "b": object()}  # the second cannot be stored
    with pytest.raises(sqlite3.Error):
        _commit_pending(db, pending)
    assert not db.in_transaction
    assert list(pending) == ["a", "b"]
    assert db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 0
    _commit_pending(db, {})  # nothing to do
    assert not db.in_transaction
    db.close()


# --- edges found by mutation testing ---------------------------------------------------------------


def test_a_stream_that_breaks_while_hashing_is_an_input_error() -> None:
    stream = io.BytesIO(PNG)
    stream.close()
    with pytest.raises(InputValidationError) as info:
        key((Image(stream),))
    assert info.value.param == "input"
    assert "cannot read the image stream" in str(info.value)


def test_the_database_settings(tmp_path: Path) -> None:
    path = tmp_path / "settings.sqlite"
    with SQLiteCache(path) as cache:
        assert cache._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA page_size").fetchone()[0] == 16384
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_leaving_the_with_block_commits_and_closes(tmp_path: Path) -> None:
    path = tmp_path / "with.sqlite"
    with SQLiteCache(path) as cache:
        cache.put("a", [1.0])
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 1
    with pytest.raises(sqlite3.ProgrammingError):
        cache._db.execute("SELECT 1")


def test_a_failed_commit_raises_the_original_error(tmp_path: Path) -> None:
    with SQLiteCache(tmp_path / "fail.sqlite"):
        pass
    db = sqlite3.connect(tmp_path / "fail.sqlite", isolation_level=None)
    with pytest.raises(sqlite3.ProgrammingError, match="binding"):  # not a later COMMIT's error
        _commit_pending(db, {"a": object()})  # type: ignore[dict-item]
    db.close()


def test_get_many_uses_the_caches_own_bulk_lookup() -> None:
    calls: list[list[str]] = []

    class Bulk:
        def get(self, key: str) -> None:
            raise AssertionError("one by one")

        def put(self, key: str, embedding: Sequence[float]) -> None:
            pass

        def get_many(self, keys: Sequence[str]) -> dict[str, list[float]]:
            calls.append(list(keys))
            return {"a": [1.0]}

    assert get_many(Bulk(), ["a", "b"]) == {"a": [1.0]}
    assert calls == [["a", "b"]]
