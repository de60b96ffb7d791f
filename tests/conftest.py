"""Hygiene shared by every test directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aurous_embed._http import close_shared_http_clients


@pytest.fixture(autouse=True)
def _close_shared_pools() -> Iterator[None]:
    """Close the process-wide pool Chroma's embedding functions share after each test.

    The pool is meant to live as long as the process; in a test session its keep-alive connections
    would otherwise outlive the emulator they point at and be garbage-collected, unclosed, in some
    later test (a ResourceWarning there, an error under ``filterwarnings = error``).
    """
    yield
    close_shared_http_clients()
