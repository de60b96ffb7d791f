"""Hygiene shared by every test directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aurous_embed._connections import HTTPBackend, close_shared_http_clients
from aurous_embed._pacing import forget_shared_pacers


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Each test starts as a fresh process would: no shared rate-limit model, no shared pool.

    Clients on the real clock share what they learnt of a key's rate-limit buckets; a test that
    met a 429 must not hold back the next test that uses the same key and URL (cassettes do).
    The pool Chroma's embedding functions share is meant to live as long as the process; in a test
    session its keep-alive connections would otherwise outlive the emulator they point at and be
    garbage-collected, unclosed, in some later test (a ResourceWarning there, an error under
    ``filterwarnings = error``).
    """
    forget_shared_pacers()
    yield
    close_shared_http_clients()


@pytest.fixture(params=["httpx", "aiohttp"])
def http_backend(request: pytest.FixtureRequest) -> HTTPBackend:
    """Each library the async client can send with (``AsyncAurousClient(http_backend=...)``)."""
    backend: HTTPBackend = request.param
    return backend
