"""The process's decoding resources: at most ``MAX_DECODE_PIXELS`` pixels for one image, at most
``DECODE_BUDGET_PIXELS`` decoded by all conversions at once, and one thread for huge images (glibc
keeps each thread's freed memory, so huge decodes on one thread keep RSS flat).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Iterator

from aurous_embed._config import BIG_IMAGE_PIXELS, DECODE_BUDGET_PIXELS, MAX_DECODE_PIXELS
from aurous_embed._errors import InputValidationError


class PixelBudget:
    """How many pixels the process's image conversions may hold decoded at once (thread-safe).

    A conversion takes its image's pixel count (or the whole budget, if it is larger) before it
    decodes and gives it back after: huge images are decoded one after another, small ones side by
    side.
    """

    def __init__(self, pixels: int) -> None:
        self.capacity = pixels
        self._free = pixels
        self._ready = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        share = min(pixels, self.capacity)
        with self._ready:
            self._ready.wait_for(lambda: self._free >= share)
            self._free -= share
        try:
            yield
        finally:
            with self._ready:
                self._free += share
                self._ready.notify_all()


DECODE_BUDGET = PixelBudget(DECODE_BUDGET_PIXELS)


def check_pixels(size: tuple[int, int], *, param: str) -> None:
    width, height = size
    if width * height > MAX_DECODE_PIXELS:
        raise InputValidationError(
            f"image {width}x{height} px is over {MAX_DECODE_PIXELS:,} pixels, the most this "
            "client decodes for one image (downscale it first)",
            param=param,
        )


_BIG_THREAD = "aurous-big-image"  # not "aurous-embed-": the batch workers' prefix
_big_pool: concurrent.futures.ThreadPoolExecutor | None = None
_big_pool_lock = threading.Lock()


def decoding(pixels: int, convert: Callable[[], bytes]) -> bytes:
    """Run one conversion holding its pixels in :data:`DECODE_BUDGET`; one of more than
    ``BIG_IMAGE_PIXELS`` runs on the process's one big-image thread (see ``_config``)."""

    def held() -> bytes:
        with DECODE_BUDGET.hold(pixels):
            return convert()

    if pixels <= BIG_IMAGE_PIXELS or threading.current_thread().name.startswith(_BIG_THREAD):
        return held()
    global _big_pool
    with _big_pool_lock:
        if _big_pool is None:
            _big_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=_BIG_THREAD)
        pool = _big_pool
    return pool.submit(held).result()
