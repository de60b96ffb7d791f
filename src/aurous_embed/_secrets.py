"""Keeping the API key out of sight: a wrapper that never prints it, and a logging filter.

httpx and httpcore do not log request header values today, but a key in a log file is a leak that
cannot be undone, so every key the package holds is registered with a filter that masks it (and any
``al_live_``/``og_`` key-shaped string) in records of the ``aurous_embed``, ``httpx`` and
``httpcore`` loggers.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Final

MASK: Final = "***"
KEY_PATTERN: Final = re.compile(r"\b(?:al_live|al_test|og)_[A-Za-z0-9]{6,}")
_LOGGERS: Final = (
    "aurous_embed",
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
)


class Secret:
    """A string that does not show itself: ``repr``/``str`` print ``'***'``; ``reveal()`` returns it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        _FILTER.register(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return repr(MASK)

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("an API key is not picklable")


class RedactingFilter(logging.Filter):
    """Masks every registered secret (and key-shaped strings) in log records."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._installed = False

    def register(self, secret: str) -> None:
        if not secret:
            return
        with self._lock:
            self._secrets.add(secret)
            if not self._installed:
                for name in _LOGGERS:
                    logging.getLogger(name).addFilter(self)
                self._installed = True

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return KEY_PATTERN.sub(MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER: Final = RedactingFilter()
redact = _FILTER.redact
