"""Every public exception survives pickle (process pools, task queues) with its class, message and
attributes; a test of each class, so a new class cannot be added without one."""

from __future__ import annotations

import inspect
import pickle
import subprocess
import sys
from typing import Any

import pytest

import aurous_embed
from aurous_embed import _errors
from aurous_embed._errors import AurousError, stopped_batch_error
from aurous_embed.types import EmbeddingResult, Usage


def _result(index: int) -> EmbeddingResult:
    return EmbeddingResult(
        embedding=[0.5, -0.25],
        model="aurous-embed-vision-1.0",
        usage=Usage(prompt_tokens=3, total_tokens=3, credits_charged=0.001),
        request_id=f"req_{index}",
    )


def _make(cls: type[AurousError]) -> AurousError:
    if issubclass(cls, _errors.BatchStoppedError) and cls is not _errors.BatchStoppedError:
        cause = _make(next(k for k, v in _errors._STOPPED_CLASSES.items() if v is cls))
        return stopped_batch_error(cause, [_result(0), None], {1: _errors.skipped_error(cause, 1)})
    if issubclass(cls, _errors.BatchEmbeddingError):
        failed = aurous_embed.InputValidationError("text is empty", param="input[0].text", index=1)
        return cls([_result(0), None], {1: failed})
    if issubclass(cls, _errors.APIStatusError):
        return cls(
            "the message",
            status_code=429 if issubclass(cls, aurous_embed.RateLimitError) else 400,
            code="some_code",
            type="invalid_request",
            param="input[0]",
            request_id="req_123",
            doc_url="https://docs.example/errors",
            headers={"retry-after": "2"},
            body={"error": {"code": "some_code"}},
        )
    if issubclass(cls, _errors.APIConnectionError):
        return cls("the connection dropped", may_have_reached_server=False)
    if issubclass(cls, _errors.APIError):
        return cls("an API error", request_id="req_9")
    if issubclass(cls, aurous_embed.InputValidationError):
        return cls("text is empty", param="input[0].text", index=4)
    if issubclass(cls, aurous_embed.BudgetExceededError):
        params = inspect.signature(cls).parameters
        values: dict[str, Any] = {
            "results": [_result(0), None],
            "credits_spent": 1.5,
            "max_credits": 2.0,
        }
        extra = {n: 0.5 for n in params if n not in values and n != "message"}
        return cls("over budget", **values, **extra)
    return cls("something went wrong")


def _public() -> list[type[AurousError]]:
    classes = {
        value
        for value in vars(aurous_embed).values()
        if isinstance(value, type) and issubclass(value, AurousError)
    }
    stopped = {
        value
        for value in vars(_errors).values()
        if isinstance(value, type) and issubclass(value, _errors.BatchStoppedError)
    }
    return sorted(classes | stopped, key=lambda c: c.__name__)


def _state(error: BaseException) -> Any:
    """What must survive: class, message and attributes (nested errors compared the same way)."""
    attrs = {}
    for name, value in vars(error).items():
        if isinstance(value, BaseException):
            value = _state(value)
        elif isinstance(value, dict):
            value = {k: _state(v) if isinstance(v, BaseException) else v for k, v in value.items()}
        attrs[name] = value
    return type(error), str(error), error.args, attrs


@pytest.mark.parametrize("cls", _public(), ids=lambda c: c.__name__)
def test_every_public_error_round_trips_through_pickle(cls: type[AurousError]) -> None:
    error = _make(cls)
    assert str(error), "an error has a message"
    clone = pickle.loads(pickle.dumps(error))
    assert _state(clone) == _state(error)
    assert isinstance(clone, cls)


def test_the_list_covers_the_stopped_batch_classes() -> None:
    names = {cls.__name__ for cls in _public()}
    for cause in ("AuthenticationError", "InsufficientCreditsError", "PermissionDeniedError"):
        assert f"BatchStopped{cause}" in names


def test_a_stopped_batch_error_unpickles_in_a_fresh_process() -> None:
    """The dynamic BatchStopped* classes are found by name in a process that never made one."""
    cause = _make(aurous_embed.AuthenticationError)
    error = stopped_batch_error(cause, [_result(0)], {})
    code = (
        "import pickle, sys; e = pickle.loads(sys.stdin.buffer.read()); "
        "import aurous_embed as a; assert isinstance(e, a.AuthenticationError), type(e); "
        "assert isinstance(e, a.BatchEmbeddingError); print(type(e).__name__, e.status_code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(error), capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["BatchStoppedAuthenticationError", "400"]
