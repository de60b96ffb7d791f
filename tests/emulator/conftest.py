"""Fixtures for the emulator contract tests: a manual clock and a fresh emulator per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from aurous_embed.testing import Clock, Emulator
from tests.emulator.helpers import connect


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_emulator(
    clock: Clock, aurous_emulator_factory: Callable[..., Emulator]
) -> Callable[..., Emulator]:
    """Start emulators with custom settings (on the test's clock unless given one)."""

    def make(**kwargs: Any) -> Emulator:
        kwargs.setdefault("clock", clock)
        return aurous_emulator_factory(**kwargs)

    return make


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator(seed=1)


@pytest.fixture
def client(emu: Emulator) -> Iterator[httpx.Client]:
    """Raw httpx against the emulator, authenticated with its key."""
    with connect(emu) as http:
        yield http


@pytest.fixture
def anon(emu: Emulator) -> Iterator[httpx.Client]:
    """Raw httpx without a key."""
    with connect(emu, None) as http:
        yield http
