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


def test_a_failed_live_recording_keeps_the_cassette_and_never_prints_the_key(
    tmp_path: Path,
) -> None:
    """``AUROUS_RECORD_LIVE=1 ... --record-mode=rewrite`` against an API that cannot be reached:
    the run fails, the committed cassette is left as it was, and the key appears nowhere."""
    import os
    import shutil
    import subprocess
    import sys

    root = HERE.parents[1]
    copy = tmp_path / "repo"
    shutil.copytree(root / "tests", copy / "tests")
    shutil.copytree(CASSETTES, copy / "cassettes")
    cassette = copy / "cassettes" / "test_core_recorded" / "test_estimate_and_models.yaml"
    before = cassette.read_bytes()
    key = "al_live_" + "5ec7e7" * 10 + "abcd"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUROUS_")}
    env.update(
        AUROUS_RECORD_LIVE="1",
        AUROUS_API_KEY=key,
        AUROUS_BASE_URL="http://127.0.0.1:9/v1",  # nothing listens on the discard port
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/recorded/test_core_recorded.py::test_estimate_and_models",
            "--record-mode=rewrite",
            "-p",
            "no:cacheprovider",
            "--showlocals",  # the strictest case: every argument of every frame printed
            "-q",
        ],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0, result.stdout  # the recording failed ...
    assert cassette.read_bytes() == before  # ... and the committed cassette is untouched
    assert key not in result.stdout + result.stderr
    assert "5ec7e7" not in result.stdout + result.stderr


def test_the_documented_rerecord_command_rewrites_a_cassette(tmp_path: Path) -> None:
    """README's re-record command works (against the emulator), on a copy of the tests, and the
    rewritten cassette is scrubbed: a recording helper that cannot even be imported is caught."""
    import shutil
    import subprocess
    import sys

    root = HERE.parents[1]
    shutil.copytree(
        root / "tests", tmp_path / "tests", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(CASSETTES, tmp_path / "cassettes")
    shutil.copy(root / "pyproject.toml", tmp_path / "pyproject.toml")
    cassette = tmp_path / "cassettes" / "test_core_recorded" / "test_embed_and_embed_many.yaml"
    before = cassette.read_text()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/recorded/test_core_recorded.py::test_embed_and_embed_many",
            "--record-mode=rewrite",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout
    after = cassette.read_text()
    assert after != before  # a new recording (new request ids), not the old file left alone
    assert REDACTED in after and not KEY_SHAPED.search(after)
