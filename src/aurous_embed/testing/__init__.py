"""A local emulator of the Aurous Labs embeddings API, for offline development and tests.

``Emulator`` runs a real HTTP server on a loopback port that follows the documented contract
(auth, versions, validation, billing, idempotency, rate limits, files) and can misbehave on
demand (:class:`Faults`, the ``Aurous-Emulator-Fault`` header). Its vectors come from a
deterministic stand-in (lexical feature hashing plus simple image features), NOT the real
model: use them to test plumbing, never to judge retrieval quality.

Example:
    >>> from aurous_embed.testing import Emulator
    >>> with Emulator() as emu:  # doctest: +SKIP
    ...     print(emu.base_url, emu.api_key)

Needs the ``emulator`` extra (``pip install "aurous-embed[emulator]"``). This package itself
imports without it (the pytest plugin lives here and loads in every pytest session); using
``Emulator`` without the extra raises an :class:`ImportError` that says what to install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aurous_embed.testing._clock import Clock, ClockFn
from aurous_embed.testing._faults import FAULT_HEADER, Faults
from aurous_embed.testing._stats import Charge, EmulatorStats

if TYPE_CHECKING:
    from aurous_embed.testing._emulator import Emulator

__all__ = ["FAULT_HEADER", "Charge", "Clock", "ClockFn", "Emulator", "EmulatorStats", "Faults"]

_EXTRA_MODULES = ("starlette", "uvicorn", "multipart", "PIL")


def __getattr__(name: str) -> Any:
    # Emulator needs starlette/uvicorn/python-multipart/Pillow: load it on first use only.
    if name == "Emulator":
        require_emulator_extra()
        from aurous_embed.testing._emulator import Emulator

        return Emulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def require_emulator_extra() -> None:
    """Raise a helpful :class:`ImportError` if the ``emulator`` extra is not installed."""
    import importlib.util

    missing = []
    for module in _EXTRA_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # e.g. sys.modules[name] is None
            found = False
        if not found:
            missing.append(module)
    if missing:
        raise ImportError(
            f"the Aurous emulator needs {', '.join(missing)}, which are not installed; "
            'install the extra with: pip install "aurous-embed[emulator]"'
        )
