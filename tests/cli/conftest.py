"""Subprocess helpers for the CLI and example tests: a controlled environment with no Aurous key,
and a network guard (``offline/sitecustomize.py``) that fails and records any non-loopback access.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

OFFLINE = Path(__file__).parent / "offline"
# A hang guard only: every command here finishes in seconds.
TIMEOUT = 120

Run = Callable[..., "subprocess.CompletedProcess[str]"]


def clean_env(network_log: Path) -> dict[str, str]:
    """This process's environment without any AUROUS_* variable, with the network guard on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUROUS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(OFFLINE), env.get("PYTHONPATH")]))
    env["AUROUS_TEST_NETWORK_LOG"] = str(network_log)
    env["COLUMNS"] = "200"  # wide rich tables: a row is never folded over several lines
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def run_python(
    *args: str, cwd: Path, network_log: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python *args`` in ``cwd`` with the clean environment (plus ``env``), output captured."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**clean_env(network_log), **(env or {})},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=TIMEOUT,
        check=False,
    )


def assert_offline(network_log: Path) -> None:
    assert not network_log.exists(), (
        f"a subprocess tried to reach the network:\n{network_log.read_text()}"
    )


@pytest.fixture
def network_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the guard records blocked network access; it must not exist after the test."""
    log = tmp_path_factory.mktemp("guard") / "network.log"
    yield log
    assert_offline(log)


@pytest.fixture
def run(tmp_path: Path, network_log: Path) -> Run:
    """``run(*args, env=None)``: ``python *args`` in ``tmp_path`` with no key and no network."""

    def run_in_tmp(
        *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_python(*args, cwd=tmp_path, network_log=network_log, env=env)

    return run_in_tmp
