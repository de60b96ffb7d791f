"""The pytest plugin as users get it: a separate pytest run that uses the fixtures."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

USER_TESTS = """
import httpx

def test_fixture(aurous_emulator):
    response = httpx.post(
        f"{aurous_emulator.base_url}/embeddings",
        json={"model": "aurous-embed-vision-1.0", "input": "hello"},
        headers={"X-Api-Key": aurous_emulator.api_key},
    )
    assert response.status_code == 200
    assert aurous_emulator.stats.charges == 1

def test_clock_drives_the_fixture(aurous_clock, aurous_emulator):
    assert aurous_emulator.clock is aurous_clock

def test_factory(aurous_emulator_factory):
    emu = aurous_emulator_factory(native_dimension=1024, credits=1)
    headers = {"X-Api-Key": emu.api_key}
    assert httpx.get(f"{emu.base_url}/balance", headers=headers).json()["credits"] == 1

import pytest

@pytest.fixture(scope="module")
def shared(aurous_emulator_module):  # a module-scoped fixture may use it (ScopeMismatch before)
    return aurous_emulator_module

def test_module_scope_first(shared, aurous_emulator_session):
    httpx.post(
        f"{shared.base_url}/embeddings",
        json={"model": "aurous-embed-vision-1.0", "input": "one"},
        headers={"X-Api-Key": shared.api_key},
    )
    assert shared.stats.charges == 1
    assert aurous_emulator_session.running

def test_module_scope_second(shared, aurous_emulator_module, aurous_emulator_factory_module):
    assert shared is aurous_emulator_module
    assert shared.stats.charges == 1  # the same emulator as the test before
    assert aurous_emulator_factory_module(credits=5).running
"""


def test_plugin_is_registered_as_an_entry_point() -> None:
    points = importlib.metadata.entry_points(group="pytest11")
    assert [p.value for p in points if p.name == "aurous_embed"] == [
        "aurous_embed.testing.pytest_plugin"
    ]


def test_plugin_fixtures_work_in_a_user_suite(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    # Autoloading every plugin of this environment costs seconds (langsmith, hypothesis...);
    # "-p aurous_embed" loads ours by its entry-point name, as autoload would.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "aurous_embed",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout


def test_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "import aurous_embed.testing.pytest_plugin\n"
        "heavy = {'starlette', 'uvicorn', 'multipart', 'python_multipart'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
