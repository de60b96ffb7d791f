"""Shared pieces of the benchmarks: an emulator in its own process, counters, tables.

The emulator always runs as a separate ``aurous-embed serve`` process so it never competes with the
client under test for the GIL; the numbers describe the client.
"""

from __future__ import annotations

import contextlib
import datetime
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

    @property
    def rate_limited(self) -> int:
        return self.statuses.get(429, 0)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


def machine() -> str:
    """One line describing where the numbers come from."""
    cpus = os.cpu_count()
    return (
        f"{datetime.date.today().isoformat()}, {platform.system()} {platform.machine()}, "
        f"{cpus} CPUs, Python {platform.python_version()}"
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
