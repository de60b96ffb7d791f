"""``show_progress=True``: a progress bar with credits, drawn by tqdm or rich (whichever is installed)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from aurous_embed._batch import ProgressCallback
from aurous_embed._errors import MissingDependencyError


def _bar(total: int | None, label: str) -> tuple[ProgressCallback, Callable[[], None]]:
    if importlib.util.find_spec("tqdm") is not None:
        from tqdm.auto import tqdm

        bar: Any = tqdm(total=total, desc=label, unit="input", dynamic_ncols=True)

        def update(done: int, _: int | None, credits: float) -> None:
            bar.update(done - bar.n)
            bar.set_postfix_str(f"{credits:.4f} credits", refresh=False)

        return update, bar.close
    if importlib.util.find_spec("rich") is not None:
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
