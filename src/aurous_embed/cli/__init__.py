"""The ``aurous-embed`` command.

::

    aurous-embed demo                                   offline: index sample data into Chroma, search it
    aurous-embed embed TEXT... [--image P]... [--combine]
    aurous-embed estimate TEXT... [--image P]... [--combine] | --path FILE_OR_FOLDER
    aurous-embed models
    aurous-embed index PATH --collection NAME [--db DIR | --chroma-host URL] [--dry-run]
    aurous-embed search "query" [--image P] --collection NAME [-k 5]
    aurous-embed serve                                  the local emulator

Global options: ``--api-key`` (or AUROUS_API_KEY), ``--base-url``, ``--emulator`` (an embedded
emulator instead of the API), ``--json``, ``--debug``. Exit codes: 0 ok, 2 usage, 3 authentication,
4 API error, 5 partial failure, 6 the vector store cannot be used, 130 interrupted (Ctrl-C),
143 terminated (SIGTERM). Errors print one line with the request id (a traceback only with
``--debug``). Argument parsing is argparse (stdlib: the command works with the core install alone);
output uses rich when it is installed (extra ``cli``). One module per group of commands:
``_api`` (embed, estimate, models), ``_index`` (index, search), ``_base`` (what they share).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import traceback
from collections.abc import Callable, Sequence

from aurous_embed._errors import AurousError
from aurous_embed.cli._base import (
    DEFAULT_DB,
    EMBEDDED_EMULATOR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STORE,
    EXIT_TERMINATED,
    EXIT_USAGE,
    MODEL_KEY,
    SOURCE_KEY,
    Output,
    PartialFailure,
    StoreError,
    Terminated,
    complain,
    error_line,
    exit_code,
)

__all__ = ["EMBEDDED_EMULATOR", "MODEL_KEY", "SOURCE_KEY", "Output", "build_parser", "main"]


def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from aurous_embed._demo import run_demo

    return int(run_demo(args, out))


def cmd_embed(args: argparse.Namespace, out: Output) -> int:
    from aurous_embed.cli._api import cmd_embed as run

    return run(args, out)


def cmd_estimate(args: argparse.Namespace, out: Output) -> int:
    if args.path is not None:
        if args.text or args.image:
            raise_usage("--path estimates a file or folder; give it alone")
        from aurous_embed.cli._index import estimate_path

        return estimate_path(args, out)
    from aurous_embed.cli._api import cmd_estimate as run

    return run(args, out)


def cmd_models(args: argparse.Namespace, out: Output) -> int:
    from aurous_embed.cli._api import cmd_models as run

    return run(args, out)


def cmd_index(args: argparse.Namespace, out: Output) -> int:
    from aurous_embed.cli._index import cmd_index as run

    return run(args, out)


def cmd_search(args: argparse.Namespace, out: Output) -> int:
    from aurous_embed.cli._index import cmd_search as run

    return run(args, out)


def raise_usage(message: str) -> None:
    from aurous_embed._errors import InputValidationError

    raise InputValidationError(message, param="--path")


def cmd_serve(argv: Sequence[str]) -> int:
    from aurous_embed.testing._serve import serve_command

    return int(serve_command(argv))


def _chunk_options(sub: argparse.ArgumentParser) -> None:
    from aurous_embed._scan import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE

    sub.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        metavar="TOKENS",
        help=f"split texts into chunks of about this many tokens (default {DEFAULT_CHUNK_SIZE}; "
        "0: whole files)",
    )
    sub.add_argument(
        "--chunk-overlap",
        type=int,
        default=DEFAULT_CHUNK_OVERLAP,
        metavar="TOKENS",
        help=f"tokens shared by neighbouring chunks (default {DEFAULT_CHUNK_OVERLAP})",
    )
    sub.add_argument(
        "--max-image-side",
        type=int,
        default=None,
        metavar="PX",
        help="downscale images to this longer side before sending (off by default: it can "
        "change the vectors)",
    )


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
        if name == "estimate":
            sub.add_argument(
                "--path", default=None, help="estimate indexing this file or folder instead"
            )
            _chunk_options(sub)

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
            _chunk_options(sub)
            sub.add_argument(
                "--keep-deleted",
                action="store_true",
                help="keep the entries of files deleted from the folder",
            )
            sub.add_argument(
                "--dry-run",
                action="store_true",
                help="scan and chunk, print the estimated cost; send and write nothing",
            )
        else:
            sub.add_argument("query", nargs="?", default=None)
            sub.add_argument("--image", default=None, metavar="PATH_OR_URL")
            from aurous_embed.cli._index import MAX_HITS

            sub.add_argument(
                "-k", type=int, default=5, help=f"number of hits (default 5, at most {MAX_HITS:,})"
            )
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


COMMANDS: dict[str, Callable[[argparse.Namespace, Output], int]] = {
    "demo": cmd_demo,
    "embed": cmd_embed,
    "estimate": cmd_estimate,
    "models": cmd_models,
    "index": cmd_index,
    "search": cmd_search,
}


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
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, Terminated)
        complain("terminated" if terminated else "interrupted")
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return EXIT_OK
    except (AurousError, PartialFailure, StoreError) as error:
        if args.debug:
            traceback.print_exc()
        complain(error_line(error))
        return exit_code(error)
    except sqlite3.Error as error:  # the local cache or database: a full disk, a broken file
        if args.debug:
            traceback.print_exc()
        complain(error_line(StoreError(f"the local cache or database: {error}")))
        return EXIT_STORE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
