"""Identifiers: ULIDs (``req_<ULID>``, ``file_<ULID>``) and API keys, written from scratch."""

from __future__ import annotations

import os
import secrets

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
API_KEY_PREFIX = "al_live_"  # [DOC] key format al_live_<64 hex chars>


def ulid(now: float) -> str:
    """Return a 26-character ULID: 48-bit millisecond time, then 80 random bits (Crockford)."""
    millis = int(now * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def request_id(now: float) -> str:
    """Return a fresh ``req_<ULID>``."""
    return "req_" + ulid(now)


def new_api_key() -> str:
    """Return a fresh key in the documented format, ``al_live_`` + 64 hex characters."""
    return API_KEY_PREFIX + secrets.token_hex(32)
