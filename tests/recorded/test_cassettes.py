"""Every cassette is scrubbed of secrets, and there is exactly one per recorded test."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from tests.recorded.conftest import CASSETTES, REDACTED, SCRUBBED_REQUEST_HEADERS

HERE = Path(__file__).parent
ALL = sorted(CASSETTES.rglob("*.yaml"))
# Key-shaped strings: documented key formats, bearer tokens, long hex secrets.
KEY_SHAPED = re.compile(
    r"al_live_[0-9A-Za-z]{6,}|al_test_[0-9A-Za-z]{6,}|\bog_[0-9A-Za-z]{8,}|Bearer\s+[A-Za-z0-9._-]{8,}"
)


def recorded_tests() -> set[tuple[str, str]]:
    """(module, test) for every test marked ``pytest.mark.vcr`` under tests/ (read from source)."""
    found = set()
    for path in HERE.parent.rglob("test_*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                "vcr" in ast.unparse(d) for d in node.decorator_list
            ):
                found.add((path.stem, node.name))
    return found


def test_there_are_cassettes() -> None:
    assert ALL, "no cassettes: record them (see tests/recorded/conftest.py)"


@pytest.mark.parametrize("path", ALL, ids=[str(p.relative_to(CASSETTES)) for p in ALL])
def test_cassette_has_no_secret(path: Path) -> None:
    text = path.read_text()
    assert not KEY_SHAPED.findall(text)
    for interaction in yaml.safe_load(text)["interactions"]:
        headers = {k.lower(): v for k, v in interaction["request"]["headers"].items()}
        for name in SCRUBBED_REQUEST_HEADERS:
            assert headers.get(name, [REDACTED]) == [REDACTED], f"{name} not scrubbed"


def test_one_cassette_per_recorded_test_and_no_strays() -> None:
    expected = recorded_tests()
    present = {(p.parent.name, p.stem) for p in ALL}
    assert expected - present == set(), "recorded tests without a cassette"
    assert present - expected == set(), "cassettes no test uses"
