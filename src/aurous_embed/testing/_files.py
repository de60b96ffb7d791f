"""Uploaded files [DOC section 1.12]: a store with signed URLs, 1 h URL life and 24 h TTL.

A file's ``url`` points at a fake host (``files.emulator.aurous-labs.invalid``, a name that can
never resolve) and carries an expiry and an HMAC token. The emulator's own embeddings endpoint
resolves such URLs from this store instead of fetching them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aurous_embed.testing._ids import ulid

FILE_HOST = "files.emulator.aurous-labs.invalid"
URL_LIFETIME = 3600.0  # [DOC] the signed url is valid about 1 hour
FILE_TTL = 24 * 3600.0  # [DOC] hard 24 h TTL, then the file is purged
PURPOSES = ("reference", "first_frame", "last_frame")  # [DOC]


@dataclass(frozen=True)
class StoredFile:
    """One uploaded image."""

    id: str
    purpose: str
    mime_type: str
    data: bytes
    sha256: str
    width: int
    height: int
    created_at: float
    expires_at: float
    metadata: dict[str, Any] | None


def iso8601(epoch: float) -> str:
    """Format epoch seconds as ``2026-05-03T14:00:00Z``."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FileStore:
    """Files by id. Not thread-safe: the caller holds the emulator lock."""

    def __init__(self) -> None:
        # A fresh secret per emulator: a URL minted by another emulator never resolves here.
        self._secret = os.urandom(32)
        self._files: dict[str, StoredFile] = {}

    def clear(self) -> None:
        """Forget every file."""
        self._files.clear()

    def add(
        self,
        *,
        purpose: str,
        mime_type: str,
        data: bytes,
        width: int,
        height: int,
        metadata: dict[str, Any] | None,
        now: float,
    ) -> StoredFile:
        """Store a checked image and return its record."""
        self._purge(now)
        stored = StoredFile(
            id="file_" + ulid(now),
            purpose=purpose,
            mime_type=mime_type,
            data=data,
            sha256=hashlib.sha256(data).hexdigest(),
            width=width,
            height=height,
            created_at=now,
            expires_at=now + FILE_TTL,
            metadata=metadata,
        )
        self._files[stored.id] = stored
        return stored

    def get(self, file_id: str, now: float) -> StoredFile | None:
        """Return a live file, or ``None`` if unknown, deleted or past its TTL."""
        self._purge(now)
        return self._files.get(file_id)

    def delete(self, file_id: str) -> None:
        """Purge a file at once; deleting a missing file is not an error [DOC]."""
        self._files.pop(file_id, None)

    def public(self, stored: StoredFile, now: float) -> dict[str, Any]:
        """The documented file object, with a freshly minted url."""
        return {
            "id": stored.id,
            "object": "file",
            "purpose": stored.purpose,
            "mime_type": stored.mime_type,
            "size_bytes": len(stored.data),
            "width_px": stored.width,
            "height_px": stored.height,
            "url": self.sign(stored.id, now),
            "expires_at": iso8601(stored.expires_at),
            "created_at": iso8601(stored.created_at),
            "metadata": stored.metadata,
        }

    def sign(self, file_id: str, now: float) -> str:
        """Mint a signed url valid for :data:`URL_LIFETIME` seconds."""
        expires = int(now + URL_LIFETIME)
        return (
            f"https://{FILE_HOST}/{file_id}?expires={expires}&token={self._token(file_id, expires)}"
        )

    def resolve(self, url: str, now: float) -> StoredFile:
        """Return the file a signed url points to.

        Raises:
            LookupError: Bad signature, expired url, or a file that is gone; the message says which.
        """
        parts = urlsplit(url)
        file_id = parts.path.strip("/")
        query = parse_qs(parts.query)
        try:
            expires = int(query["expires"][0])
            token = query["token"][0]
        except (KeyError, ValueError):
            raise LookupError("the file url is not a signed emulator url") from None
        if not hmac.compare_digest(token, self._token(file_id, expires)):
            raise LookupError("the file url's signature does not match")
        if now >= expires:
            raise LookupError("the signed file url has expired; GET /v1/files/{id} mints a new one")
        stored = self.get(file_id, now)
        if stored is None:
            raise LookupError(f"file {file_id} was deleted or has expired")
        return stored

    def _token(self, file_id: str, expires: int) -> str:
        message = f"{file_id}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:40]

    def _purge(self, now: float) -> None:
        for file_id in [f for f, s in self._files.items() if s.expires_at <= now]:
            del self._files[file_id]


def is_file_url(url: str) -> bool:
    """True if the url points at the emulator's fake file host."""
    try:
        return (urlsplit(url).hostname or "").lower() == FILE_HOST
    except ValueError:
        return False
