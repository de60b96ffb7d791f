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

from aurous_embed.testing._clock import Clock, ClockFn, FastClock
from aurous_embed.testing._faults import Faults
from aurous_embed.testing._proxy import CuttingProxy
from aurous_embed.testing._stats import Charge, EmulatorStats

if TYPE_CHECKING:
    from aurous_embed.testing._emulator import Emulator

__all__ = [
    "Charge",
    "Clock",
    "ClockFn",
    "CuttingProxy",
    "Emulator",
    "EmulatorStats",
    "FastClock",
    "Faults",
]

# What the extra installs, by import name (python-multipart is "python_multipart" in new
# releases and "multipart" in old ones).
_EXTRA_MODULES = {
    "starlette": ("starlette",),
    "uvicorn": ("uvicorn",),
    "python-multipart": ("python_multipart", "multipart"),
    "pillow": ("PIL",),
    "numpy": ("numpy",),
}


def __getattr__(name: str) -> Any:
    # Emulator needs starlette/uvicorn/python-multipart/Pillow: load it on first use only.
    if name == "Emulator":
        _require_emulator_extra()
        from aurous_embed.testing._emulator import Emulator

        return Emulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _require_emulator_extra() -> None:
    """Raise a helpful :class:`ImportError` if the ``emulator`` extra is not installed."""
    import importlib.util

    def importable(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # e.g. sys.modules[name] is None
            return False

    missing = [dist for dist, names in _EXTRA_MODULES.items() if not any(map(importable, names))]
    if missing:
        raise ImportError(
            f"the Aurous emulator needs {', '.join(missing)}, which are not installed; "
            'install the extra with: pip install "aurous-embed[emulator]"'
        )
