"""The client's own cost against an independent stand-in server, side by side in one run.

The emulator is this project's code and spends CPU on every request (validation, tokens, vectors)
on the same machine as the client under test. The stand-in here is not the emulator: a bare
asyncio server in its own process that answers every ``POST`` with one pre-encoded body of the
API's shape (2,048 floats, the rate-limit headers) after ``L`` seconds, and does nothing else. What
is left is the client.

Rows, at N inputs, latency L, C = 32 in flight:

1. bare httpx: 32 threads posting back to back, each with its own ``httpx.Client`` (one keep-alive
   connection each), ``response.json()``, no retries, no checks (what a user would write);
2. aurous-embed sync ``embed_many`` (default settings);
3. aurous-embed async ``embed_many`` (default settings: aiohttp when the ``speedups`` extra is in);
4. aurous-embed async ``embed_many`` over httpx.

Every row runs ``--repeat`` times, the rows interleaved round by round (so what else the machine
does falls on every row alike); the table shows each row's median wall time, its ratio to the bare
row's median, and the client's CPU seconds per 1,000 requests (this process only: the stand-in runs
in its own).

Run: ``python -m benchmarks.standin [--n 1000] [--latency 0.1] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks._harness import KEY, Counter, Server, async_default, machine, table
from benchmarks.throughput import C, Result, corpus, httpx_threads, ours_async, ours_sync

DIMENSIONS = 2048


def _body() -> bytes:
    rng = random.Random(20261201)
    vector = [float(f"{rng.uniform(-0.01, 0.01):.7g}") for _ in range(DIMENSIONS)]
    answer = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "model": "aurous-embed-vision-1.0",
        "usage": {"prompt_tokens": 16, "total_tokens": 16},
    }
    return json.dumps(answer, separators=(",", ":")).encode()


def _head(length: int) -> bytes:
    reset = str(int(time.time()) + 60)
    lines = [
        "HTTP/1.1 200 OK",
        "content-type: application/json",
        "aurous-request-id: req_standin",
        "aurous-version: 2026-05-15",
        "x-ratelimit-limit: 1000000000",
        "x-ratelimit-remaining: 1000000000",
        f"x-ratelimit-reset: {reset}",
        "x-ratelimit-tpm-limit: 1000000000000",
        "x-ratelimit-tpm-remaining: 1000000000000",
        f"x-ratelimit-tpm-reset: {reset}",
        f"content-length: {length}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class _Answer(asyncio.Protocol):
    """HTTP/1.1 keep-alive, one request at a time per connection (no client here pipelines)."""

    def __init__(self, response: bytes, latency: float) -> None:
        self.response = response
        self.latency = latency
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            asyncio.get_running_loop().call_later(self.latency, self._answer)

    def _answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.response)


def _serve_forever(latency: float) -> None:
    body = _body()
    response = _head(len(body)) + body

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Answer(response, latency), "127.0.0.1", 0, backlog=1024
        )
        port = server.sockets[0].getsockname()[1]
        print(f"base URL: http://127.0.0.1:{port}/v1", flush=True)
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@contextlib.contextmanager
def standin(latency: float) -> Iterator[Server]:
    """Start the stand-in in its own process and yield it as a ``Server``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.standin", "--serve", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
        if not line.startswith("base URL:"):
            raise RuntimeError("the stand-in server did not start")
        yield Server(process, line.split(":", 1)[1].strip(), KEY)
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()


ROWS: list[tuple[str, Callable[[Server, list[str], Counter], Result]]] = [
    (f"bare httpx, {C} threads", httpx_threads),
    ("aurous-embed sync embed_many", ours_sync),
    (f"aurous-embed async embed_many ({async_default()})", ours_async),
    (
        'aurous-embed async embed_many, http_backend="httpx"',
        functools.partial(ours_async, backend="httpx"),
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve_forever(args.latency)
        return
    inputs = corpus(args.n)
    ideal = args.n * args.latency / C
    print(f"Machine: {machine()}; N = {args.n}, L = {args.latency * 1000:.0f} ms, C = {C}\n")
    walls: dict[str, list[float]] = {name: [] for name, _ in ROWS}
    cpus: dict[str, list[float]] = {name: [] for name, _ in ROWS}
    failures: dict[str, int] = {name: 0 for name, _ in ROWS}
    with standin(args.latency) as server:
        for _name, run in ROWS:  # untimed warm-up: imports and first-call set-up
            run(server, inputs[:C], Counter())
        for _ in range(args.repeat):
            for name, run in ROWS:
                gc.collect()
                started, cpu = time.perf_counter(), time.process_time()
                failed, received = run(server, inputs, Counter())
                walls[name].append(time.perf_counter() - started)
                cpus[name].append(time.process_time() - cpu)
                failures[name] += failed
                del received
    for name, _ in ROWS:
        print(f"  {name}: " + ", ".join(f"{w:.2f}" for w in walls[name]) + " s", flush=True)
    bare = statistics.median(walls[ROWS[0][0]])
    rows: list[list[Any]] = []
    for name, _ in ROWS:
        wall = statistics.median(walls[name])
        cpu = statistics.median(cpus[name]) * 1000 / args.n
        rows.append([name, wall, wall / ideal, wall / bare, cpu, failures[name]])
    table(
        f"Against a stand-in server: N = {args.n}, L = {args.latency * 1000:.0f} ms, "
        f"N·L/C = {ideal:.2f} s, median of {args.repeat}",
        ["client", "wall s", "÷ N·L/C", "÷ bare httpx", "client CPU s per 1,000", "failures"],
        rows,
    )


if __name__ == "__main__":
    main()
