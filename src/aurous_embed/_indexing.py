"""Index a folder of text and images into a Chroma collection, and search it (the CLI's engine).

A folder becomes documents: each text file is one document, each image one document, and an image
with a sidecar ``.txt`` of the same name is ONE multimodal document (caption + image, one vector).
Ids are content hashes, so re-indexing skips what is already there and sends nothing for it.
Vectors come from the core (concurrent ``embed_iter``, cache, budgets) and are added to Chroma in
chunks as they arrive, so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aurous_embed._client import AurousClient
from aurous_embed._errors import AurousError, InputValidationError
from aurous_embed._parts import EmbedInput, Image, Text, image_from_uri

TEXT_SUFFIXES = frozenset({".txt", ".md", ".rst"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
ADD_CHUNK = 256


@dataclass(frozen=True)
class Document:
    """One thing to embed: a text, an image, or an image with its caption."""

    id: str
    kind: str  # "text" | "image" | "text+image"
    path: Path
    text: str | None = None
    image: Path | None = None

    def input(self) -> EmbedInput:
        if self.kind == "text":
            assert self.text is not None
            return self.text
        assert self.image is not None
        if self.kind == "image":
            return Image(self.image)
        return [Text(self.text or ""), Image(self.image)]

    def metadata(self) -> dict[str, str]:
        meta = {"kind": self.kind, "path": str(self.path)}
        if self.image is not None:
            meta["image"] = str(self.image)
        return meta


@dataclass
class Scan:
    """What a folder holds, and what was left out (and why)."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _content_id(kind: str, *parts: bytes) -> str:
    digest = hashlib.sha256(kind.encode())
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return f"doc-{digest.hexdigest()[:32]}"


def _read_text(path: Path, scan: Scan) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        scan.skipped.append((path, "not UTF-8 text"))
        return None
    if not text:
        scan.skipped.append((path, "empty"))
        return None
    if "\x00" in text:
        scan.skipped.append((path, "contains NUL bytes"))
        return None
    return text


def scan_folder(root: Path) -> Scan:
    """Documents under ``root`` (recursively, in a stable order); duplicates are reported once."""
    if not root.exists():
        raise InputValidationError(f"{root} does not exist", param="PATH")
    root = root.resolve()  # stored paths stay meaningful wherever the index is used from
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    scan = Scan()
    seen: dict[str, Path] = {}
    captions = {p.with_suffix("") for p in files if p.suffix.lower() in IMAGE_SUFFIXES}
    for path in files:
        suffix = path.suffix.lower()
        if path.name.startswith("."):
            continue
        if suffix in TEXT_SUFFIXES:
            if path.with_suffix("") in captions and suffix == ".txt":
                continue  # a caption: indexed with its image
            text = _read_text(path, scan)
            if text is None:
                continue
            document = Document(_content_id("text", text.encode()), "text", path, text=text)
        elif suffix in IMAGE_SUFFIXES:
            caption_path = path.with_suffix(".txt")
            caption = _read_text(caption_path, scan) if caption_path.is_file() else None
            data = path.read_bytes()
            if caption:
                document = Document(
                    _content_id("text+image", caption.encode(), data),
                    "text+image",
                    path,
                    text=caption,
                    image=path,
                )
            else:
                document = Document(_content_id("image", data), "image", path, image=path)
        else:
            scan.skipped.append((path, f"not a text or image file ({suffix or 'no suffix'})"))
            continue
        if document.id in seen:
            scan.skipped.append((path, f"same content as {seen[document.id]}"))
            continue
        seen[document.id] = path
        scan.documents.append(document)
    return scan


@dataclass
class IndexReport:
    """The outcome of one ``index`` run."""

    found: int = 0
    already_indexed: int = 0
    added: int = 0
    failed: list[tuple[Document, AurousError]] = field(default_factory=list)


def existing_ids(collection: Any, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        found.update(collection.get(ids=list(ids[start : start + 500]), include=[])["ids"])
    return found


def index_documents(
    client: AurousClient,
    collection: Any,
    documents: Sequence[Document],
    *,
    show_progress: bool = False,
    on_progress: Callable[[int, int | None, float], None] | None = None,
) -> IndexReport:
    """Embed the documents the collection lacks and add them, in chunks, as results arrive."""
    report = IndexReport(found=len(documents))
    present = existing_ids(collection, [d.id for d in documents])
    todo = [d for d in documents if d.id not in present]
    report.already_indexed = len(documents) - len(todo)
    if not todo:
        return report
    batch: list[tuple[Document, list[float]]] = []
    stream = client.embed_iter(
        (d.input() for d in todo),
        return_exceptions=True,
        show_progress=show_progress,
        on_progress=on_progress,
    )
    try:
        for document, outcome in zip(todo, stream, strict=True):
            if isinstance(outcome, AurousError):
                report.failed.append((document, outcome))
                continue
            batch.append((document, outcome.embedding))
            if len(batch) >= ADD_CHUNK:
                report.added += _add(collection, batch)
        report.added += _add(collection, batch)
    finally:
        stream.close()  # type: ignore[attr-defined]
    return report


def _add(collection: Any, batch: list[tuple[Document, list[float]]]) -> int:
    if not batch:
        return 0
    collection.add(
        ids=[d.id for d, _ in batch],
        embeddings=[vector for _, vector in batch],
        metadatas=[d.metadata() for d, _ in batch],
        documents=[d.text or d.path.name for d, _ in batch],
    )
    count = len(batch)
    batch.clear()
    return count


@dataclass(frozen=True)
class Hit:
    """One search result."""

    rank: int
    id: str
    distance: float
    kind: str
    path: str
    text: str


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
    """The ``k`` nearest documents (optionally only of the given kinds) to the query."""
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
        hits.append(
            Hit(
                rank,
                doc_id,
                float(distance),
                meta.get("kind", "?"),
                meta.get("path", ""),
                text or "",
            )
        )
    return hits
