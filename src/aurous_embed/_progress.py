"""``show_progress=True``: a progress bar with credits, drawn by tqdm or rich (whichever is installed).

The bar is decoration: when it cannot be drawn (standard error closed, a pipe whose reader went
away, a terminal that vanished), it stops drawing and the work goes on. A caller's own
``on_progress`` that raises is different: the batch stops and raises it (see ``_batch``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from aurous_embed._batch import ProgressCallback
from aurous_embed._errors import MissingDependencyError

logger = logging.getLogger("aurous_embed")


def _no_bar(done: int, total: int | None, credits: float) -> None:
    return None


def _guarded(
    draw: ProgressCallback, close: Callable[[], None]
) -> tuple[ProgressCallback, Callable[[], None]]:
    """The bar's callbacks, turned off for good at their first failure."""
    broken = False

    def update(done: int, total: int | None, credits: float) -> None:
        nonlocal broken
        if not broken:
            try:
                draw(done, total, credits)
            except Exception as exc:
                broken = True
                logger.debug("progress bar turned off: %r", exc)

    def finish() -> None:
        if not broken:
            try:
                close()
            except Exception as exc:
                logger.debug("progress bar not closed: %r", exc)

    return update, finish


class QuietStream:
    """A text stream turned into a sink at its first failed write (a broken pipe, a closed file).

    Progress bars and the CLI's report write through it: what they show is decoration or a report
    on work already done, and a terminal that went away must not stop that work. (tqdm also leaks
    its global lock when a write fails inside a refresh, after which its monitor thread and the
    bar's own ``close`` wait forever: a command piped into ``head`` hung.)
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.broken = stream is None or bool(getattr(stream, "closed", False))

    def _fail(self) -> None:
        self.broken = True
        stdout = sys.__stdout__
        if stdout is not None and self._stream is stdout:
            # Nothing more reaches the reader; keep the interpreter's final flush of what is
            # still buffered from failing too (Python reports that and exits with 120).
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self._stream.write(text)
            except (OSError, ValueError):
                self._fail()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._fail()

    def isatty(self) -> bool:
        try:
            return not self.broken and bool(self._stream.isatty())
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return int(self._stream.fileno())

    @property
    def encoding(self) -> str:
        return str(getattr(self._stream, "encoding", None) or "utf-8")


def _bar(total: int | None, label: str) -> tuple[ProgressCallback, Callable[[], None]]:
    stream = QuietStream(sys.stderr)
    if stream.broken:  # e.g. started with 2>&- (sys.stderr is None)
        return _no_bar, lambda: None
    try:
        return _guarded(*_new_bar(stream, total, label))
    except MissingDependencyError:
        raise
    except Exception as exc:  # the terminal failed while the bar was being drawn
        logger.debug("progress bar not drawn: %r", exc)
        return _no_bar, lambda: None


def _new_bar(
    stream: Any, total: int | None, label: str
) -> tuple[ProgressCallback, Callable[[], None]]:
    if importlib.util.find_spec("tqdm") is not None:
        from tqdm.auto import tqdm

        bar: Any = tqdm(total=total, desc=label, unit="input", dynamic_ncols=True, file=stream)

        def update(done: int, _: int | None, credits: float) -> None:
            bar.update(done - bar.n)
            bar.set_postfix_str(f"{credits:.4f} credits", refresh=False)

        return update, bar.close
    if importlib.util.find_spec("rich") is not None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[credits]:.4f} credits"),
            TimeRemainingColumn(),
            transient=False,
            console=Console(file=stream),
        )
        task = progress.add_task(label, total=total, credits=0.0)
        progress.start()

        def advance(done: int, _: int | None, credits: float) -> None:
            progress.update(task, completed=done, credits=credits)

        return advance, progress.stop
    raise MissingDependencyError(
        'show_progress=True needs tqdm or rich: pip install "aurous-embed[progress]"'
    )


def progress_callback(
    on_progress: ProgressCallback | None, show_progress: bool, total: int | None, label: str
) -> tuple[ProgressCallback | None, Callable[[], None]]:
    """The callback to give the engine, and a function that closes the bar."""
    if not show_progress:
        return on_progress, lambda: None
    draw, close = _bar(total, label)
    if on_progress is None:
        return draw, close

    def both(done: int, total_: int | None, credits: float) -> None:
        draw(done, total_, credits)
        on_progress(done, total_, credits)

    return both, close
