"""The idempotency store [DOC section 5]: per team, per key, route + canonical body, 24 h.

- A new key reserves an in-flight record; success completes it (status + body kept 24 h from
  first use); any failure (4xx or 5xx) drops it, so the same key re-runs.
- The same key with the same route and body: replay if complete, 409 if still in flight.
- The same key with another route or body within 24 h: 409.

Memory stays bounded: expired records are dropped on every call (records are kept in
first-use order, so the expired ones are at the front), and at most ``max_records`` are kept
(the oldest completed ones go first).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

from aurous_embed._config import IDEMPOTENCY_WINDOW_SECONDS

MAX_KEY_LENGTH = 256  # [DOC] 1-256 characters (the chat page says 64; 256 is the global rule)


@dataclass
class Record:
    """One key's state."""

    route: str
    body_hash: str
    expires_at: float
    token: object = field(default_factory=object)  # identifies the reservation that owns it
    done: bool = False
    status: int = 0
    body: bytes = b""
    request_id: str = ""


@dataclass(frozen=True)
class Outcome:
    """Result of :meth:`IdempotencyStore.begin`: ``kind`` is new, replay or conflict."""

    kind: str
    record: Record
    reason: str = ""


def body_hash(canonical: str) -> str:
    """SHA-256 of a canonical JSON body."""
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


class IdempotencyStore:
    """Records keyed by (team, key). Not thread-safe: the caller holds the emulator lock."""

    def __init__(
        self, window: float = IDEMPOTENCY_WINDOW_SECONDS, max_records: int = 100_000
    ) -> None:
        self.window = window
        self.max_records = max_records
        self._records: OrderedDict[tuple[str, str], Record] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        """Forget everything."""
        self._records.clear()

    def begin(self, team: str, key: str, route: str, digest: str, now: float) -> Outcome:
        """Look a key up; reserve it when new."""
        self._expire(now)
        slot = (team, key)
        record = self._records.get(slot)
        if record is not None and record.expires_at <= now:
            # Only reachable with a clock that jumped back and forth; treat it as gone.
            del self._records[slot]
            record = None
        if record is not None:
            if record.route != route:
                return Outcome("conflict", record, f"was first used on {record.route}")
            if record.body_hash != digest:
                return Outcome("conflict", record, "was first used with a different body")
            if not record.done:
                return Outcome("conflict", record, "is still in use by a request in flight")
            return Outcome("replay", record)
        record = Record(route, digest, now + self.window)
        self._records[slot] = record
        self._evict()
        return Outcome("new", record)

    def complete(
        self, team: str, key: str, record: Record, status: int, body: bytes, request_id: str
    ) -> None:
        """Store a success for replay, if the reservation still owns the key."""
        if self._records.get((team, key)) is record:
            record.done, record.status, record.body = True, status, body
            record.request_id = request_id

    def release(self, team: str, key: str, record: Record) -> None:
        """Drop a failed request's reservation, so the key can be used again."""
        if self._records.get((team, key)) is record:
            del self._records[(team, key)]

    def _expire(self, now: float) -> None:
        while self._records:
            slot, record = next(iter(self._records.items()))
            if record.expires_at > now:
                break
            del self._records[slot]

    def _evict(self) -> None:
        excess = len(self._records) - self.max_records
        if excess <= 0:
            return
        # The oldest finished records go first. Walk from the front only as far as needed: a scan
        # of the whole store on every request once it is full made a long-running emulator
        # answer ~13 requests/s after its 100,000th.
        victims: list[tuple[str, str]] = []
        for slot, record in self._records.items():
            if record.done:
                victims.append(slot)
                if len(victims) == excess:
                    break
        for slot in victims:
            del self._records[slot]
