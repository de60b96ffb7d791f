"""The embedding cache: never pay twice for the same input.

A key is the SHA-256 of the canonical JSON of (endpoint, model, API version, dimensions, input):
the endpoint is the client's base URL, so vectors of one server (the local emulator's stand-ins,
say) are never handed out as another's. Every
local image is replaced by the SHA-256 of its content, so the key is cheap to compute and does not
depend on how the image would be re-encoded. Inputs with URL parts are cached by URL only when the
caller opts in (``cache_urls=True``), because what a URL points at can change.

:class:`SQLiteCache` (stdlib ``sqlite3``, WAL, one connection per thread) is safe to share between
threads and processes. Anything with ``get(key)``/``put(key, vector)`` also works.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from aurous_embed._image_sources import (
    is_binary_file,
    is_ndarray,
    is_path_like,
    is_pil_image,
    read_binary_file,
)
from aurous_embed._part_types import Image, ImageURL, Normalized, Text, VideoURL

KEY_VERSION = 2  # bump when the key recipe changes, so old entries are simply never hit


@runtime_checkable
class EmbeddingCache(Protocol):
    """What ``cache=`` accepts besides a path: a mapping from key to vector."""

    def get(self, key: str) -> Sequence[float] | None:
        """The vector stored under ``key``, or ``None``."""
        ...

    def put(self, key: str, embedding: Sequence[float]) -> None:
        """Store a vector."""
        ...


@dataclass(frozen=True, slots=True)
class CacheStats:
    """``client.cache_stats``: what the cache saved.

    Attributes:
        hits: inputs answered from the cache (no request, no credits).
        misses: cacheable inputs that had to be sent.
        writes: vectors stored.
        bypassed: inputs not cacheable (URL parts without ``cache_urls=True``).
    """

    hits: int = 0
    misses: int = 0
    writes: int = 0
    bypassed: int = 0


class StatsCounter:
    """Thread-safe counters behind :class:`CacheStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = [0, 0, 0, 0]

    def add(self, hits: int = 0, misses: int = 0, writes: int = 0, bypassed: int = 0) -> None:
        with self._lock:
            for i, n in enumerate((hits, misses, writes, bypassed)):
                self._counts[i] += n

    def snapshot(self) -> CacheStats:
        with self._lock:
            return CacheStats(*self._counts)


def _digest_source(source: object) -> str:
    """SHA-256 of an image's content (the file's bytes, the buffer, or the pixels)."""
    digest = hashlib.sha256()
    if isinstance(source, (bytes, bytearray, memoryview)):
        digest.update(source)
    elif is_path_like(source):
        with open(os.fspath(source), "rb") as handle:  # type: ignore[call-overload]
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    elif is_binary_file(source) and not is_pil_image(source):
        digest.update(read_binary_file(source, param="input"))
    elif is_ndarray(source):
        array_: Any = source
        digest.update(f"ndarray:{array_.dtype}:{array_.shape}:".encode())
        digest.update(array_.tobytes())
    elif is_pil_image(source):
        image: Any = source
        digest.update(f"pil:{image.mode}:{image.size}:".encode())
        digest.update(image.tobytes())
    else:  # pragma: no cover - check_source rejected it earlier
        raise TypeError(f"cannot hash an image of type {type(source).__name__}")
    return digest.hexdigest()


def cache_key(
    value: Normalized,
    *,
    endpoint: str,
    model: str,
    api_version: str | None,
    dimensions: int | None,
    cache_urls: bool,
) -> str | None:
    """The cache key of one input, or ``None`` when it must not be cached.

    ``endpoint`` is the base URL the vectors come from (the live API, the local emulator, a
    proxy): different endpoints never share entries.
    """
    if isinstance(value, str):  # the common case, without a JSON round
        head = f"{KEY_VERSION}\x00{endpoint}\x00{model}\x00{api_version}\x00{dimensions}\x00str\x00"
        return hashlib.sha256((head + value).encode("utf-8", "surrogatepass")).hexdigest()
    parts: list[object] = []
    for part in value:
        if isinstance(part, Text):
            parts.append({"text": part.text})
        elif isinstance(part, Image):
            image: dict[str, object] = {
                "image_sha256": _digest_source(part.source),
                "fit": part.fit,
            }
            if part.max_side is not None:  # a downscaled image may embed differently
                image["max_side"] = part.max_side
            parts.append(image)
        elif isinstance(part, (ImageURL, VideoURL)):
            if not cache_urls:
                return None
            kind = "image_url" if isinstance(part, ImageURL) else "video_url"
            parts.append({kind: part.url})
    canonical = json.dumps(
        [KEY_VERSION, endpoint, model, api_version, dimensions, parts],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _pack(embedding: Sequence[float]) -> bytes:
    packed = array.array("d", embedding)
    if sys.byteorder == "big":  # pragma: no cover - stored little-endian everywhere
        packed.byteswap()
    return packed.tobytes()


def _unpack(blob: bytes) -> list[float]:
    values = array.array("d")
    values.frombytes(blob)
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    return values.tolist()


class PackedVector(Sequence[float]):
    """A stored vector kept as its packed float64 bytes until someone reads it as floats.

    Turning 2,048 floats into Python objects costs far more than finding them, so a cache hit
    carries the bytes: ``as_numpy=True`` copies them straight into the array, and lists are built
    once, when a result is handed out.
    """

    __slots__ = ("_list", "packed")

    def __init__(self, packed: bytes) -> None:
        self.packed = packed  # little-endian float64
        self._list: list[float] | None = None

    def tolist(self) -> list[float]:
        if self._list is None:
            self._list = _unpack(self.packed)
        return self._list

    def __len__(self) -> int:
        return len(self.packed) // 8

    def __getitem__(self, index: Any) -> Any:
        return self.tolist()[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedVector):
            return self.packed == other.packed
        return isinstance(other, Sequence) and self.tolist() == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking like a list

    def __repr__(self) -> str:
        return f"PackedVector({len(self)} floats)"


class SQLiteCache:
    """A persistent cache in one SQLite file (WAL mode; safe across threads and processes).

    Vectors are stored exactly (float64), so a hit returns the same numbers the API sent. One
    connection serves all threads behind a lock (lookups come in batches, and SQLite serialises
    writes anyway); other processes open their own and WAL lets them share the file. Writes are
    gathered and committed together, ``WRITE_BATCH`` at a time or after ``WRITE_DELAY`` seconds
    (one transaction per vector made 32 worker threads queue for the lock); this object sees its
    own pending writes at once, other processes within a second, and ``close()`` (or the object
    being dropped) commits what is pending.

    Example:
        >>> client = AurousClient(cache="embeddings.sqlite")  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        # 16 KB pages hold a 2048-float vector without a chain of overflow pages (about 2x faster
        # lookups than the 4 KB default); it only applies when the file is created.
        self._db.execute("PRAGMA page_size=16384")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS embeddings ("
            " key TEXT PRIMARY KEY, vector BLOB NOT NULL, created REAL NOT NULL)"
        )
        self._pending: dict[str, bytes] = {}
        self._written = time.monotonic()
        # Committed and closed with the object if nobody calls close(): no lost writes, no leaked
        # file handle, no warning.
        self._finalizer = weakref.finalize(self, _commit_and_close, self._db, self._pending)

    def get(self, key: str) -> PackedVector | None:
        with self._lock:
            blob = self._pending.get(key)
            if blob is None:
                row = self._db.execute(
                    "SELECT vector FROM embeddings WHERE key = ?", (key,)
                ).fetchone()
                blob = row[0] if row else None
        return PackedVector(blob) if blob is not None else None

    def get_many(self, keys: Sequence[str]) -> dict[str, PackedVector]:
        """Look up many keys in a few queries (what batches use)."""
        rows: list[tuple[str, bytes]] = []
        with self._lock:
            rows.extend((k, self._pending[k]) for k in keys if k in self._pending)
            for start in range(0, len(keys), 500):  # under SQLite's bound-variable limit
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, vector FROM embeddings WHERE key IN ({marks})"
                rows.extend(self._db.execute(query, chunk).fetchall())
        return {key: PackedVector(blob) for key, blob in rows}

    def put(self, key: str, embedding: Sequence[float]) -> None:
        blob = embedding.packed if isinstance(embedding, PackedVector) else _pack(embedding)
        with self._lock:
            self._pending[key] = blob
            if len(self._pending) >= WRITE_BATCH or time.monotonic() - self._written >= WRITE_DELAY:
                self._commit()

    def flush(self) -> None:
        """Commit pending writes now."""
        with self._lock:
            self._commit()

    def _commit(self) -> None:  # with the lock held
        _commit_pending(self._db, self._pending)
        self._written = time.monotonic()

    def __len__(self) -> int:
        with self._lock:
            self._commit()
            return int(self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    def close(self) -> None:
        """Commit what is pending and close the connection (idempotent)."""
        with self._lock:
            self._finalizer()

    def __enter__(self) -> SQLiteCache:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteCache({str(self.path)!r})"


#: Cache writes committed together (see SQLiteCache).
WRITE_BATCH = 64
WRITE_DELAY = 1.0


def _commit_pending(db: sqlite3.Connection, pending: dict[str, bytes]) -> None:
    if not pending:
        return
    now = time.time()
    db.execute("BEGIN")  # one transaction (the connection is in autocommit mode)
    try:
        db.executemany(
            "INSERT OR REPLACE INTO embeddings (key, vector, created) VALUES (?, ?, ?)",
            [(key, blob, now) for key, blob in pending.items()],
        )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    pending.clear()


def _commit_and_close(db: sqlite3.Connection, pending: dict[str, bytes]) -> None:
    try:
        _commit_pending(db, pending)
    except sqlite3.Error:  # pragma: no cover - closing anyway
        pass
    finally:
        db.close()


def open_cache(cache: object) -> EmbeddingCache | None:
    """``cache=`` as given to the client: ``None``, a path, or an object with get/put."""
    if cache is None or cache is False:
        return None
    if isinstance(cache, (str, os.PathLike)):
        return SQLiteCache(cache)
    if isinstance(cache, EmbeddingCache):
        return cache
    raise TypeError(
        "cache must be a path (SQLite file) or an object with get(key) and put(key, vector), "
        f"not {type(cache).__name__}"
    )


def get_many(cache: EmbeddingCache, keys: Sequence[str]) -> Mapping[str, Sequence[float]]:
    """Batch lookup, using the cache's own ``get_many`` when it has one."""
    bulk = getattr(cache, "get_many", None)
    if callable(bulk):
        result: Mapping[str, Sequence[float]] = bulk(keys)
        return result
    found = {}
    for key in keys:
        vector = cache.get(key)
        if vector is not None:
            found[key] = vector
    return found


class CacheHandle:
    """A cache and how many clients use it; one opened from a path closes with the last of them."""

    def __init__(self, cache: EmbeddingCache | None, owned: bool) -> None:
        self.cache, self.owned, self.users = cache, owned, 1
        self._lock = threading.Lock()

    def share(self) -> CacheHandle:
        with self._lock:
            self.users += 1
        return self

    def release(self) -> None:
        with self._lock:
            self.users -= 1
            last = self.users == 0
        if last and self.owned and isinstance(self.cache, SQLiteCache):
            self.cache.close()
