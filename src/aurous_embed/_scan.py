"""A folder as documents to index: which files, split into which chunks, and what each costs.

Every supported file is one *source*: a text file (``.txt``, ``.md``, ``.rst``, ``.html`` text only,
``.pdf`` text per page), an image (PNG, JPEG, WebP, GIF, BMP, TIFF), or an image with a sidecar
``.txt`` of the same name (ONE text+image input). A text source is split into chunks that suit
retrieval (a few hundred tokens with some overlap) by ``semantic-text-splitter`` (extra ``index``):
a compiled, dependency-free splitter that cuts at the largest semantic boundary that fits
(paragraph, sentence, word; Markdown structure for ``.md``) and reports each chunk's character
offset, so every hit can be traced back to its place in the file. Sizes are counted in tokens with
the same estimate as budgets (UTF-8 bytes / 4).

Scanning never sends anything and never stops at a bad file: what cannot be indexed is listed,
with the reason, as *failed* (a file that looks like a document but cannot be read: unreadable, a
FIFO or device, a broken symbolic link, a directory named like a file, a corrupt image, text that
is not UTF-8, a name that is not UTF-8, a chunk over the API's cap) or *skipped* (not a document:
another suffix, a hidden file or folder, an empty file). A listed path shows the bytes of a name
that is not UTF-8 escaped (``caf\\xe9.txt``), so it can always be printed.
"""

from __future__ import annotations

import hashlib
import html.parser
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aurous_embed._budget import local_estimate
from aurous_embed._config import CONTEXT_WINDOW_TOKENS, IMAGE_FILE_SUFFIXES, MAX_TEXT_CHARS
from aurous_embed._errors import InputValidationError, MissingDependencyError
from aurous_embed._images import precheck_image
from aurous_embed._part_checks import check_text
from aurous_embed._parts import EmbedInput, Image, Text, normalize_input

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
IMAGE_SUFFIXES = IMAGE_FILE_SUFFIXES
DOCUMENT_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | IMAGE_SUFFIXES
#: Defaults of ``index --chunk-size/--chunk-overlap`` (estimated tokens).
DEFAULT_CHUNK_SIZE = 400
DEFAULT_CHUNK_OVERLAP = 50
INDEX_EXTRA_HINT = 'pip install "aurous-embed[index]"'
#: Bump when chunking or fingerprints change meaning: every file is then indexed again.
SCAN_VERSION = 1


def tokens(text: str) -> int:
    """Estimated tokens of a text (the budget rule: UTF-8 bytes / 4, at least 1)."""
    return max(1, (len(text.encode("utf-8", "surrogatepass")) + 3) // 4)


@dataclass(frozen=True)
class Chunk:
    """One input to embed: a piece of a text, an image, or a caption with its image.

    ``start``/``end`` are character offsets in the source's text (of ``page`` for a PDF).
    """

    id: str
    number: int
    text: str | None = None
    image: Path | None = None
    start: int | None = None
    end: int | None = None
    page: int | None = None
    max_image_side: int | None = None

    def input(self) -> EmbedInput:
        image = None if self.image is None else Image(self.image, max_side=self.max_image_side)
        if image is None:
            assert self.text is not None
            return self.text
        return image if self.text is None else [Text(self.text), image]


@dataclass(frozen=True)
class Source:
    """One file (or image + caption pair) and its chunks. ``fingerprint`` changes when the file,
    its caption or the chunking settings change."""

    path: Path
    kind: str  # "text" | "image" | "text+image"
    fingerprint: str
    chunks: tuple[Chunk, ...]

    def metadata(self, chunk: Chunk, root: Path) -> dict[str, str | int]:
        meta: dict[str, str | int] = {
            "kind": self.kind,
            "path": str(self.path),
            "chunk": chunk.number,
            "aurous:root": str(root),
            "aurous:fingerprint": self.fingerprint,
        }
        if chunk.image is not None:
            meta["image"] = str(chunk.image)
        if chunk.start is not None and chunk.end is not None:
            meta["start"], meta["end"] = chunk.start, chunk.end
        if chunk.page is not None:
            meta["page"] = chunk.page
        return meta


@dataclass
class Scan:
    """What a folder holds: sources to index, and what was left out (and why)."""

    root: Path
    sources: list[Source] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    #: Folders whose contents could not be listed: what they held is not known, so the entries
    #: of files under them are kept, not removed as deleted.
    unlisted: list[Path] = field(default_factory=list)

    @property
    def present(self) -> set[str]:
        """Every path found on disk, indexed or not (a file that failed is not "deleted")."""
        return {str(s.path) for s in self.sources} | {str(p) for p, _ in self.failed}

    def present_ids(self) -> dict[str, str]:
        """``path_id`` -> path of every path found on disk."""
        return {path_id(Path(p)): p for p in self.present}

    def cost(self) -> tuple[int, int, int, float]:
        """(chunks, images, estimated tokens, estimated credits) of embedding every source."""
        chunks = images = token_count = 0
        credits = 0.0
        for source in self.sources:
            for chunk in source.chunks:
                estimate = local_estimate(normalize_input(chunk.input()))
                chunks += 1
                images += chunk.image is not None
                token_count += estimate.tokens
                credits += estimate.credits
        return chunks, images, token_count, credits


@dataclass(frozen=True)
class Chunking:
    """How texts are split: ``size`` tokens per chunk (0: whole files), ``overlap`` tokens."""

    size: int = DEFAULT_CHUNK_SIZE
    overlap: int = DEFAULT_CHUNK_OVERLAP
    max_image_side: int | None = None

    def __post_init__(self) -> None:
        # A chunk of more tokens than the API takes in one input could never be sent (and the
        # splitter refuses sizes past its native integers with a traceback).
        if not 0 <= self.size <= CONTEXT_WINDOW_TOKENS:
            raise InputValidationError(
                f"--chunk-size must be 0 (whole files) to {CONTEXT_WINDOW_TOKENS:,} tokens, "
                f"got {self.size}",
                param="--chunk-size",
            )
        if not 0 <= self.overlap <= MAX_TEXT_CHARS or (self.size and self.overlap >= self.size):
            raise InputValidationError(
                f"--chunk-overlap must be >= 0 and smaller than --chunk-size ({self.size}), "
                f"got {self.overlap}",
                param="--chunk-overlap",
            )

    def split(self, text: str, *, markdown: bool) -> list[tuple[int, int, str]]:
        """``(start, end, chunk)`` character ranges of ``text``; ``size == 0``: the whole text."""
        if self.size == 0:
            return [(0, len(text), text)]
        try:
            from semantic_text_splitter import (  # type: ignore[import-not-found,unused-ignore]
                MarkdownSplitter,
                TextSplitter,
            )
        except ImportError:
            raise MissingDependencyError(
                f"splitting texts into chunks needs semantic-text-splitter: {INDEX_EXTRA_HINT} "
                "(or --chunk-size 0 to embed whole files)"
            ) from None
        cls: Any = MarkdownSplitter if markdown else TextSplitter
        splitter = cls.from_callback(tokens, self.size, overlap=self.overlap)
        return [(start, start + len(chunk), chunk) for start, chunk in splitter.chunk_indices(text)]

    def key(self) -> str:
        return f"{SCAN_VERSION}:{self.size}:{self.overlap}:{self.max_image_side}"


class _TextOnly(html.parser.HTMLParser):
    """The text of an HTML page, without scripts, styles and tags. The stdlib parser is enough
    for "text only" (no layout, no link targets); an HTML extra would add nothing here."""

    _SKIP = frozenset({"script", "style", "template", "noscript", "head"})
    _BREAK = frozenset(
        {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BREAK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        return "\n".join(line for line in lines if line)


def html_text(markup: str) -> str:
    parser = _TextOnly()
    parser.feed(markup)
    parser.close()
    return parser.text()


def pdf_pages(path: Path) -> list[str]:
    """The text of each page of a PDF (``pypdf``, extra ``index``)."""
    try:
        from pypdf import PdfReader  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise MissingDependencyError(f"reading PDF files needs pypdf: {INDEX_EXTRA_HINT}") from None
    reader = PdfReader(str(path))
    if reader.is_encrypted:
        raise ValueError("the PDF is encrypted")
    return [page.extract_text() or "" for page in reader.pages]


class _Problem(Exception):
    """A file that looks like a document but cannot be indexed (listed as failed)."""


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _Problem(f"cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Problem("not UTF-8 text") from None
    if "\x00" in text:
        raise _Problem("contains NUL bytes")
    return text


def _fits(text: str, hint: str) -> None:
    """A text the API takes as one input (the client's own checks), or its file fails: the scan
    decides it once, for ``index`` and for ``--dry-run``/``estimate --path`` alike."""
    if len(text) > MAX_TEXT_CHARS:
        raise _Problem(
            f"{len(text):,} characters is over the {MAX_TEXT_CHARS:,} the API takes in one text "
            f"({hint})"
        )
    if (count := tokens(text)) > CONTEXT_WINDOW_TOKENS:  # counted as budgets count (bytes / 4)
        raise _Problem(
            f"about {count:,} tokens is over the {CONTEXT_WINDOW_TOKENS:,} the API takes in one "
            f"input ({hint})"
        )
    check_text(text, param="text")


def shown(path: Path) -> Path:
    """``path`` as listed: the bytes of a name that is not UTF-8 escaped (``caf\\xe9.txt``)."""
    return Path(os.fsencode(path).decode("utf-8", "backslashreplace"))


def _utf8(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _regular(path: Path) -> os.stat_result:
    """The file's status if it is a regular, readable file; a reason otherwise (never opened)."""
    try:
        info = path.stat()  # follows symbolic links
    except FileNotFoundError:
        raise _Problem("a broken symbolic link" if path.is_symlink() else "vanished") from None
    except OSError as exc:
        raise _Problem(f"cannot read: {exc.strerror or exc}") from None
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise _Problem("a directory")
    if stat.S_ISFIFO(mode):
        raise _Problem("a named pipe (FIFO)")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        raise _Problem("a device or socket, not a file")
    if not os.access(path, os.R_OK):
        raise _Problem("cannot read: permission denied")
    return info


def _files(root: Path, exclude: set[Path], scan: Scan) -> Iterator[tuple[Path, bool]]:
    """Every entry under ``root`` in a stable order: ``(path, is_directory)``; ``exclude`` (the
    index's own database) is left out. Hidden folders are listed but not looked into, and
    symbolic links to directories are not followed (a loop would never end). A folder that
    cannot be listed fails in ``scan`` and is remembered there as ``unlisted``."""

    def cannot_list(exc: OSError) -> None:
        folder = Path(exc.filename) if exc.filename else root
        scan.unlisted.append(folder)
        why = (exc.strerror or type(exc).__name__).lower()
        scan.failed.append((shown(folder), f"a folder that cannot be listed: {why}"))

    for folder, dirs, files in os.walk(root, onerror=cannot_list, followlinks=False):
        here = Path(folder)
        listed = sorted(d for d in dirs if here / d not in exclude)
        dirs[:] = [d for d in listed if not d.startswith(".")]
        for name in sorted(files):
            yield here / name, False
        for name in listed:
            yield here / name, True


def scan_folder(
    root: Path, chunking: Chunking | None = None, *, exclude: tuple[Path, ...] = ()
) -> Scan:
    """The sources under ``root`` (a folder or one file), split into chunks; nothing is sent."""
    chunking = chunking or Chunking()
    if not root.exists() and not root.is_symlink():
        raise InputValidationError(f"{root} does not exist", param="PATH")
    # A link to a file is indexed under the link's own path (as it is inside a folder), and a
    # broken one fails as one. A link to a folder stands for the folder it points to: indexing
    # through the link or the folder finds the same entries (and the database inside it).
    root = (
        root.parent.resolve() / root.name
        if root.is_symlink() and not root.is_dir()
        else root.resolve()
    )
    if not _utf8(root):  # every entry's path would start with it
        raise InputValidationError(f"{shown(root)}: its name is not valid UTF-8", param="PATH")
    folder = root.is_dir()
    scan = Scan(root)
    excluded = {p.resolve() for p in exclude}
    entries = [(root, False)] if not folder else list(_files(root, excluded, scan))
    names = {path for path, is_dir in entries if not is_dir}
    captioned = {p.with_suffix("") for p in names if p.suffix.lower() in IMAGE_SUFFIXES}
    for path, is_dir in entries:
        suffix = path.suffix.lower()
        if folder and path.name.startswith("."):
            what = "a hidden folder (not looked into)" if is_dir else "a hidden file"
            scan.skipped.append((shown(path), what))
            continue
        if is_dir:
            if path.is_symlink():  # os.walk does not follow it: a loop would never end
                scan.skipped.append((shown(path), "a symbolic link to a folder (not followed)"))
            elif suffix in DOCUMENT_SUFFIXES:  # not a failure: say so, and look inside
                scan.skipped.append((shown(path), "a directory named like a file (looked into)"))
            continue
        if suffix not in DOCUMENT_SUFFIXES:
            scan.skipped.append((shown(path), f"not a document ({suffix or 'no suffix'})"))
            continue
        if suffix == ".txt" and path.with_suffix("") in captioned:
            continue  # an image's caption: indexed with its image
        if not _utf8(path):  # a Chroma metadata value (its path) must be UTF-8
            where = "name" if not _utf8(Path(path.name)) else "folder's name"
            scan.failed.append((shown(path), f"its {where} is not valid UTF-8"))
            continue
        try:
            source = _source(path, suffix, names, chunking)
        except _Problem as problem:
            scan.failed.append((path, str(problem)))
            continue
        except (InputValidationError, MissingDependencyError) as exc:
            reason = exc.reason if isinstance(exc, InputValidationError) else str(exc)
            scan.failed.append((path, reason))
            continue
        if source is None:
            scan.skipped.append((path, "empty"))
        else:
            scan.sources.append(source)
    return scan


def path_id(path: Path) -> str:
    """The first part of every entry id of a file (its entries are found by it)."""
    return hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _source(path: Path, suffix: str, names: set[Path], chunking: Chunking) -> Source | None:
    _regular(path)
    pid = path_id(path)
    settings = chunking.key().encode()
    if suffix in IMAGE_SUFFIXES:
        precheck_image(path, fit=True, param="image")  # a corrupt image fails here, unsent
        data = path.read_bytes()
        caption_path = next(
            (path.with_suffix(s) for s in (".txt", ".TXT") if path.with_suffix(s) in names), None
        )
        caption = _read_text(caption_path).strip() if caption_path else ""
        if caption:
            _fits(caption, "a caption is not split")
        kind = "text+image" if caption else "image"
        fingerprint = _digest(kind.encode(), data, caption.encode(), settings)
        chunk = Chunk(
            f"{pid}-{fingerprint[:16]}-00000",
            0,
            text=caption or None,
            image=path,
            max_image_side=chunking.max_image_side,
        )
        return Source(path, kind, fingerprint, (chunk,))
    if suffix in PDF_SUFFIXES:
        try:
            pages = pdf_pages(path)
        except MissingDependencyError:
            raise
        except Exception as exc:  # pypdf raises many types for a broken file
            raise _Problem(f"cannot read the PDF: {exc}") from None
        data = path.read_bytes()
        texts: list[tuple[int | None, str]] = [
            (number, text.strip()) for number, text in enumerate(pages, start=1)
        ]
    else:
        raw = _read_text(path)
        data = raw.encode()
        text = html_text(raw) if suffix in HTML_SUFFIXES else raw
        texts = [(None, text.strip())]
    fingerprint = _digest(b"text", data, settings)
    chunks: list[Chunk] = []
    hint = "drop --chunk-size 0 to split it" if chunking.size == 0 else "lower --chunk-size"
    for page, text in texts:
        if not text:
            continue
        for start, end, piece in chunking.split(text, markdown=suffix in (".md", ".markdown")):
            if not piece.strip():
                continue
            _fits(piece, hint)
            number = len(chunks)
            chunk_id = f"{pid}-{fingerprint[:16]}-{number:05d}"
            chunks.append(Chunk(chunk_id, number, text=piece, start=start, end=end, page=page))
    if not chunks:
        return None
    return Source(path, "text", fingerprint, tuple(chunks))
