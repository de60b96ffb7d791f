"""Hygiene shared by every test directory."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

from aurous_embed._connections import HTTPBackend, close_shared_http_clients
from aurous_embed._pacing import forget_shared_pacers
from tests.helpers import FLAVOURS, Flavour


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


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> Flavour:
    """Each client: ``AurousClient`` and ``AsyncAurousClient`` (see ``tests.helpers.make_client``)."""
    value: Flavour = request.param
    return value


@pytest.fixture
def sigint_raises_keyboard_interrupt() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt here and in child processes, as Ctrl-C does in a terminal.

    A process started in the background by a non-interactive shell inherits SIGINT as ignored
    (and Python then leaves it ignored): a Ctrl-C test run there would wait for an interrupt that
    never comes. A child process inherits SIG_DFL from a Python handler, and Python turns that
    into KeyboardInterrupt.
    """
    assert threading.current_thread() is threading.main_thread(), "signals need the main thread"
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
