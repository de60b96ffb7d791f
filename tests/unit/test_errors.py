"""Every documented error code maps to its exception class, sync and async, with the envelope."""

from __future__ import annotations

import httpx
import pytest

import aurous_embed as ae
from aurous_embed._errors import error_from_response
from tests.unit.conftest import FakeAPI, error_body, respond

CASES = [
    (400, "embeddings_batch_not_supported", "invalid_request", ae.BatchInputNotSupportedError),
    (400, "embeddings_input_too_many_items", "invalid_request", ae.TooManyInputItemsError),
    (400, "embeddings_video_unsupported", "invalid_request", ae.VideoUnsupportedError),
    (400, "embeddings_input_too_large", "invalid_request", ae.InputTooLargeError),
    (400, "embeddings_unsupported_dimensions", "invalid_request", ae.UnsupportedDimensionsError),
    (400, "model_wrong_kind", "invalid_request", ae.WrongModelKindError),
    (400, "model_not_found", "invalid_request", ae.BadRequestError),
    (400, "missing_field", "invalid_request", ae.BadRequestError),
    (400, "invalid_format", "invalid_request", ae.BadRequestError),
    (400, "value_out_of_range", "invalid_request", ae.BadRequestError),
    (422, "invalid_format", "invalid_request", ae.BadRequestError),
    (402, "balance_too_low", "invalid_request", ae.InsufficientCreditsError),
    (409, "idempotency_key_in_use", "invalid_request", ae.IdempotencyConflictError),
    (401, "missing_api_key", "authentication", ae.AuthenticationError),
    (401, "invalid_api_key", "authentication", ae.AuthenticationError),
    (401, "revoked_api_key", "authentication", ae.AuthenticationError),
    (403, "missing_scope", "authentication", ae.PermissionDeniedError),
    (404, "resource_not_found", "not_found", ae.NotFoundError),
    (404, "forbidden_resource", "not_found", ae.NotFoundError),
    (410, "resource_not_found", "not_found", ae.NotFoundError),
    (429, "too_many_requests", "rate_limit", ae.RateLimitError),
    (429, "tpm_rate_limit_exceeded", "rate_limit", ae.RateLimitError),
    (429, "concurrency_limit_exceeded", "rate_limit", ae.RateLimitError),
    (503, "provider_rate_limited", "rate_limit", ae.RateLimitError),
    (502, "embeddings_provider_unknown_error", "server_error", ae.InternalServerError),
    (500, "internal_error", "server_error", ae.InternalServerError),
    (502, "provider_unavailable", "server_error", ae.InternalServerError),
    (504, "provider_timeout", "server_error", ae.InternalServerError),
    (503, "provider_unavailable", "server_error", ae.InternalServerError),
    (418, "teapot", "invalid_request", ae.APIStatusError),
]


@pytest.mark.parametrize(("status", "code", "type_", "cls"), CASES)
def test_envelope_maps_to_class(
    status: int, code: str, type_: str, cls: type[ae.APIStatusError], api: FakeAPI
) -> None:
    api.default = lambda request: respond(
        status, error_body(code, type_, param="input[1].image_url.url")
    )
    with (
        ae.AurousClient(
            "al_live_k",
            base_url="https://api.test.invalid/v1",
            max_retries=0,
            http_client=httpx.Client(transport=httpx.MockTransport(api)),
        ) as c,
        pytest.raises(cls) as info,
    ):
        c.embed("x")
    error = info.value
    assert type(error) is cls
    assert (error.status_code, error.code, error.type) == (status, code, type_)
    assert error.param == "input[1].image_url.url"
    assert error.request_id == "req_01TESTERRORREQUESTID0000"
    assert error.doc_url == f"https://docs.aurous-labs.com/errors#{code}"
    assert error.message == f"message for {code}"
    assert code in str(error) and "req_01TESTERRORREQUESTID0000" in str(error)


@pytest.mark.parametrize(("status", "code", "type_", "cls"), CASES)
async def test_envelope_maps_to_class_async(
    status: int, code: str, type_: str, cls: type[ae.APIStatusError], api: FakeAPI
) -> None:
    api.default = lambda request: respond(status, error_body(code, type_))
    async with ae.AsyncAurousClient(
        "al_live_k",
        base_url="https://api.test.invalid/v1",
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(api)),
    ) as c:
        with pytest.raises(cls) as info:
            await c.embed("x")
    assert type(info.value) is cls
    assert info.value.code == code


def test_hierarchy() -> None:
    assert issubclass(ae.BatchInputNotSupportedError, ae.BadRequestError)
    assert issubclass(ae.BadRequestError, ae.APIStatusError)
    assert issubclass(ae.APIStatusError, ae.APIError)
    assert issubclass(ae.APITimeoutError, ae.APIConnectionError)
    assert issubclass(ae.APIConnectionError, ae.APIError)
    assert issubclass(ae.APIError, ae.AurousError)
    assert issubclass(ae.InputValidationError, ValueError)
    assert issubclass(ae.MissingDependencyError, ImportError)
    for name in (
        "InputValidationError",
        "MissingDependencyError",
        "BatchEmbeddingError",
        "BudgetExceededError",
        "MissingAPIKeyError",
    ):
        assert issubclass(getattr(ae, name), ae.AurousError)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "HTTP 500 with no error message"),
        (b"<html>Bad gateway</html>", "<html>Bad gateway</html>"),
        (b'{"error": "flat string"}', "HTTP 500 with no error message"),
        (b'{"error": {"code": "internal_error"}}', "HTTP 500 with no error message"),
    ],
)
def test_odd_error_bodies_are_tolerated(content: bytes, message: str) -> None:
    error = error_from_response(500, httpx.Headers({"Aurous-Request-Id": "req_H"}), content)
    assert isinstance(error, ae.InternalServerError)
    assert error.message == message
    assert error.request_id == "req_H"  # from the header when the body has none
