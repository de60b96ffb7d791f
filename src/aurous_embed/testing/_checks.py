"""Header checks (API key, scope, ``Aurous-Version``, idempotency key) and canned errors.

Pure functions of header values: the app supplies its keys and settings, so these are easy to
read next to the contract. Every failure raises :class:`ApiError` with the documented envelope.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from datetime import date

from aurous_embed._config import API_VERSION_PATTERN, CURRENT_API_VERSION
from aurous_embed.testing._envelope import (
    AUTHENTICATION,
    INVALID_FORMAT,
    RATE_LIMIT,
    SERVER_ERROR,
    VALUE_OUT_OF_RANGE,
    ApiError,
    invalid,
)
from aurous_embed.testing._idempotency import MAX_KEY_LENGTH

SCOPES = ("read", "write", "full")
# [DOC-CONFLICT] two vendor aliases are documented; the standard name wins when several are sent.
IDEMPOTENCY_HEADERS = ("Idempotency-Key", "Aurous-Idempotent-Key", "Aurous-Idempotency-Key")


def api_key_of(headers: Mapping[str, str]) -> str:
    """The key a request presents: ``X-Api-Key``, else ``Authorization: Bearer``.

    [NOT FOUND] both headers with different values: ``X-Api-Key`` (the documented contract) wins.
    """
    key = headers.get("x-api-key", "").strip()
    if not key and "authorization" in headers:
        scheme, _, token = headers["authorization"].strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                AUTHENTICATION,
                "invalid_api_key",
                "Authorization must be 'Bearer <key>'; or send X-Api-Key: <key>.",
            )
        key = token.strip()
    if not key:
        raise ApiError(
            401,
            AUTHENTICATION,
            "missing_api_key",
            "No API key provided. Send X-Api-Key: <key> or Authorization: Bearer <key>.",
        )
    return key


def check_key(key: str, keys: Mapping[str, str], revoked: Container[str]) -> str:
    """Return the key's scope, or raise the documented 401."""
    if key in revoked:
        raise ApiError(401, AUTHENTICATION, "revoked_api_key", "This API key was revoked.")
    scope = keys.get(key)
    if scope is None:
        raise ApiError(
            401,
            AUTHENTICATION,
            "invalid_api_key",
            "Invalid API key. Double-check the header name and the value.",
        )
    return scope


def check_scope(scope: str, route: str, *, write: bool) -> None:
    """[INFERRED] a ``read`` key gets 403 ``missing_scope`` on every POST and DELETE.

    The type is ``authentication``, as the error-handling guide has it for 403.
    """
    if write and scope == "read":
        raise ApiError(
            403,
            AUTHENTICATION,
            "missing_scope",
            f"This API key has scope 'read'; {route} needs scope 'write' or 'full'.",
        )


def resolve_version(raw: str | None, team_version: str) -> str:
    """The contract version a request gets, from its ``Aurous-Version`` pin.

    [GUESS, contract section 6] a malformed pin is 400 ``invalid_format`` naming the header; a
    valid date resolves to the newest known version at or before it, and a date before the
    first version gets the first one. No pin: the team default.
    """
    if raw is None:
        return team_version
    try:
        valid = bool(API_VERSION_PATTERN.match(raw)) and date.fromisoformat(raw) is not None
    except ValueError:
        valid = False
    if not valid:
        raise invalid(
            INVALID_FORMAT,
            f"Aurous-Version must be a date YYYY-MM-DD, got {raw!r}.",
            "Aurous-Version",
        )
    known = sorted({CURRENT_API_VERSION, team_version})
    eligible = [v for v in known if v <= raw]
    return eligible[-1] if eligible else known[0]


def idempotency_key_of(headers: Mapping[str, str]) -> str | None:
    """The request's idempotency key under any documented name, checked for length."""
    for name in IDEMPOTENCY_HEADERS:
        value = headers.get(name)
        if value is not None:
            if not 1 <= len(value) <= MAX_KEY_LENGTH:
                # [NOT FOUND] the answer to a bad length; a 400 naming the header.
                raise invalid(
                    VALUE_OUT_OF_RANGE, f"{name} must be 1-{MAX_KEY_LENGTH} characters long.", name
                )
            return value
    return None


def too_many_requests(bucket: str, wait: int) -> ApiError:
    """The documented 429 for an empty request bucket."""
    return ApiError(
        429,
        RATE_LIMIT,
        "too_many_requests",
        f"Rate limit exceeded for {bucket}. Retry after {wait}s.",
        retry_after=wait,
    )


def injected_error(status: int, retry_after: int) -> ApiError:
    """The documented error for an injected 500/502/503/504."""
    if status == 502:
        return ApiError(
            502,
            SERVER_ERROR,
            "embeddings_provider_unknown_error",
            "The embedding provider returned an unrecognized error. Engineering has been "
            "notified. Retry with backoff.",
        )
    if status == 503:
        return ApiError(
            503,
            RATE_LIMIT,
            "provider_rate_limited",
            f"The embedding provider is rate limiting requests. Retry after {retry_after}s.",
            retry_after=retry_after,
        )
    if status == 504:
        return ApiError(
            504,
            SERVER_ERROR,
            "provider_timeout",
            "The embedding provider timed out. Retry with backoff.",
        )
    return ApiError(500, SERVER_ERROR, "internal_error", "Internal error. Retry with backoff.")
