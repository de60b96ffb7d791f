"""``aurous-embed serve`` as a real subprocess: start, read the URL, one request, Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.emulator.helpers import body

KEY = "al_live_" + "ab" * 32


@pytest.fixture
def server(
    sigint_raises_keyboard_interrupt: None,  # the server inherits it: Ctrl-C reaches it
) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aurous_embed.cli",
            "serve",
            "--port",
            "0",
            "--key",
            KEY,
            "--credits",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines: dict[str, str] = {}
    try:
        while "Press Ctrl-C" not in lines.get("last", ""):
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else "server exited"
            key, _, value = line.partition(":")
            lines[key.strip()] = value.strip()
            lines["last"] = line
            if line.startswith("export "):
                lines["export"] = line.strip()
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()
        if process.stderr:
            process.stderr.close()


def test_serve_prints_url_and_key_and_stops_on_ctrl_c(
    server: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    process, lines = server
    base_url = lines["base URL"]
    assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
    assert lines["API key"].startswith(KEY)
    assert lines["export"] == f"export AUROUS_BASE_URL={base_url} AUROUS_API_KEY={KEY}"
    response = httpx.post(f"{base_url}/embeddings", json=body("hello"), headers={"X-Api-Key": KEY})
    assert response.status_code == 200
    assert httpx.get(f"{base_url}/balance", headers={"X-Api-Key": KEY}).json()["credits"] < 5
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
    assert process.stdout is not None
    assert "stopped after 2 requests, 1 charges" in process.stdout.read()


def test_serve_sigterm_also_exits_0(server: tuple[subprocess.Popen[str], dict[str, str]]) -> None:
    process, _ = server
    process.terminate()
    assert process.wait(timeout=10) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "allow-remote"),
        (["--fail-statuses", "404"], "statuses"),
        (["--key", "k:admin", "--fail-rate", "2"], "error_rate"),
    ],
)
def test_serve_rejects_bad_settings(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aurous_embed.cli", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_serve_usage(capsys: pytest.CaptureFixture[str]) -> None:
    from aurous_embed.testing._serve import serve_command

    assert serve_command(["--help"]) == 0
    assert "--fail-rate" in capsys.readouterr().out
    assert serve_command(["--definitely-not-an-option"]) == 2


def test_a_port_out_of_range_is_one_line_and_exit_2() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "aurous_embed.cli", "serve", "--port", "99999"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "aurous-embed serve: port must be 0 to 65535 (0: any free port), got 99999"
    ]
