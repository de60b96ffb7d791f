"""What a call hands back: running usage totals, a batch's outcomes collected into results (or a
float32 array), and the batch's error when items failed, every item accounted for.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, overload

from aurous_embed._batch import Outcome
from aurous_embed._cache import PackedVector
from aurous_embed._errors import (
    APIError,
    AurousError,
    BatchEmbeddingError,
    MissingDependencyError,
    stopped_batch_error,
    stops_batch,
)
from aurous_embed._image_sources import IMAGES_EXTRA_HINT
from aurous_embed.types import EmbeddingResult, Usage, UsageTotals

if TYPE_CHECKING:
    import numpy


class UsageCounter:
    """Thread-safe running totals of what this client was actually charged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._tokens = 0
        self._credits = 0.0
        self._unconfirmed = 0.0
        self._bytes = 0
        self._sent = 0

    def add(self, result: EmbeddingResult, *, charged: bool) -> None:
        with self._lock:
            self._requests += 1
            if charged:
                self._tokens += result.usage.prompt_tokens
                self._credits += result.usage.credits_charged

    def add_sent(self, attempts: int, body_bytes: int) -> None:
        """One input's requests went on the wire: ``attempts`` of them, its body counted once."""
        with self._lock:
            self._sent += attempts
            self._bytes += body_bytes

    def add_unconfirmed(self, credits: float) -> None:
        """A call failed after a request may have reached the server: its estimate."""
        with self._lock:
            self._unconfirmed += credits

    def snapshot(self) -> UsageTotals:
        with self._lock:
            return UsageTotals(
                self._requests,
                self._tokens,
                self._credits,
                self._unconfirmed,
                self._bytes,
                self._sent,
            )


class ArrayResults(Sequence["EmbeddingResult | None"]):
    """``BatchEmbeddingError.results`` for ``as_numpy=True``: results built on access from rows."""

    def __init__(self, array: Any, failed: Iterable[int], model: str) -> None:
        self._array, self._failed, self._model = array, frozenset(failed), model

    def __len__(self) -> int:
        return int(self._array.shape[0])

    @overload
    def __getitem__(self, index: int) -> EmbeddingResult | None: ...
    @overload
    def __getitem__(self, index: slice) -> list[EmbeddingResult | None]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        position = index + len(self) if index < 0 else index
        if position in self._failed:
            return None
        return EmbeddingResult(self._array[position].tolist(), self._model, Usage())


def raise_batch_error(
    results: Sequence[EmbeddingResult | None],
    errors: dict[int, BaseException],
) -> None:
    """Raise the batch's error, every item accounted for; return if nothing failed."""
    if not errors:
        return
    cause = next(
        (
            e
            for e in errors.values()
            if isinstance(e, AurousError) and not e.skipped and stops_batch(e)
        ),
        None,
    )
    if cause is not None:  # the batch stopped there: catchable as the cause's own class
        raise stopped_batch_error(cause, results, errors) from cause
    raise BatchEmbeddingError(results, errors)


def collect_results(
    outcomes: Iterable[Outcome[EmbeddingResult]], total: int
) -> list[EmbeddingResult]:
    results: list[EmbeddingResult | None] = [None] * total
    errors: dict[int, BaseException] = {}
    for outcome in outcomes:
        if outcome.error is not None:
            errors[outcome.index] = outcome.error
        else:
            results[outcome.index] = unpacked(outcome.value)  # type: ignore[arg-type]
    raise_batch_error(results, errors)
    return results  # type: ignore[return-value]  # no None left when nothing failed


def numpy_module() -> Any:
    try:
        import numpy
    except ImportError:
        raise MissingDependencyError(f"as_numpy=True needs numpy: {IMAGES_EXTRA_HINT}") from None
    return numpy


def collect_array(
    outcomes: Iterable[Outcome[EmbeddingResult]], total: int, model: str
) -> numpy.ndarray[Any, Any]:
    np = numpy_module()
    array: Any = None
    errors: dict[int, BaseException] = {}
    for outcome in outcomes:
        if outcome.error is not None:
            errors[outcome.index] = outcome.error
            continue
        assert outcome.value is not None
        vector: Any = outcome.value.embedding
        if isinstance(vector, PackedVector):  # a cache hit: bytes straight into the array
            vector = np.frombuffer(vector.packed, dtype="<f8")
        if array is None:
            array = np.full((total, len(vector)), np.nan, dtype=np.float32)
        if len(vector) != array.shape[1]:
            errors[outcome.index] = APIError(
                f"vector of length {len(vector)} in a batch of length {array.shape[1]}",
                request_id=outcome.value.request_id,
            )
            continue
        array[outcome.index] = vector
    if array is None:
        array = np.zeros((total, 0), dtype=np.float32)
    if errors:
        raise_batch_error(ArrayResults(array, errors, model), errors)
    result: numpy.ndarray[Any, Any] = array
    return result


def unpacked(result: EmbeddingResult) -> EmbeddingResult:
    """The result with a plain float list, whatever the cache stored."""
    if isinstance(result.embedding, PackedVector):
        return dataclasses.replace(result, embedding=result.embedding.tolist())
    return result


def credits_of(value: object) -> float:
    return value.usage.credits_charged if isinstance(value, EmbeddingResult) else 0.0
