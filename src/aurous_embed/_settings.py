"""Checks of a client's settings, done once at construction: the base URL (https, or plain http
only to loopback), the version pin, integers, and the API key (never shown in a message).
"""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING

import httpx

from aurous_embed._config import (
    API_VERSION_PATTERN,
    DEFAULT_BASE_URL,
    ENV_API_KEY,
    ENV_API_VERSION,
    ENV_BASE_URL,
    MAX_DIMENSIONS_VALUE,
)
from aurous_embed._errors import (
    InputValidationError,
    MissingAPIKeyError,
)

if TYPE_CHECKING:
    pass


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_base_url(base_url: str | None) -> str:
    """``base_url``, else ``$AUROUS_BASE_URL``, else production; refused unless https (or plain
    http to a loopback host)."""
    url = (base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InputValidationError(f"base_url is not a URL: {exc}", param="base_url") from None
    if parsed.scheme == "https" and parsed.host:
        return url
    if parsed.scheme == "http" and is_loopback(parsed.host):
        return url
    if parsed.scheme == "http":
        raise InputValidationError(
            f"refusing to send the API key over plain http to {parsed.host}: use https "
            "(plain http is allowed only to a loopback host such as the local emulator)",
            param="base_url",
        )
    raise InputValidationError(
        f"base_url must be an https:// URL, got {url[:80]!r}", param="base_url"
    )


def check_api_version(api_version: str | None) -> str | None:
    value = api_version if api_version is not None else os.environ.get(ENV_API_VERSION) or None
    if value is not None and not (isinstance(value, str) and API_VERSION_PATTERN.match(value)):
        raise InputValidationError(
            f"api_version must be a YYYY-MM-DD date such as 2026-05-15, got {value!r}",
            param="Aurous-Version",
        )
    return value


def check_int(
    value: object, *, param: str, minimum: int = 1, maximum: int = MAX_DIMENSIONS_VALUE
) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        shown = repr(value) if not isinstance(value, int) or value.bit_length() < 64 else "huge"
        raise InputValidationError(
            f"{param} must be an integer >= {minimum} and <= {maximum:,}, got {shown}", param=param
        )
    return value


def visible_ascii(value: str) -> bool:
    """Only printable ASCII without spaces: what an HTTP header value can carry unchanged."""
    return value.isascii() and value.isprintable() and " " not in value


def check_api_key(key: object) -> str:
    """The key, stripped; refused without showing any of it when no header could carry it."""
    if not isinstance(key, str) or not key.strip():
        raise MissingAPIKeyError(
            f"no Aurous API key: pass api_key=... or set the {ENV_API_KEY} environment "
            "variable (for offline work, start the emulator: aurous-embed serve)"
        )
    key = key.strip()
    if not visible_ascii(key):
        raise InputValidationError(
            f"the API key has {len(key)} characters, some of them control characters, spaces or "
            "not ASCII (a line break pasted in?): no HTTP header can carry it; check the value "
            f"of api_key= or {ENV_API_KEY} (the key itself is not shown)",
            param="api_key",
        )
    return key
