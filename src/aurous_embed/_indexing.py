"""Keep a Chroma collection a mirror of a folder, and search it (the CLI's engine).

After a run, the collection holds exactly the folder's documents (see :mod:`aurous_embed._scan`):
a new file is added, a changed file's entries are replaced, a deleted file's entries are removed
(unless ``keep_deleted``), an unchanged file sends nothing. Entries remember their folder
(``aurous:root``), file, chunk and the file's fingerprint, so other folders indexed into the same
collection are left alone.

Durability: vectors come from the core (``embed_as_completed``: concurrent, cached, as they finish,
so a slow request holds back no other file) and reach the collection as they arrive, a whole file
at a time (its new entries, then the removal of its old ones), in batches of ``FLUSH_ITEMS``
entries or at most ``FLUSH_SECONDS`` old. An interruption (Ctrl-C, SIGTERM, an error, even while
the last writes are made) writes every file finished so far before it returns; the next run pays only
for what was not finished (unchanged files send nothing, and the cache next to the database
answers what was embedded but not written).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aurous_embed._client import AurousClient
from aurous_embed._errors import AurousError, InputValidationError, stops_batch
from aurous_embed._parts import EmbedInput, Text, image_from_uri
from aurous_embed._scan import Chunk, Scan, Source

FLUSH_ITEMS = 64
FLUSH_SECONDS = 2.0
ROOT_KEY, FINGERPRINT_KEY = "aurous:root", "aurous:fingerprint"


@dataclass
class IndexReport:
    """What one ``index`` run did, counted in files (and in entries written)."""

    found: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    entries: int = 0
    failed: list[tuple[Path, AurousError]] = field(default_factory=list)
    stopped_by: AurousError | None = None  # an error that failed every remaining file
    interrupted: bool = False

    @property
    def written(self) -> int:
        return self.added + self.updated


@dataclass
class Stored:
    """What the collection holds for one file: entry ids by fingerprint (its first 16 digits)."""

    ids: dict[str, list[str]] = field(default_factory=dict)

    def complete(self, source: Source) -> bool:
        """Every chunk of this version of the file is there (the same fingerprint means the same
        content and chunking, so the same chunks)."""
        have = set(self.ids.get(source.fingerprint[:16], ()))
        return all(chunk.id in have for chunk in source.chunks)

    def others(self, source: Source) -> list[str]:
        return [i for fp, ids in self.ids.items() if fp != source.fingerprint[:16] for i in ids]

    def all_ids(self) -> list[str]:
        return [i for ids in self.ids.values() for i in ids]


#: Collection metadata: entries carry ``aurous:root`` and ids ``{path_id}-{fingerprint}-{chunk}``.
LAYOUT_KEY, LAYOUT = "aurous:layout", 2


def stored_files(collection: Any, scan: Scan, *, legacy: bool = False) -> dict[str, Stored]:
    """What the collection holds for the files under the scan's root, by path (other folders are
    left alone). Read from the entry ids alone (fast: no metadata), or, for a collection written
    before entries recorded their folder (``legacy``), from every entry's metadata, by path."""
    if legacy:
        return _stored_by_metadata(collection, scan.root)
    found: dict[str, Stored] = {}
    paths = scan.present_ids()
    got = collection.get(where={ROOT_KEY: str(scan.root)}, include=[])
    for entry_id in got["ids"]:
        pid, _, rest = entry_id.partition("-")
        fingerprint, _, _chunk = rest.partition("-")
        # A file no longer on disk is found by its id alone: named by the id, removed as gone.
        stored = found.setdefault(paths.get(pid, f"<gone {pid}>"), Stored())
        stored.ids.setdefault(fingerprint, []).append(entry_id)
    return found


def _stored_by_metadata(collection: Any, root: Path) -> dict[str, Stored]:
    prefix = str(root) if root.is_dir() else str(root.parent)
    found: dict[str, Stored] = {}
    got = collection.get(include=["metadatas"])
    for entry_id, meta in zip(got["ids"], got["metadatas"] or [], strict=False):
        meta = meta or {}
        path = str(meta.get("path", ""))
        owner = meta.get(ROOT_KEY)
        mine = owner == str(root) if owner is not None else path.startswith(prefix)
        if not mine or not path:
            continue
        stored = found.setdefault(path, Stored())
        fingerprint = str(meta.get(FINGERPRINT_KEY, "legacy"))[:16]
        stored.ids.setdefault(fingerprint, []).append(entry_id)
    return found


def _gone(collection: Any, stored: dict[str, Stored], scan: Scan) -> list[str]:
    """The stored files no longer on disk. A file under a folder that could not be listed is not
    known to be gone: its entries stay (their paths are read from the entries' metadata)."""
    gone = [p for p in stored if p not in scan.present]
    if not scan.unlisted or not gone:
        return gone
    first = {stored[p].all_ids()[0]: p for p in gone}
    where: dict[str, str] = {}
    ids = list(first)
    for start in range(0, len(ids), 500):
        got = collection.get(ids=ids[start : start + 500], include=["metadatas"])
        for entry_id, meta in zip(got["ids"], got["metadatas"] or [], strict=False):
            where[first[entry_id]] = str((meta or {}).get("path", ""))
    return [
        p for p in gone if not any(Path(where.get(p, p)).is_relative_to(f) for f in scan.unlisted)
    ]


class _Writer:
    """Adds finished files to the collection and removes what they replace, in bounded batches,
    on a thread of its own: Chroma's inserts (a few ms per 2,048-float entry) overlap the
    embedding instead of holding up the stream of results (a local store holds the GIL while it
    inserts, so the CLI hands this thread a collection whose writes run in a child process, see
    ``aurous_embed.cli._chroma_writer``). A batch goes when it holds ``FLUSH_ITEMS`` entries, or
    when it is ``FLUSH_SECONDS`` old even if no other file finishes (the thread looks at least
    that often). Batches are written in the order they were made; at most ``QUEUED`` full ones
    wait (bounded memory). ``close`` writes what is left and waits for it (an interruption while
    it waits does not lose it: call it again), and re-raises a write that failed."""

    QUEUED = 4

    def __init__(self, collection: Any, root: Path, clock: Callable[[], float]) -> None:
        self.collection, self.root, self.clock = collection, root, clock
        self._lock = threading.Lock()  # the open batch: filled here, taken by either thread
        self._batch: _Batch = _Batch()
        self.since = clock()
        self._queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._room = threading.Semaphore(self.QUEUED)
        self._error: BaseException | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="aurous-index-writer", daemon=True)
        self._thread.start()

    def file(self, source: Source, vectors: Sequence[list[float]], old: Iterable[str]) -> None:
        self._raise()
        new = {chunk.id for chunk in source.chunks}
        with self._lock:
            batch = self._batch
            for chunk, vector in zip(source.chunks, vectors, strict=True):
                batch.ids.append(chunk.id)
                batch.vectors.append(vector)
                batch.metadatas.append(source.metadata(chunk, self.root))
                batch.documents.append(chunk.text or source.path.name)
            batch.replaced.extend(i for i in old if i not in new)
            due = len(batch.ids) >= FLUSH_ITEMS or self.clock() - self.since >= FLUSH_SECONDS
        if due:
            self._room.acquire()  # wait while QUEUED full batches are waiting to be written
            with self._lock:
                self._send(counted=True)

    def _send(self, *, counted: bool) -> None:
        """Queue the open batch (the lock is held). ``counted``: it holds a ``_room`` slot."""
        batch, self._batch, self.since = self._batch, _Batch(), self.clock()
        if batch.ids or batch.replaced:
            batch.counted = counted
            self._queue.put(batch)
        elif counted:
            self._room.release()

    def close(self) -> None:
        """Write what is left, wait for every write, and stop the thread."""
        if not self._closing:
            with self._lock:
                self._send(counted=False)
                self._queue.put(None)
            self._closing = True
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while True:
            try:
                batch = self._queue.get(timeout=FLUSH_SECONDS)
            except queue.Empty:  # nothing finished lately: write the open batch once it is due
                with self._lock:
                    if self.clock() - self.since >= FLUSH_SECONDS:
                        self._send(counted=False)
                continue
            if batch is None:
                return
            if self._error is None:
                try:
                    batch.write(self.collection)
                except BaseException as exc:  # reported to the indexing thread
                    self._error = exc
            if batch.counted:
                self._room.release()


@dataclass
class _Batch:
    ids: list[str] = field(default_factory=list)
    vectors: list[list[float]] = field(default_factory=list)
    metadatas: list[dict[str, Any]] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    counted: bool = False

    def write(self, collection: Any) -> None:
        if self.ids:  # upsert: a run interrupted between the two steps is repaired by the next
            collection.upsert(
                ids=self.ids,
                embeddings=_as_array(self.vectors),
                metadatas=self.metadatas,
                documents=self.documents,
            )
        if self.replaced:
            collection.delete(ids=self.replaced)


def _as_array(vectors: list[list[float]]) -> Any:
    """float32 rows: Chroma checks a list of float lists value by value (about 4x slower)."""
    try:
        import numpy
    except ImportError:  # pragma: no cover - Chroma depends on numpy
        return vectors
    return numpy.asarray(vectors, dtype=numpy.float32)


def index_folder(
    client: AurousClient,
    collection: Any,
    scan: Scan,
    *,
    keep_deleted: bool = False,
    legacy: bool = False,
    show_progress: bool = False,
    on_progress: Callable[[int, int | None, float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> IndexReport:
    """Make ``collection`` mirror ``scan`` (see the module docstring).

    A ``KeyboardInterrupt`` while embedding ends the run early: what was finished is written and
    the report says ``interrupted`` (the caller decides the exit status).
    """
    report = IndexReport(found=len(scan.sources))
    stored = stored_files(collection, scan, legacy=legacy)
    todo: list[tuple[Source, list[str], bool]] = []  # (source, ids it replaces, is new)
    for source in scan.sources:
        have = stored.get(str(source.path))
        if have is not None and have.complete(source):
            report.unchanged += 1
            replaced = have.others(source)
            if replaced:  # a leftover of an interrupted update: finish it
                collection.delete(ids=replaced)
            continue
        todo.append((source, have.all_ids() if have else [], have is None))
    writer = _Writer(collection, scan.root, clock)
    # Results as they finish (a slow request holds back no other file); a file is written once
    # all its chunks are in, and fails whole if one of them failed.
    owner = [n for n, (source, _, _) in enumerate(todo) for _ in source.chunks]
    first = [0] * len(todo)
    for n in range(1, len(todo)):
        first[n] = first[n - 1] + len(todo[n - 1][0].chunks)
    vectors: list[list[list[float] | None]] = [[None] * len(s.chunks) for s, _, _ in todo]
    missing = [len(source.chunks) for source, _, _ in todo]
    errors: dict[int, AurousError] = {}
    stream = client.embed_as_completed(
        (chunk.input() for source, _, _ in todo for chunk in source.chunks),
        show_progress=show_progress,
        on_progress=on_progress,
    )
    try:
        for position, outcome in stream:
            n = owner[position]
            if isinstance(outcome, AurousError):
                errors.setdefault(n, outcome)
            else:
                vectors[n][position - first[n]] = outcome.embedding
            missing[n] -= 1
            if missing[n]:
                continue
            source, old, new = todo[n]
            if n in errors:  # nothing of it is written: its old entries stay
                continue
            done = [v for v in vectors[n] if v is not None]
            vectors[n] = []
            writer.file(source, done, old)
            report.entries += len(done)
            if new:
                report.added += 1
            else:
                report.updated += 1
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM turned into one by the CLI
        report.interrupted = True
    finally:
        # Every finished file is kept, interrupted or not; an interruption while waiting for the
        # requests to stop or the writes to finish is noted, and the wait goes on.
        for step in (stream.close, writer.close):  # type: ignore[attr-defined]
            while True:
                try:
                    step()
                    break
                except KeyboardInterrupt:
                    report.interrupted = True
    for n in sorted(errors):  # in the folder's order, whatever order they failed in
        error = errors[n]
        report.failed.append((todo[n][0].path, error))
        if report.stopped_by is None and stops_batch(error):
            report.stopped_by = error  # every later file fails the same way
    if report.interrupted:
        return report  # removals wait for a run that finishes
    try:
        if not keep_deleted:
            removable = _gone(collection, stored, scan)
            gone = [i for p in removable for i in stored[p].all_ids()]
            for start in range(0, len(gone), 500):
                collection.delete(ids=gone[start : start + 500])
            report.removed = len(removable)
        if legacy:  # every entry of this folder is in the current layout now
            metadata = {
                k: v for k, v in (collection.metadata or {}).items() if not k.startswith("hnsw:")
            }
            collection.modify(metadata={**metadata, LAYOUT_KEY: LAYOUT})
    except KeyboardInterrupt:  # what was written stays; the next run finishes the removals
        report.interrupted = True
    return report


@dataclass(frozen=True)
class Hit:
    """One search result."""

    rank: int
    id: str
    distance: float
    kind: str
    path: str
    text: str
    chunk: int | None = None
    page: int | None = None


def query_input(text: str | None, image: str | None) -> EmbedInput:
    """The query as one input: text, an image (path or https URL), or both combined."""
    if not text and not image:
        raise InputValidationError("give a query text, an --image, or both", param="query")
    if image and text:
        return [Text(text), image_from_uri(image)]
    if image:
        return image_from_uri(image)
    assert text is not None
    return text


def search(
    client: AurousClient,
    collection: Any,
    query: EmbedInput,
    *,
    k: int = 5,
    kinds: Sequence[str] | None = None,
) -> list[Hit]:
    """The ``k`` nearest entries (optionally only of the given kinds) to the query."""
    vector = client.embed(query).embedding
    where = {"kind": {"$in": list(kinds)}} if kinds else None
    found = collection.query(
        query_embeddings=[vector],
        n_results=k,
        where=where,
        include=["metadatas", "documents", "distances"],
    )
    hits = []
    rows: Iterable[tuple[str, float, dict[str, Any] | None, str | None]] = zip(
        found["ids"][0],
        found["distances"][0],
        found["metadatas"][0],
        found["documents"][0],
        strict=True,
    )
    for rank, (doc_id, distance, meta, text) in enumerate(rows, start=1):
        meta = meta or {}
        chunk, page = meta.get("chunk"), meta.get("page")
        hits.append(
            Hit(
                rank,
                doc_id,
                float(distance),
                meta.get("kind", "?"),
                meta.get("path", ""),
                text or "",
                chunk if isinstance(chunk, int) else None,
                page if isinstance(page, int) else None,
            )
        )
    return hits


__all__ = ["Chunk", "Hit", "IndexReport", "index_folder", "query_input", "search"]
