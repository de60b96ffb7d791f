"""hypothesis stays in the ``test`` extra, so the property tests always run."""

from __future__ import annotations

import re
from importlib.metadata import requires


def test_hypothesis_is_in_the_test_extra() -> None:
    test_extra = [r for r in requires("aurous-embed") or [] if re.search(r"extra == .test.", r)]
    assert test_extra, "no test extra in the installed metadata"
    assert any(re.match(r"hypothesis\b", r) for r in test_extra), test_extra
