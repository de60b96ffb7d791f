"""The property tests need hypothesis (in the ``test`` extra): without it they fail, never skip."""

from __future__ import annotations

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - what a broken environment sees
    raise ImportError(
        "tests/properties needs hypothesis, which the test extra installs "
        "(pip install -e '.[test]'); the property tests are not optional"
    ) from exc
