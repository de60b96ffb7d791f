"""What every command shares: exit codes, the error line, the output, the client."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from aurous_embed._config import ENV_API_KEY
from aurous_embed._errors import (
    APIError,
    AuthenticationError,
    BatchEmbeddingError,
    BatchStoppedError,
    InputValidationError,
    MissingAPIKeyError,
    MissingDependencyError,
    PermissionDeniedError,
)

EXIT_OK, EXIT_USAGE, EXIT_AUTH, EXIT_API, EXIT_PARTIAL, EXIT_STORE = 0, 2, 3, 4, 5, 6
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
DEFAULT_DB = "aurous-chroma-db"
#: Collection metadata: where the vectors come from (a base URL, or the embedded emulator) and
#: from which model; a run against another endpoint or model refuses to mix its vectors in.
SOURCE_KEY, MODEL_KEY = "aurous:vectors", "aurous:model"
EMBEDDED_EMULATOR = "the embedded emulator"


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interruption by ``index`` (exit 143, where Ctrl-C exits 130)."""


class PartialFailure(Exception):
    """Some items failed; the rest were done (exit code 5, or the cause's code when it decides)."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class StoreError(Exception):
    """The vector store cannot be used: a Chroma server that does not answer, a ``--db`` that is
    not a directory, a collection Chroma refuses (exit code 6)."""


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
    if isinstance(error, StoreError):
        return EXIT_STORE
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
    if isinstance(error, MissingAPIKeyError):  # the Python wording says api_key=...
        return f"error: no Aurous API key: pass --api-key or set {ENV_API_KEY}"
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


def complain(line: str) -> None:
    """One line on standard error, if there is one to write to."""
    if sys.stderr is not None:  # None when started with standard error closed
        with contextlib.suppress(OSError, ValueError):
            print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def open_client(args: argparse.Namespace, **options: Any) -> Iterator[Any]:
    """An AurousClient for the global options; ``--emulator`` starts one in-process."""
    from aurous_embed._client import AurousClient

    if args.timeout is not None:
        if not math.isfinite(args.timeout) or args.timeout <= 0:
            raise InputValidationError(
                f"--timeout must be a number of seconds > 0, got {args.timeout}", param="--timeout"
            )
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
