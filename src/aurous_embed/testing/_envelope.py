"""The documented error envelope, and JSON helpers shared by the emulator's handlers."""

from __future__ import annotations

import json
from typing import Any

from aurous_embed._config import DOC_ERRORS_URL

INVALID_REQUEST = "invalid_request"
AUTHENTICATION = "authentication"
NOT_FOUND = "not_found"
RATE_LIMIT = "rate_limit"
SERVER_ERROR = "server_error"

# [ASSUMPTION, decisions table] generic DTO validation codes, chosen "as fits":
MISSING_FIELD = "missing_field"  # a required field is absent (or null)
INVALID_FORMAT = "invalid_format"  # wrong JSON type, bad syntax, NUL byte, bad scheme/host, ...
VALUE_OUT_OF_RANGE = "value_out_of_range"  # empty where content is required, or over a length cap


class ApiError(Exception):
    """An error answer: HTTP status plus the envelope fields (``request_id`` is added later).

    Args:
        status: HTTP status.
        type_: Envelope ``type`` (one of the five documented classes).
        code: Envelope ``code``.
        message: Human-readable text.
        param: The offending field path, or ``None``.
        retry_after: Seconds for a ``Retry-After`` header (429/503), or ``None``.
    """

    def __init__(
        self,
        status: int,
        type_: str,
        code: str,
        message: str,
        *,
        param: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.code = code
        self.message = message
        self.param = param
        self.retry_after = retry_after

    def envelope(self, request_id: str) -> dict[str, Any]:
        """Return the documented ``{"error": {...}}`` body."""
        return {
            "error": {
                "type": self.type,
                "code": self.code,
                "message": self.message,
                "param": self.param,
                "doc_url": DOC_ERRORS_URL + self.code,
                "request_id": request_id,
            }
        }


def invalid(code: str, message: str, param: str | None) -> ApiError:
    """Return a ``400 invalid_request`` error."""
    return ApiError(400, INVALID_REQUEST, code, message, param=param)


def dumps(obj: Any) -> bytes:
    """Serialise a response body: compact, UTF-8, no NaN."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def canonical_json(obj: Any) -> str:
    """Canonical JSON for idempotency comparison: keys sorted, no whitespace [DOC section 5]."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(body: bytes) -> Any:
    """Parse a JSON request body strictly (NaN/Infinity are not JSON).

    Raises:
        ApiError: 400 ``invalid_format`` with ``param`` null if the body is not JSON.
    """
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise invalid(INVALID_FORMAT, f"Request body is not valid JSON: {exc}", None) from None
