"""The ``aurous-embed`` command.

::

    aurous-embed demo                                   offline: index sample data into Chroma, search it
    aurous-embed embed TEXT... [--image P]... [--combine]
    aurous-embed estimate TEXT... [--image P]... [--combine]
    aurous-embed models
    aurous-embed index PATH --collection NAME [--db DIR | --chroma-host URL]
    aurous-embed search "query" [--image P] --collection NAME [-k 5]
    aurous-embed serve                                  the local emulator

Global options: ``--api-key`` (or AUROUS_API_KEY), ``--base-url``, ``--emulator`` (an embedded
emulator instead of the API), ``--json``, ``--debug``. Exit codes: 0 ok, 2 usage, 3 authentication,
4 API error, 5 partial failure. Errors print one line with the request id (a traceback only with
``--debug``). Argument parsing is argparse (stdlib: the command works with the core install alone);
output uses rich when it is installed (extra ``cli``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from aurous_embed._config import DEFAULT_MODEL
from aurous_embed._errors import (
    APIError,
    AurousError,
    AuthenticationError,
    BatchEmbeddingError,
    BatchStoppedError,
    InputValidationError,
    MissingAPIKeyError,
    MissingDependencyError,
    PermissionDeniedError,
)

EXIT_OK, EXIT_USAGE, EXIT_AUTH, EXIT_API, EXIT_PARTIAL = 0, 2, 3, 4, 5
DEFAULT_DB = "aurous-chroma-db"
#: Collection metadata: where the vectors come from (a base URL, or the embedded emulator) and
#: from which model; a run against another endpoint or model refuses to mix its vectors in.
SOURCE_KEY, MODEL_KEY = "aurous:vectors", "aurous:model"
EMBEDDED_EMULATOR = "the embedded emulator"


class PartialFailure(Exception):
    """Some items failed; the rest were done (exit code 5, or the cause's code when it decides)."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


def _decisive(errors: Sequence[BaseException], *, nothing_done: bool) -> BaseException | None:
    """The error that decides a batch's exit code: an authentication error wherever it is, or the
    first error when nothing succeeded; ``None`` for a true partial failure."""
    auth = (MissingAPIKeyError, AuthenticationError, PermissionDeniedError)
    fatal = next((e for e in errors if isinstance(e, auth)), None)
    return fatal or (errors[0] if nothing_done and errors else None)


def exit_code(error: BaseException) -> int:
    """The documented exit code of an error."""
    if isinstance(error, BatchEmbeddingError):
        cause = _decisive(
            list(error.errors.values()), nothing_done=all(r is None for r in error.results)
        )
        if cause is not None:
            return exit_code(cause)
    if isinstance(error, PartialFailure) and error.cause is not None:
        return exit_code(error.cause)
    if isinstance(error, (MissingAPIKeyError, AuthenticationError, PermissionDeniedError)):
        return EXIT_AUTH
    if isinstance(error, (BatchEmbeddingError, PartialFailure)):
        return EXIT_PARTIAL
    if isinstance(error, (InputValidationError, MissingDependencyError)):
        return EXIT_USAGE
    return EXIT_API


def _reason(error: BaseException) -> str:
    """What went wrong with one document (its path is shown beside it, so no item number)."""
    if isinstance(error, InputValidationError):
        return f"{error.param}: {error.reason}" if error.param else error.reason
    return error_line(error).removeprefix("error: ")


def error_line(error: BaseException) -> str:
    """One readable line; API errors carry their code and request id."""
    if isinstance(error, BatchStoppedError):
        error = error.cause  # what stopped the batch (what was not sent failed for that reason)
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, APIError) and error.request_id and error.request_id not in text:
        text += f" (request_id={error.request_id})"
    return f"error: {text}"


# --- output --------------------------------------------------------------------------------------


class Output:
    """Tables and messages on stdout; rich when installed, plain text otherwise; or JSON.

    Output is a report on work already done: when stdout goes away (a pipe into ``head``, a closed
    terminal), printing stops and the command still finishes its work and exits with its code.
    """

    def __init__(self, as_json: bool) -> None:
        from aurous_embed._progress import QuietStream

        self.as_json = as_json
        self._stream = QuietStream(sys.stdout)
        try:
            from rich.console import Console

            stream: Any = self._stream  # a text stream, duck-typed
            self._console: Any = Console(file=stream, highlight=False, soft_wrap=True)
        except ImportError:
            self._console = None

    @property
    def broken(self) -> bool:
        """Whether stdout went away (nothing more is printed)."""
        return self._stream.broken

    def _print(self, text: str) -> None:
        if self._console is not None and not self.as_json:
            self._console.print(text)
        else:
            print(text, file=self._stream, flush=True)

    def json(self, value: object, *, lines: bool = False) -> None:
        """Indented JSON; ``lines=True`` prints one compact object per line (for vectors)."""
        if lines and isinstance(value, list):
            for item in value:
                self._print(json.dumps(item, ensure_ascii=False, separators=(",", ":")))
        else:
            self._print(json.dumps(value, indent=2, ensure_ascii=False))

    def say(self, text: str) -> None:
        if not self.as_json:
            self._print(text)

    def table(self, title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        if self.as_json:
            return
        if self._console is not None:
            from rich.table import Table

            table = Table(title=title, title_justify="left")
            for header in headers:
                table.add_column(header, overflow="fold")
            for row in rows:
                table.add_row(*(str(cell) for cell in row))
            self._console.print(table)
            return
        widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
        lines = [title, "  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))]
        lines += [
            "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
        ]
        self._print("\n".join(lines))


# --- the API (live or embedded emulator) ----------------------------------------------------------


@contextlib.contextmanager
def open_client(args: argparse.Namespace, **options: Any) -> Iterator[Any]:
    """An AurousClient for the global options; ``--emulator`` starts one in-process."""
    from aurous_embed._client import AurousClient

    if args.timeout is not None:
        options["timeout"] = args.timeout
    if args.max_retries is not None:
        options["max_retries"] = args.max_retries
    if args.emulator:
        from aurous_embed.testing import Emulator

        with Emulator() as emu, AurousClient(emu.api_key, base_url=emu.base_url, **options) as c:
            yield c
        return
    with AurousClient(args.api_key, base_url=args.base_url, **options) as client:
        yield client


def _usage_json(result: Any) -> dict[str, Any]:
    usage = result.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "credits_charged": usage.credits_charged,
        "breakdown": {
            "text": usage.breakdown.text,
            "visual": usage.breakdown.visual,
            "video": usage.breakdown.video,
        },
    }


def _inputs(args: argparse.Namespace) -> tuple[list[Any], list[str]]:
    """The inputs of ``embed``/``estimate``: one per text and image, or ONE with --combine."""
    from aurous_embed._parts import Text, image_from_uri

    images = [image_from_uri(uri) for uri in args.image or []]
    if not args.text and not images:
        raise InputValidationError("give at least one TEXT or --image", param="TEXT")
    if args.combine:
        return [[*(Text(t) for t in args.text), *images]], ["combined"]
    labels = [*args.text, *(args.image or [])]
    return [*args.text, *images], labels


def cmd_embed(args: argparse.Namespace, out: Output) -> int:
    inputs, labels = _inputs(args)
    with open_client(args) as client:
        results = client.embed_many(inputs, dimensions=args.dimensions)
    out.json(
        [
            {
                "input": label,
                "embedding": result.embedding,
                "model": result.model,
                "usage": _usage_json(result),
                "request_id": result.request_id,
            }
            for label, result in zip(labels, results, strict=True)
        ],
        lines=True,
    )
    return EXIT_OK


def cmd_estimate(args: argparse.Namespace, out: Output) -> int:
    inputs, labels = _inputs(args)
    rows = []
    with open_client(args) as client:
        for label, value in zip(labels, inputs, strict=True):
            estimate = client.estimate(value, dimensions=args.dimensions)
            rows.append(
                {
                    "input": label,
                    "tokens": dataclasses.asdict(estimate.tokens),
                    "credits_estimated": estimate.credits_estimated,
                }
            )
    if out.as_json:
        out.json(rows)
    else:
        out.table(
            "Estimate (nothing was charged)",
            ["input", "text tokens", "image tokens", "total tokens", "credits"],
            [
                [
                    r["input"][:50],
                    r["tokens"]["text"],
                    r["tokens"]["image"],
                    r["tokens"]["total"],
                    f"{r['credits_estimated']:.6f}",
                ]
                for r in rows
            ],
        )
    return EXIT_OK


def cmd_models(args: argparse.Namespace, out: Output) -> int:
    with open_client(args) as client:
        models = client.list_models()
    if out.as_json:
        out.json([dict(m.raw) for m in models])
        return EXIT_OK
    out.table(
        "Models",
        ["id", "kind", "context", "dimensions", "text credits/1M", "visual credits/1M"],
        [
            [
                m.id,
                m.kind or "?",
                m.context_window or "",
                ",".join(map(str, m.dimensions or ())) or "-",
                m.text_credits_per_m if m.text_credits_per_m is not None else "-",
                m.visual_credits_per_m if m.visual_credits_per_m is not None else "-",
            ]
            for m in models
        ],
    )
    return EXIT_OK


# --- Chroma --------------------------------------------------------------------------------------


def open_collection(args: argparse.Namespace, *, create: bool) -> Any:
    try:
        import chromadb

        from aurous_embed.chroma import AurousEmbeddingFunction
    except ImportError as exc:
        raise MissingDependencyError(
            f'this command needs Chroma: pip install "aurous-embed[chroma]" ({exc})'
        ) from None
    if args.chroma_host:
        from urllib.parse import urlsplit

        url = urlsplit(
            args.chroma_host if "://" in args.chroma_host else f"http://{args.chroma_host}"
        )
        store = chromadb.HttpClient(
            host=url.hostname or "localhost", port=url.port or 8000, ssl=url.scheme == "https"
        )
    else:
        if not create and not Path(args.db).is_dir():
            raise InputValidationError(
                f"no Chroma database at {args.db}: index something first (or pass --db)",
                param="--db",
            )
        store = chromadb.PersistentClient(path=str(Path(args.db)))
    if not create:
        try:
            return store.get_collection(args.collection)
        except Exception as exc:  # chromadb raises NotFoundError / ValueError by version
            raise InputValidationError(
                f"no collection named {args.collection!r}: index something first ({exc})",
                param="--collection",
            ) from None
    # The function's config is what lets other programs reopen the collection without passing it;
    # an embedded emulator's URL is meaningless later, so it is not stored.
    function = AurousEmbeddingFunction(base_url=None if args.emulator else args.base_url)
    metadata = {SOURCE_KEY: _endpoint(args), MODEL_KEY: DEFAULT_MODEL}
    try:
        return store.get_or_create_collection(
            args.collection, embedding_function=function, metadata=metadata
        )
    except (ValueError, chromadb.errors.ChromaError) as exc:  # a bad name, a conflicting config
        raise InputValidationError(str(exc).splitlines()[0], param="--collection") from None


def _endpoint(args: argparse.Namespace) -> str:
    """Where this run's vectors come from: ``emulator`` (embedded) or the API's base URL."""
    if args.emulator:
        return EMBEDDED_EMULATOR
    from aurous_embed._core import resolve_base_url

    return resolve_base_url(args.base_url)


def check_source(args: argparse.Namespace, collection: Any) -> None:
    """Refuse to mix vectors of another endpoint or model into (or query) a collection: vectors of
    two endpoints (the emulator's stand-ins and the model's, say) are not comparable."""
    metadata = collection.metadata or {}
    stored = metadata.get(SOURCE_KEY)
    if stored in ("api", "emulator"):  # collections made before the endpoint was recorded
        stored = EMBEDDED_EMULATOR if stored == "emulator" else None
    model = metadata.get(MODEL_KEY, DEFAULT_MODEL)
    here = _endpoint(args)
    legacy_api = metadata.get(SOURCE_KEY) == "api" and here != EMBEDDED_EMULATOR
    if legacy_api or (stored in (None, here) and model == DEFAULT_MODEL):
        return
    raise InputValidationError(
        f"collection {args.collection!r} holds vectors from {stored or 'the API'} ({model}); "
        f"this run embeds with {here} ({DEFAULT_MODEL}): vectors of different endpoints or "
        "models do not mix; use another --collection or the same endpoint",
        param="--collection",
    )


def cmd_index(args: argparse.Namespace, out: Output) -> int:
    from aurous_embed._indexing import index_documents, scan_folder

    scan = scan_folder(Path(args.path))
    collection = open_collection(args, create=True)
    check_source(args, collection)
    cache = args.cache or (
        None if args.chroma_host else str(Path(args.db) / "aurous-embed-cache.sqlite")
    )
    with open_client(args, cache=cache) as client:
        report = index_documents(client, collection, scan.documents, show_progress=not out.as_json)
        usage = client.usage
    summary = {
        "collection": args.collection,
        "found": report.found,
        "already_indexed": report.already_indexed,
        "added": report.added,
        "failed": [{"path": str(d.path), "error": _reason(e)} for d, e in report.failed],
        "skipped": [{"path": str(p), "reason": why} for p, why in scan.skipped],
        "requests": usage.requests,
        "tokens": usage.prompt_tokens,
        "credits": usage.credits_charged,
    }
    if out.as_json:
        out.json(summary)
    else:
        out.say(
            f"{args.collection}: {report.found} documents found, {report.already_indexed} already indexed, "
            f"{report.added} added; {usage.requests} requests, {usage.prompt_tokens} tokens, {usage.credits_charged:.6f} credits"
        )
        for path, why in scan.skipped:
            out.say(f"  skipped {path}: {why}")
        for document, error in report.failed:
            out.say(f"  [red]failed[/red] {document.path}: {_reason(error)}")
    if report.failed:
        errors = [error for _, error in report.failed]
        nothing_done = report.added == 0 and report.already_indexed == 0
        cause = _decisive(errors, nothing_done=nothing_done)
        message = f"{len(report.failed)} of {report.found} documents failed"
        raise PartialFailure(f"{message}; {error_line(cause)[7:]}" if cause else message, cause)
    return EXIT_OK


def cmd_search(args: argparse.Namespace, out: Output) -> int:
    from aurous_embed._indexing import query_input, search

    query = query_input(args.query, args.image)
    collection = open_collection(args, create=False)
    check_source(args, collection)
    with open_client(args) as client:
        hits = search(client, collection, query, k=args.k)
    if out.as_json:
        out.json([dataclasses.asdict(h) for h in hits])
        return EXIT_OK
    what = " + ".join(x for x in (repr(args.query) if args.query else "", args.image or "") if x)
    out.table(
        f"Top {args.k} for {what}",
        ["#", "distance", "kind", "document"],
        [[h.rank, f"{h.distance:.4f}", h.kind, (h.text or Path(h.path).name)[:70]] for h in hits],
    )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from aurous_embed._demo import run_demo

    return int(run_demo(args, out))


def cmd_serve(argv: Sequence[str]) -> int:
    from aurous_embed.testing._serve import serve_command

    return int(serve_command(argv))


# --- parsing -------------------------------------------------------------------------------------


def add_global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-key", help="API key (default: $AUROUS_API_KEY)")
    parser.add_argument("--base-url", help="API base URL (default: $AUROUS_BASE_URL or production)")
    parser.add_argument(
        "--emulator",
        action="store_true",
        help="use an embedded local emulator (no key, no network)",
    )
    parser.add_argument("--timeout", type=float, help="seconds per attempt (default 60)")
    parser.add_argument("--max-retries", type=int, help="retries after failures (default 4)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    # Global options work before or after the command. Subcommands get their own copies with
    # SUPPRESS defaults (argparse shares action objects between parents, and a subcommand's default
    # would overwrite a value given before the command); the top level holds the real defaults.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    add_global_options(common)
    parser = argparse.ArgumentParser(
        prog="aurous-embed",
        description="Aurous Labs multimodal embeddings: embed, index into Chroma, search, emulate.",
    )
    add_global_options(parser)
    parser.set_defaults(
        api_key=None,
        base_url=None,
        emulator=False,
        json=False,
        debug=False,
        timeout=None,
        max_retries=None,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo", parents=[common], help="offline demo: index sample data into Chroma and search it"
    )
    demo.add_argument(
        "--db", default="aurous-demo-db", help="directory of the demo's Chroma database"
    )

    for name, helptext in (
        ("embed", "embed texts and images, print JSON"),
        ("estimate", "tokens and credits, nothing charged"),
    ):
        sub = commands.add_parser(name, parents=[common], help=helptext)
        sub.add_argument("text", nargs="*", metavar="TEXT")
        sub.add_argument(
            "--image", action="append", metavar="PATH_OR_URL", help="an image (repeatable)"
        )
        sub.add_argument(
            "--combine", action="store_true", help="combine everything into ONE input (one vector)"
        )
        sub.add_argument("--dimensions", type=int, default=None)

    commands.add_parser("models", parents=[common], help="list the models")

    for name, helptext in (
        ("index", "index a folder into a Chroma collection"),
        ("search", "search a Chroma collection"),
    ):
        sub = commands.add_parser(name, parents=[common], help=helptext)
        if name == "index":
            sub.add_argument("path", metavar="PATH")
            sub.add_argument(
                "--cache", default=None, help="embedding cache file (default: inside --db)"
            )
        else:
            sub.add_argument("query", nargs="?", default=None)
            sub.add_argument("--image", default=None, metavar="PATH_OR_URL")
            sub.add_argument("-k", type=int, default=5, help="number of hits (default 5)")
        sub.add_argument("--collection", required=True, metavar="NAME")
        where = sub.add_mutually_exclusive_group()
        where.add_argument(
            "--db", default=DEFAULT_DB, help=f"Chroma directory (default {DEFAULT_DB})"
        )
        where.add_argument(
            "--chroma-host", default=None, metavar="URL", help="a Chroma server instead of --db"
        )

    commands.add_parser(
        "serve", help="run the local emulator (see: aurous-embed serve --help)", add_help=False
    )
    return parser


COMMANDS = {
    "demo": cmd_demo,
    "embed": cmd_embed,
    "estimate": cmd_estimate,
    "models": cmd_models,
    "index": cmd_index,
    "search": cmd_search,
}


def complain(line: str) -> None:
    """One line on standard error, if there is one to write to."""
    if sys.stderr is not None:  # None when started with standard error closed
        with contextlib.suppress(OSError, ValueError):
            print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aurous-embed`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "serve":
        return cmd_serve(args_list[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    out = Output(args.json)
    try:
        return COMMANDS[args.command](args, out)
    except KeyboardInterrupt:
        complain("interrupted")
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return EXIT_OK
    except (AurousError, PartialFailure) as error:
        if args.debug:
            traceback.print_exc()
        complain(error_line(error))
        return exit_code(error)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
