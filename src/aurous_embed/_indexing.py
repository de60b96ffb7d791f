"""Keep a Chroma collection a mirror of a folder, and search it (the CLI's engine).

After a run, the collection holds exactly the folder's documents (see :mod:`aurous_embed._scan`):
a new file is added, a changed file's entries are replaced, a deleted file's entries are removed
(unless ``keep_deleted``), an unchanged file sends nothing. Entries remember their folder
(``aurous:root``), file, chunk and the file's fingerprint, so other folders indexed into the same
collection are left alone.

Durability: vectors come from the core (``embed_iter``: concurrent, cached, in order) and reach the
collection as they arrive, a whole file at a time (its new entries, then the removal of its old
ones), at least every ``FLUSH_ITEMS`` entries or ``FLUSH_SECONDS``. An interruption (Ctrl-C,
SIGTERM, an error) writes every file finished so far before it propagates; the next run pays only
for what was not finished (unchanged files send nothing, and the cache next to the database
answers what was embedded but not written).
"""

from __future__ import annotations

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
ROOT_KEY, FINGERPRINT_KEY, CHUNKS_KEY = "aurous:root", "aurous:fingerprint", "aurous:chunks"


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
    """What the collection holds for one file: entry ids by fingerprint."""

    ids: dict[str, list[str]] = field(default_factory=dict)
    chunks: dict[str, int] = field(default_factory=dict)

    def complete(self, fingerprint: str) -> bool:
        expected = self.chunks.get(fingerprint)
        return expected is not None and len(self.ids.get(fingerprint, ())) == expected

    def all_ids(self) -> list[str]:
        return [i for ids in self.ids.values() for i in ids]


def stored_files(collection: Any, root: Path) -> dict[str, Stored]:
    """What the collection holds for the files under ``root``, by path (other folders ignored).

    Entries written before entries recorded their folder are matched by path.
    """
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
        fingerprint = str(meta.get(FINGERPRINT_KEY, "legacy"))
        stored.ids.setdefault(fingerprint, []).append(entry_id)
        count = meta.get(CHUNKS_KEY)
        if isinstance(count, int):
            stored.chunks[fingerprint] = count
    return found


class _Writer:
    """Adds finished files to the collection and removes what they replace, in bounded batches."""

    def __init__(self, collection: Any, root: Path, clock: Callable[[], float]) -> None:
        self.collection, self.root, self.clock = collection, root, clock
        self.ids: list[str] = []
        self.vectors: list[list[float]] = []
        self.metadatas: list[dict[str, Any]] = []
        self.documents: list[str] = []
        self.replaced: list[str] = []
        self.since = clock()

    def file(self, source: Source, vectors: Sequence[list[float]], old: Iterable[str]) -> None:
        for chunk, vector in zip(source.chunks, vectors, strict=True):
            self.ids.append(chunk.id)
            self.vectors.append(vector)
            self.metadatas.append(source.metadata(chunk, self.root))
            self.documents.append(chunk.text or source.path.name)
        new = {chunk.id for chunk in source.chunks}
        self.replaced.extend(i for i in old if i not in new)
        if len(self.ids) >= FLUSH_ITEMS or self.clock() - self.since >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> int:
        written = len(self.ids)
        if self.ids:  # upsert: a run interrupted between the two steps is repaired by the next
            self.collection.upsert(
                ids=self.ids,
                embeddings=self.vectors,
                metadatas=self.metadatas,
                documents=self.documents,
            )
        if self.replaced:
            self.collection.delete(ids=self.replaced)
        self.ids, self.vectors, self.metadatas, self.documents, self.replaced = [], [], [], [], []
        self.since = self.clock()
        return written


def index_folder(
    client: AurousClient,
    collection: Any,
    scan: Scan,
    *,
    keep_deleted: bool = False,
    show_progress: bool = False,
    on_progress: Callable[[int, int | None, float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> IndexReport:
    """Make ``collection`` mirror ``scan`` (see the module docstring).

    A ``KeyboardInterrupt`` while embedding ends the run early: what was finished is written and
    the report says ``interrupted`` (the caller decides the exit status).
    """
    report = IndexReport(found=len(scan.sources))
    stored = stored_files(collection, scan.root)
    todo: list[tuple[Source, list[str], bool]] = []  # (source, ids it replaces, is new)
    for source in scan.sources:
        have = stored.get(str(source.path))
        if have is not None and have.complete(source.fingerprint):
            report.unchanged += 1
            replaced = [i for fp, ids in have.ids.items() if fp != source.fingerprint for i in ids]
            if replaced:  # a leftover of an interrupted update: finish it
                collection.delete(ids=replaced)
            continue
        todo.append((source, have.all_ids() if have else [], have is None))
    writer = _Writer(collection, scan.root, clock)
    chunks = [(source, chunk) for source, _, _ in todo for chunk in source.chunks]
    stream = client.embed_iter(
        (chunk.input() for _, chunk in chunks),
        return_exceptions=True,
        show_progress=show_progress,
        on_progress=on_progress,
    )
    try:
        position = 0
        for source, old, new in todo:
            vectors: list[list[float]] = []
            error: AurousError | None = None
            for _ in source.chunks:
                outcome = next(stream)
                position += 1
                if isinstance(outcome, AurousError):
                    error = error or outcome
                else:
                    vectors.append(outcome.embedding)
            if error is not None:  # nothing of it is written: its old entries stay
                report.failed.append((source.path, error))
                if report.stopped_by is None and stops_batch(error):
                    report.stopped_by = error  # every later file fails the same way
                continue
            writer.file(source, vectors, old)
            report.entries += len(vectors)
            if new:
                report.added += 1
            else:
                report.updated += 1
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM turned into one by the CLI
        report.interrupted = True
    finally:
        stream.close()  # type: ignore[attr-defined]  # stop sending at once
        writer.flush()  # every finished file is kept, interrupted or not
    if report.interrupted:
        return report  # removals wait for a run that finishes
    if not keep_deleted:
        present = scan.present
        gone = [i for path, have in stored.items() if path not in present for i in have.all_ids()]
        report.removed = len([p for p in stored if p not in present])
        for start in range(0, len(gone), 500):
            collection.delete(ids=gone[start : start + 500])
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
