"""``aurous-embed index`` (a folder mirrored into a Chroma collection) and ``search``."""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from aurous_embed._config import DEFAULT_MODEL
from aurous_embed._errors import InputValidationError, MissingDependencyError
from aurous_embed.cli._base import (
    EMBEDDED_EMULATOR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    MODEL_KEY,
    SOURCE_KEY,
    Output,
    PartialFailure,
    StoreError,
    Terminated,
    _decisive,
    _reason,
    error_line,
    open_client,
)

CACHE_NAME = "aurous-embed-cache.sqlite"
#: The most hits ``search -k`` returns: a page of results a person reads, far below what Chroma's
#: native integers take (``-k 4294967296`` overflowed inside Chroma with a traceback).
MAX_HITS = 10_000


def _chroma() -> Any:
    try:
        import chromadb
    except ImportError as exc:
        raise MissingDependencyError(
            f'this command needs Chroma: pip install "aurous-embed[chroma]" ({exc})'
        ) from None
    return chromadb


def open_store(args: argparse.Namespace, *, create: bool) -> Any:
    """The Chroma client for ``--db`` or ``--chroma-host``; a store that cannot be used is a
    :class:`StoreError` (one line, exit 6), never a traceback."""
    chromadb = _chroma()
    if args.chroma_host:
        from urllib.parse import urlsplit

        url = urlsplit(
            args.chroma_host if "://" in args.chroma_host else f"http://{args.chroma_host}"
        )
        try:
            store = chromadb.HttpClient(
                host=url.hostname or "localhost", port=url.port or 8000, ssl=url.scheme == "https"
            )
            store.heartbeat()
        except Exception as exc:  # chromadb raises many types for a server it cannot reach
            raise StoreError(
                f"cannot reach the Chroma server at {args.chroma_host}: {_first_line(exc)}"
            ) from None
        return store
    db = Path(args.db)
    if db.exists() and not db.is_dir():
        raise StoreError(f"--db {args.db} is a file, not a Chroma database directory")
    if not create and not db.is_dir():
        raise InputValidationError(
            f"no Chroma database at {args.db}: index something first (or pass --db)",
            param="--db",
        )
    try:
        return chromadb.PersistentClient(path=str(db))
    except Exception as exc:
        raise StoreError(
            f"cannot open the Chroma database at {args.db}: {_first_line(exc)}"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_collection(args: argparse.Namespace, *, create: bool) -> Any:
    from aurous_embed.chroma import AurousEmbeddingFunction

    store = open_store(args, create=create)
    chromadb = _chroma()
    if not create:
        try:
            return store.get_collection(args.collection)
        except Exception as exc:  # chromadb raises NotFoundError / ValueError by version
            raise InputValidationError(
                f"no collection named {args.collection!r}: index something first "
                f"({_first_line(exc)})",
                param="--collection",
            ) from None
    # The function's config is what lets other programs reopen the collection without passing it;
    # an embedded emulator's URL is meaningless later, so it is not stored.
    function = AurousEmbeddingFunction(base_url=None if args.emulator else args.base_url)
    from aurous_embed._indexing import LAYOUT, LAYOUT_KEY

    metadata = {SOURCE_KEY: endpoint(args), MODEL_KEY: DEFAULT_MODEL, LAYOUT_KEY: LAYOUT}
    try:
        return store.get_or_create_collection(
            args.collection, embedding_function=function, metadata=metadata
        )
    except (ValueError, chromadb.errors.ChromaError) as exc:  # a bad name, a conflicting config
        raise InputValidationError(_first_line(exc), param="--collection") from None


def endpoint(args: argparse.Namespace) -> str:
    """Where this run's vectors come from: the embedded emulator, or the API's base URL."""
    if args.emulator:
        return EMBEDDED_EMULATOR
    from aurous_embed._settings import resolve_base_url

    return resolve_base_url(args.base_url)


def check_source(args: argparse.Namespace, collection: Any) -> None:
    """Refuse to mix vectors of another endpoint or model into (or query) a collection: vectors of
    two endpoints (the emulator's stand-ins and the model's, say) are not comparable."""
    metadata = collection.metadata or {}
    stored = metadata.get(SOURCE_KEY)
    if stored in ("api", "emulator"):  # collections made before the endpoint was recorded
        stored = EMBEDDED_EMULATOR if stored == "emulator" else None
    model = metadata.get(MODEL_KEY, DEFAULT_MODEL)
    here = endpoint(args)
    legacy_api = metadata.get(SOURCE_KEY) == "api" and here != EMBEDDED_EMULATOR
    if legacy_api or (stored in (None, here) and model == DEFAULT_MODEL):
        return
    raise InputValidationError(
        f"collection {args.collection!r} holds vectors from {stored or 'the API'} ({model}); "
        f"this run embeds with {here} ({DEFAULT_MODEL}): vectors of different endpoints or "
        "models do not mix; use another --collection or the same endpoint",
        param="--collection",
    )


@contextlib.contextmanager
def _stops() -> Iterator[list[int]]:
    """Ctrl-C and SIGTERM stop the run (finished work is written); yields the signals seen.

    Only the first one interrupts: from then on both are ignored until the process ends, so
    pressing Ctrl-C again does not lose what the first press is keeping, nor the summary (kill -9
    still ends the process at once, and a rerun continues)."""
    seen: list[int] = []
    # (a SIGINT the process was started to ignore, as a background job is, stays ignored)
    wanted = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) != signal.SIG_IGN]

    def handler(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)
        for other in wanted:  # ignored at the OS level: it outlives the interpreter's shutdown
            signal.signal(other, signal.SIG_IGN)
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    try:
        previous = {s: signal.signal(s, handler) for s in wanted}
    except ValueError:  # not the main thread: leave signals alone
        yield seen
        return
    try:
        yield seen
    finally:
        if not seen:
            for signum, before in previous.items():
                signal.signal(signum, before)


@contextlib.contextmanager
def _writes(args: argparse.Namespace, collection: Any) -> Iterator[Any]:
    """The collection to index into: a local database's writes go to a process of their own
    (Chroma holds the GIL while it inserts, see ``_chroma_writer``); a server's stay here (its
    client waits on sockets, without the GIL)."""
    if args.chroma_host:
        yield collection
        return
    from aurous_embed.cli._chroma_writer import WriterProcess

    with WriterProcess(collection, str(Path(args.db))) as writer:
        yield writer


def _scan(args: argparse.Namespace) -> Any:
    from aurous_embed._scan import Chunking, scan_folder

    chunking = Chunking(args.chunk_size, args.chunk_overlap, args.max_image_side)
    exclude = () if args.chroma_host else (Path(args.db),)
    return scan_folder(Path(args.path), chunking, exclude=exclude)


def _dry_run(args: argparse.Namespace, out: Output, scan: Any) -> int:
    chunks, images, tokens, credits = scan.cost()
    summary = {
        "path": str(scan.root),
        "documents": len(scan.sources),
        "chunks": chunks,
        "images": images,
        "estimated_tokens": tokens,
        "estimated_credits": credits,
        "failed": [{"path": str(p), "reason": why} for p, why in scan.failed],
        "skipped": [{"path": str(p), "reason": why} for p, why in scan.skipped],
    }
    if out.as_json:
        out.json(summary)
    else:
        out.say(
            f"{scan.root}: {len(scan.sources)} documents, {chunks} chunks, {images} images; "
            f"about {tokens:,} tokens, {credits:.6f} credits at most (estimated locally, an upper "
            "bound; nothing was sent or written)"
        )
        for path, why in scan.failed:
            out.say(f"  [red]cannot index[/red] {path}: {why}")
        for path, why in scan.skipped:
            out.say(f"  skipped {path}: {why}")
    return EXIT_OK


def cmd_index(args: argparse.Namespace, out: Output) -> int:
    from aurous_embed._indexing import LAYOUT, LAYOUT_KEY, IndexReport, index_folder

    if args.max_image_side is not None and args.max_image_side < 1:
        raise InputValidationError("--max-image-side must be at least 1", param="--max-image-side")
    scan = _scan(args)
    if args.dry_run:
        return _dry_run(args, out, scan)
    collection = open_collection(args, create=True)
    check_source(args, collection)
    cache = args.cache or (None if args.chroma_host else str(Path(args.db) / CACHE_NAME))
    # A rerun after Ctrl-C, SIGTERM or kill -9 re-sends what was in flight: with keys derived from
    # each request, the API replays those answers free instead of charging them again.
    report: IndexReport | None = None
    with _stops() as signals:
        try:
            with (
                _writes(args, collection) as target,
                open_client(args, cache=cache, replay_identical=True) as client,
            ):
                report = index_folder(
                    client,
                    target,
                    scan,
                    keep_deleted=args.keep_deleted,
                    legacy=(collection.metadata or {}).get(LAYOUT_KEY) != LAYOUT,
                    show_progress=not out.as_json,
                )
        except KeyboardInterrupt:  # while the writer or the client closed: everything is written
            if report is None:
                raise  # before anything was indexed
            report.interrupted = True
    usage = client.usage
    failures = [(str(p), why) for p, why in scan.failed]
    stopped = report.stopped_by
    if stopped is None:
        failures += [(str(path), _reason(error)) for path, error in report.failed]
    documents = report.found + len(scan.failed)  # what was found: indexed, unchanged or failed
    done = report.added + report.updated + report.unchanged + len(report.failed)
    unfinished = report.found - done  # an interrupted run's files still being embedded
    summary = {
        "collection": args.collection,
        "documents": documents,
        "found": report.found,
        "added": report.added,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "removed": report.removed,
        "entries_written": report.entries,
        "failed": [{"path": p, "error": why} for p, why in failures],
        "skipped": [{"path": str(p), "reason": why} for p, why in scan.skipped],
        "stopped": None if stopped is None else error_line(stopped)[7:],
        "not_indexed": len(report.failed),
        "not_finished": unfinished,
        "interrupted": report.interrupted,
        "requests": usage.requests_sent,
        "tokens": usage.prompt_tokens,
        "credits": usage.credits_charged,
        "unconfirmed_credits": usage.unconfirmed_credits,
        "bytes_sent": usage.bytes_sent,
    }
    if out.as_json:
        out.json(summary)
    else:
        state = "interrupted; kept what was finished: " if report.interrupted else ""
        out.say(
            f"{args.collection}: {state}{documents} documents: "
            f"{report.added} added, "
            f"{report.updated} updated, {report.unchanged} unchanged, {report.removed} removed, "
            f"{len(failures) + (len(report.failed) if stopped else 0)} failed"
            f"{f', {unfinished} not finished' if unfinished else ''}; "
            f"{usage.requests_sent} requests, {usage.prompt_tokens} tokens, "
            f"{usage.credits_charged:.6f} credits, {usage.bytes_sent:,} bytes sent"
        )
        if usage.unconfirmed_credits:
            out.say(
                f"  up to {usage.unconfirmed_credits:.6f} more credits for requests cut short "
                "(the API may have charged them; a rerun gets their answers replayed free)"
            )
        if stopped is not None:
            out.say(
                f"  [red]stopped[/red]: {error_line(stopped)[7:]} "
                f"({len(report.failed)} documents not indexed)"
            )
        for path, why in failures:
            out.say(f"  [red]failed[/red] {path}: {why}")
        for path, why in scan.skipped:
            out.say(f"  skipped {path}: {why}")
    if report.interrupted:
        return EXIT_TERMINATED if signals and signals[0] == signal.SIGTERM else EXIT_INTERRUPTED
    if stopped is not None or failures:
        errors: list[BaseException] = [e for _, e in report.failed]
        cause = stopped or _decisive(
            errors, nothing_done=not report.written and not report.unchanged
        )
        failed = len(failures) + len(report.failed) * (stopped is not None)
        message = f"{failed} of {documents} documents failed"
        raise PartialFailure(f"{message}; {error_line(cause)[7:]}" if cause else message, cause)
    return EXIT_OK


def cmd_search(args: argparse.Namespace, out: Output) -> int:
    import dataclasses

    from aurous_embed._indexing import query_input, search

    if not 1 <= args.k <= MAX_HITS:
        raise InputValidationError(f"-k must be 1 to {MAX_HITS:,}, got {args.k}", param="-k")
    query = query_input(args.query, args.image)
    collection = open_collection(args, create=False)
    check_source(args, collection)
    with open_client(args) as client:
        hits = search(client, collection, query, k=args.k)
    if out.as_json:
        out.json([dataclasses.asdict(h) for h in hits])
        return EXIT_OK
    what = " + ".join(x for x in (repr(args.query) if args.query else "", args.image or "") if x)

    def where(hit: Any) -> str:
        place = str(hit.path)
        if hit.page is not None:
            place += f" p.{hit.page}"
        if hit.chunk is not None:
            place += f" #{hit.chunk}"
        return place

    out.table(
        f"Top {args.k} for {what}",
        ["#", "distance", "kind", "source", "text"],
        [[h.rank, f"{h.distance:.4f}", h.kind, where(h), h.text[:70]] for h in hits],
    )
    return EXIT_OK


def estimate_path(args: argparse.Namespace, out: Output) -> int:
    """``aurous-embed estimate --path P``: what indexing a file or folder would cost, computed
    locally from the same scan and chunks as ``index --dry-run`` (nothing is sent)."""
    args.chroma_host, args.db = None, None
    from aurous_embed._scan import Chunking, scan_folder

    chunking = Chunking(args.chunk_size, args.chunk_overlap, args.max_image_side)
    return _dry_run(args, out, scan_folder(Path(args.path), chunking))


__all__ = ["MAX_HITS", "cmd_index", "cmd_search", "estimate_path", "open_collection"]
