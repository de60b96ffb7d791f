"""Every error's class, message and attributes, built directly (no client in between).

``test_errors.py`` checks the documented envelopes end to end; this file pins the edges: the class
chosen from a status without its specific code, bodies that are not JSON or not UTF-8, what
``str()`` says for every class, and the batch-stopping errors.
"""

from __future__ import annotations

import copy
import pickle

import httpx
import pytest

import aurous_embed as ae
from aurous_embed import _errors
from aurous_embed._errors import (
    error_class_for,
    error_from_response,
    skipped_error,
    stopped_batch_error,
    stops_batch,
)

#: The batch flavours that exist as soon as the module is imported (before any batch stopped), so
#: that pickle finds them by name in a fresh process.
PREMADE = set(_errors._STOPPED_CLASSES)

STOPPING = (
    ae.AuthenticationError,
    ae.PermissionDeniedError,
    ae.InsufficientCreditsError,
    ae.RateLimitError,
    ae.MissingDependencyError,
    ae.ClientClosedError,
    ae.BudgetExceededError,
)


# --- which class -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "type_", "cls"),
    [
        # A status without its specific code still has its class.
        (402, None, None, ae.InsufficientCreditsError),
        (402, "something_new", None, ae.InsufficientCreditsError),
        (409, None, None, ae.IdempotencyConflictError),
        (409, "idempotency_key_reused", None, ae.IdempotencyConflictError),
        (400, None, None, ae.BadRequestError),
        (422, None, None, ae.BadRequestError),
        (401, None, None, ae.AuthenticationError),
        (403, None, None, ae.PermissionDeniedError),
        (404, None, None, ae.NotFoundError),
        (410, None, None, ae.NotFoundError),
        (429, None, None, ae.RateLimitError),
        # A specific code wins over the status, for every 4xx...
        (400, "balance_too_low", None, ae.InsufficientCreditsError),
        (400, "idempotency_key_in_use", None, ae.IdempotencyConflictError),
        (499, "model_wrong_kind", None, ae.WrongModelKindError),
        (400, "embeddings_input_too_large", None, ae.InputTooLargeError),
        # ...and never for another status.
        (399, "model_wrong_kind", None, ae.APIStatusError),
        (500, "model_wrong_kind", None, ae.InternalServerError),
        (503, "balance_too_low", None, ae.InternalServerError),
        # 503 is a rate limit only with type rate_limit.
        (503, "provider_rate_limited", "rate_limit", ae.RateLimitError),
        (503, None, "rate_limit", ae.RateLimitError),
        (503, "provider_rate_limited", "server_error", ae.InternalServerError),
        (502, None, "rate_limit", ae.InternalServerError),
        (500, None, None, ae.InternalServerError),
        (599, None, None, ae.InternalServerError),
        (499, None, None, ae.APIStatusError),
        (418, None, None, ae.APIStatusError),
        (302, None, None, ae.APIStatusError),
    ],
)
def test_error_class_for(
    status: int, code: str | None, type_: str | None, cls: type[ae.APIStatusError]
) -> None:
    assert error_class_for(status, code, type_) is cls


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("embeddings_unsupported_dimensions", ae.UnsupportedDimensionsError),
        ("embeddings_batch_not_supported", ae.BatchInputNotSupportedError),
        ("embeddings_input_too_many_items", ae.TooManyInputItemsError),
        ("embeddings_input_too_large", ae.InputTooLargeError),
        ("embeddings_video_unsupported", ae.VideoUnsupportedError),
        ("model_wrong_kind", ae.WrongModelKindError),
        ("idempotency_key_in_use", ae.IdempotencyConflictError),
        ("balance_too_low", ae.InsufficientCreditsError),
    ],
)
def test_every_specific_code_has_its_class(code: str, cls: type[ae.APIStatusError]) -> None:
    error = error_from_response(400, httpx.Headers(), b'{"error": {"code": "%s"}}' % code.encode())
    assert type(error) is cls
    assert error.code == code


# --- odd bodies ------------------------------------------------------------------------------


def test_a_body_that_is_neither_json_nor_utf8_gives_a_typed_error() -> None:
    error = error_from_response(502, httpx.Headers(), b"\x80bad \xff gateway")
    assert type(error) is ae.InternalServerError
    assert error.message == "\ufffdbad \ufffd gateway"
    assert error.body == error.message
    assert str(error) == "502 error: \ufffdbad \ufffd gateway"


def test_a_long_text_body_is_cut_to_500_characters() -> None:
    error = error_from_response(500, httpx.Headers(), b"x" * 2000)
    assert error.message == "x" * 500


def test_the_envelope_is_read_field_by_field() -> None:
    content = (
        b'{"error": {"type": "invalid_request", "code": "missing_field", "message": "no model",'
        b' "param": "model", "doc_url": "https://docs.example/e", "request_id": "req_B"}}'
    )
    headers = httpx.Headers({"Aurous-Request-Id": "req_H", "X-Other": "1"})
    error = error_from_response(400, headers, content)
    assert type(error) is ae.BadRequestError
    assert (error.status_code, error.code, error.type, error.param) == (
        400,
        "missing_field",
        "invalid_request",
        "model",
    )
    assert error.message == "no model"
    assert error.doc_url == "https://docs.example/e"
    assert error.request_id == "req_B"  # the body's own id wins over the header
    assert error.headers["x-other"] == "1"
    assert error.body == {
        "error": {
            "type": "invalid_request",
            "code": "missing_field",
            "message": "no model",
            "param": "model",
            "doc_url": "https://docs.example/e",
            "request_id": "req_B",
        }
    }
    assert str(error) == "400 missing_field: no model (param=model, request_id=req_B)"


def test_fields_of_the_wrong_type_are_ignored() -> None:
    content = b'{"error": {"code": 7, "type": ["x"], "message": {"a": 1}, "param": 3}}'
    error = error_from_response(404, httpx.Headers(), content)
    assert type(error) is ae.NotFoundError
    assert (error.code, error.type, error.param, error.request_id) == (None, None, None, None)
    assert error.message == "HTTP 404 with no error message"
    assert str(error) == "404 error: HTTP 404 with no error message"


def test_a_json_body_without_an_envelope() -> None:
    error = error_from_response(500, httpx.Headers(), b'["not", "an", "envelope"]')
    assert error.body == ["not", "an", "envelope"]
    assert error.message == "HTTP 500 with no error message"
    assert error.headers == httpx.Headers()


# --- what every error says ----------------------------------------------------------------------


def test_api_status_error_text() -> None:
    bare = ae.APIStatusError("boom", status_code=500)
    assert str(bare) == "500 error: boom"
    assert bare.headers == {}
    assert bare.message == "boom"
    assert bare.args == ("boom",)
    full = ae.BadRequestError(
        "bad", status_code=400, code="c", param="input[0]", request_id="req_1", headers={"a": "b"}
    )
    assert str(full) == "400 c: bad (param=input[0], request_id=req_1)"
    assert full.headers == {"a": "b"}
    only_id = ae.NotFoundError("gone", status_code=404, code="c", request_id="req_2")
    assert str(only_id) == "404 c: gone (request_id=req_2)"


def test_rate_limit_error_says_why_it_gave_up() -> None:
    error = ae.RateLimitError("slow down", status_code=429, code="too_many_requests")
    assert error.retry_after is None
    assert str(error) == "429 too_many_requests: slow down"
    error.give_up_reason = "rate limited for too long"
    assert str(error) == "429 too_many_requests: slow down; gave up: rate limited for too long"


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (ae.APIConnectionError(), "Connection error."),
        (ae.APIConnectionError("reset by peer"), "reset by peer"),
        (ae.APITimeoutError(), "Request timed out."),
        (ae.APITimeoutError("read timeout"), "read timeout"),
        (ae.ClientClosedError(), "the client has been closed"),
        (ae.ClientClosedError("closed mid-call"), "closed mid-call"),
        (ae.MissingAPIKeyError("no key"), "no key"),
        (ae.MissingDependencyError("pip install x"), "pip install x"),
        (
            ae.BudgetExceededError("over", results=[], credits_spent=0.5, max_credits=1.0),
            "over",
        ),
        (ae.InputValidationError("text is empty"), "text is empty"),
        (ae.InputValidationError("text is empty", param="input"), "input: text is empty"),
        (ae.InputValidationError("text is empty", index=3), "item 3: text is empty"),
        (
            ae.InputValidationError("text is empty", param="input", index=3),
            "item 3 input: text is empty",
        ),
    ],
)
def test_every_error_says_what_happened(error: ae.AurousError, text: str) -> None:
    assert str(error) == text
    assert error.args == (text,)
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert type(clone) is type(error)
        assert str(clone) == text


def test_error_attributes() -> None:
    connection = ae.APIConnectionError("x")
    assert connection.message == "x"
    assert connection.request_id is None
    assert connection.may_have_reached_server is True
    assert ae.APITimeoutError().may_have_reached_server is True  # a timeout may have run
    assert ae.APITimeoutError(may_have_reached_server=False).may_have_reached_server is False
    assert ae.APIError("y", request_id="req_9").request_id == "req_9"
    budget = ae.BudgetExceededError("over", results=[None], credits_spent=0.5, max_credits=1.0)
    assert (budget.results, budget.credits_spent, budget.max_credits) == ([None], 0.5, 1.0)
    by_name = ae.BudgetExceededError(message="over", results=[], credits_spent=0, max_credits=0)
    assert str(by_name) == "over"
    assert by_name.args == ("over",)
    invalid = ae.InputValidationError("bad", param="p")
    assert (invalid.reason, invalid.param, invalid.index) == ("bad", "p", None)
    moved = invalid.at_index(4)
    assert (moved.reason, moved.param, moved.index) == ("bad", "p", 4)
    assert str(moved) == "item 4 p: bad"
    assert invalid.index is None  # the original is unchanged
    invalid.index = 2  # the batch engine may label it later: str() follows
    assert str(invalid) == "item 2 p: bad"
    assert ae.AurousError().index is None
    assert ae.AurousError().skipped is False


def test_batch_embedding_error_text() -> None:
    error = ae.BatchEmbeddingError([None, None, None], {2: ValueError("b"), 0: ValueError("a")})
    assert list(error.errors) == [0, 2]  # in input order
    assert error.results == [None, None, None]
    assert str(error) == "2 of 3 inputs failed (1 succeeded and are in .results); first: item 0: a"
    empty = ae.BatchEmbeddingError([], {})
    assert str(empty) == "0 of 0 inputs failed (0 succeeded and are in .results)"


# --- stopped batches and skipped items -----------------------------------------------------------


def test_every_stopping_class_has_its_batch_flavour_from_the_start() -> None:
    assert set(STOPPING) <= PREMADE
    for cls in STOPPING:
        flavour = getattr(_errors, "BatchStopped" + cls.__name__)
        assert issubclass(flavour, ae.BatchStoppedError)
        assert issubclass(flavour, cls)
        assert flavour.__module__ == "aurous_embed._errors"
        assert flavour.__doc__ == f"A batch stopped by {cls.__name__}: see BatchStoppedError."


def test_a_stopped_batch_is_also_its_cause() -> None:
    cause = ae.AuthenticationError("bad key", status_code=401, code="invalid_api_key")
    cause.index = 1
    error = stopped_batch_error(cause, ["r0", None, None], {2: ValueError("x"), 1: cause})  # type: ignore[list-item]
    assert isinstance(error, ae.AuthenticationError)
    assert isinstance(error, ae.BatchStoppedError)
    assert error.cause is cause
    assert error.status_code == 401
    assert error.code == "invalid_api_key"
    assert error.index is None
    assert list(error.errors) == [1, 2]
    text = (
        "401 invalid_api_key: bad key (the batch stopped at item 1: 2 of 3 inputs failed or "
        "were not sent; 1 succeeded and are in .results)"
    )
    assert str(error) == text
    assert error.args == (text,)
    assert stopped_batch_error(cause, [], {}).__class__ is error.__class__  # made once


def test_a_skipped_item_copies_its_cause() -> None:
    cause = ae.InsufficientCreditsError("no money", status_code=402, code="balance_too_low")
    cause.index = 0
    skipped = skipped_error(cause, 5)
    assert type(skipped) is ae.InsufficientCreditsError
    assert (skipped.index, skipped.skipped) == (5, True)
    assert skipped.message == "not sent (the batch stopped at item 0): no money"
    assert skipped.args == (skipped.message,)
    assert str(skipped) == "402 balance_too_low: not sent (the batch stopped at item 0): no money"
    assert (cause.index, cause.skipped, cause.message) == (0, False, "no money")

    invalid = ae.InputValidationError("bad", param="input")
    invalid.index = 1
    skipped_invalid = skipped_error(invalid, 2)
    assert isinstance(skipped_invalid, ae.InputValidationError)
    assert skipped_invalid.reason == "not sent (the batch stopped at item 1): bad"
    assert str(skipped_invalid) == "item 2 input: not sent (the batch stopped at item 1): bad"
    assert skipped_invalid.args == (str(skipped_invalid),)

    closed = ae.ClientClosedError()
    closed.index = 0
    skipped_closed = skipped_error(closed, 3)
    assert str(skipped_closed) == (
        "not sent (the batch stopped at item 0): the client has been closed"
    )


def test_which_errors_stop_a_batch() -> None:
    assert stops_batch(ae.AuthenticationError("x", status_code=401))
    assert stops_batch(ae.PermissionDeniedError("x", status_code=403))
    assert stops_batch(ae.InsufficientCreditsError("x", status_code=402))
    assert stops_batch(ae.MissingDependencyError("x"))
    assert stops_batch(ae.BudgetExceededError("x", results=[], credits_spent=0, max_credits=0))
    assert stops_batch(ae.ClientClosedError())
    waited = ae.RateLimitError("x", status_code=429)
    assert not stops_batch(waited)  # a rate limit the client waited out
    waited.retry_after = 3600.0
    assert stops_batch(waited)  # one it would not wait for
    assert not stops_batch(ae.InternalServerError("x", status_code=500))
    assert not stops_batch(ae.BadRequestError("x", status_code=400))
    assert not stops_batch(ae.InputValidationError("x"))
    assert not stops_batch(ae.APIConnectionError())
    assert not stops_batch(ValueError("x"))
