"""Shared pieces of the benchmarks: an emulator in its own process, counters, tables.

The emulator always runs as a separate ``aurous-embed serve`` process so it never competes with the
client under test for the GIL; the numbers describe the client.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

KEY = "al_live_" + "be" * 32
#: Options that lift the emulator's default rate limits and balance.
UNLIMITED = ("--rpm", "1e9", "--rpm-burst", "1e9", "--tpm", "1e12", "--credits", "1e12")


@dataclass
class Server:
    process: subprocess.Popen[str]
    base_url: str
    api_key: str = KEY

    @property
    def host_port(self) -> tuple[str, int]:
        """The emulator's host and port (for clients below httpx)."""
        host, port = self.base_url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        return host, int(port)


@contextlib.contextmanager
def serve(*options: str) -> Iterator[Server]:
    """Start ``aurous-embed serve --port 0`` with ``options`` and yield its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "aurous_embed.cli", "serve", "--port", "0", "--key", KEY, *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if line.startswith("base URL:"):
                yield Server(process, line.split(":", 1)[1].strip())
                return
        raise RuntimeError("the emulator did not start")
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()


@dataclass
class Counter:
    """Counts answers by status (an httpx ``response`` event hook)."""

    statuses: dict[int, int] = field(default_factory=dict)

    def __call__(self, response: object) -> None:
        status = int(response.status_code)  # type: ignore[attr-defined]
        self.statuses[status] = self.statuses.get(status, 0) + 1

    async def async_hook(self, response: object) -> None:
        self(response)

    def add_retries(self, inputs: int, log: RetryLog) -> None:
        """Statuses seen by a client without hooks: one final answer per input plus its retries.

        Every logged rate-limit retry is a 429 (the emulator without faults sends no 503); other
        retries are counted under status 0.
        """
        self.statuses[200] = self.statuses.get(200, 0) + inputs
        self.statuses[429] = self.statuses.get(429, 0) + log.rate_limited
        self.statuses[0] = self.statuses.get(0, 0) + log.retries - log.rate_limited

    @property
    def rate_limited(self) -> int:
        return self.statuses.get(429, 0)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


class RetryLog(logging.Handler):
    """Counts the retries an aurous-embed client logs (at INFO), for clients built with defaults.

    An httpx event hook would need our own ``http_client``, which changes how the async client
    connects; the retry log line costs nothing on the fast path.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.retries = 0
        self.rate_limited = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.retries += 1
        if "rate limited" in record.getMessage():
            self.rate_limited += 1

    def __enter__(self) -> RetryLog:
        logger = logging.getLogger("aurous_embed")
        logger.addHandler(self)
        self._level = logger.level
        logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger("aurous_embed")
        logger.removeHandler(self)
        logger.setLevel(self._level)


def async_default() -> str:
    """What ``AsyncAurousClient`` sends with by default here (aiohttp when ``speedups`` is in)."""
    from aurous_embed._connections import uses_aiohttp

    return "default: aiohttp" if uses_aiohttp("auto") else "default: httpx"


def machine() -> str:
    """One line describing where the numbers come from.

    The load average is part of it: on a 2-CPU machine shared with other jobs the same benchmark
    ran 1.4x slower (the index first run: 54 to 57 s at load 8 to 27, 39 to 40 s at load under 1.5).
    """
    cpus = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{datetime.date.today().isoformat()}, {platform.system()} {platform.machine()}, "
        f"{cpus} CPUs, Python {platform.python_version()}, load average {load:.1f} at start"
    )


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (so the output pastes into README)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        return str(value)

    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    print(flush=True)
    return text
