"""pytest fixtures for the Aurous emulator, registered through the ``pytest11`` entry point.

pytest loads this module in every session of everyone who installs ``aurous-embed``, so it
imports nothing beyond pytest at module level; the emulator loads when a fixture is used.

Fixtures:

- ``aurous_emulator``: a running :class:`~aurous_embed.testing.Emulator` (function scope),
  driven by ``aurous_clock`` when the test also asks for that fixture.
- ``aurous_emulator_module`` and ``aurous_emulator_session``: one emulator for a whole module or
  session (default settings; call ``reset()`` between tests if they must not see each other).
- ``aurous_emulator_factory``: ``make(**kwargs) -> Emulator`` for custom settings; every
  emulator it makes is stopped after the test (``aurous_emulator_factory_module`` and
  ``aurous_emulator_factory_session``: after the module or session).
- ``aurous_clock``: a manual :class:`~aurous_embed.testing.Clock` to move time without sleeping.

Example:
    >>> def test_embed(aurous_emulator):  # doctest: +SKIP
    ...     client = AurousClient(base_url=aurous_emulator.base_url,
    ...                           api_key=aurous_emulator.api_key)
    ...     assert len(client.embed("hello").embedding) == 2048
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from aurous_embed.testing import Clock, Emulator


@pytest.fixture
def aurous_clock() -> Clock:
    """A manual clock, starting at 2026-05-15T00:00:00Z; move it with ``advance()``."""
    from aurous_embed.testing import Clock

    return Clock()


def _factory() -> Iterator[Callable[..., Emulator]]:
    from aurous_embed.testing import Emulator

    started: list[Emulator] = []

    def make(**kwargs: Any) -> Emulator:
        emulator = Emulator(**kwargs)
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in reversed(started):
        emulator.stop()


@pytest.fixture
def aurous_emulator_factory() -> Iterator[Callable[..., Emulator]]:
    """Make started emulators with custom settings; all are stopped after the test."""
    yield from _factory()


@pytest.fixture(scope="module")
def aurous_emulator_factory_module() -> Iterator[Callable[..., Emulator]]:
    """As ``aurous_emulator_factory``; the emulators are stopped after the module."""
    yield from _factory()


@pytest.fixture(scope="session")
def aurous_emulator_factory_session() -> Iterator[Callable[..., Emulator]]:
    """As ``aurous_emulator_factory``; the emulators are stopped after the session."""
    yield from _factory()


@pytest.fixture(scope="module")
def aurous_emulator_module(
    aurous_emulator_factory_module: Callable[..., Emulator],
) -> Emulator:
    """One running emulator with default settings for the whole module."""
    return aurous_emulator_factory_module()


@pytest.fixture(scope="session")
def aurous_emulator_session(
    aurous_emulator_factory_session: Callable[..., Emulator],
) -> Emulator:
    """One running emulator with default settings for the whole session."""
    return aurous_emulator_factory_session()


@pytest.fixture
def aurous_emulator(
    request: pytest.FixtureRequest, aurous_emulator_factory: Callable[..., Emulator]
) -> Emulator:
    """A running emulator with default settings (and ``aurous_clock`` if the test uses it)."""
    kwargs: dict[str, Any] = {}
    if "aurous_clock" in request.fixturenames:
        kwargs["clock"] = request.getfixturevalue("aurous_clock")
    return aurous_emulator_factory(**kwargs)
