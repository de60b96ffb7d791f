"""Client CPU per 1,000 requests: aurous-embed vs raw httpx, against the emulator at zero latency.

Each pairing does the same work (POST one input, parse the JSON answer) the same way (sequential,
32 threads, or 32 asyncio tasks). The async client runs twice: with its default (aiohttp when the
``speedups`` extra is installed) and over httpx, like the raw row. Only the client process's CPU is
counted (the emulator runs in its own process). Every configuration runs ``--repeat`` times; the
best run counts.

Run: ``python -m benchmarks.overhead [--n 1000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from aurous_embed import AsyncAurousClient, AurousClient
from aurous_embed._connections import HTTPBackend
from benchmarks._harness import UNLIMITED, Server, async_default, machine, serve, table

MODEL = "aurous-embed-vision-1.0"
C = 32


def raw_sequential(server: Server, inputs: list[str]) -> None:
    with httpx.Client(timeout=60) as http:
        for text in inputs:
            http.post(
                f"{server.base_url}/embeddings",
                json={"model": MODEL, "input": text},
                headers={"X-Api-Key": server.api_key},
            ).json()


def ours_sequential(server: Server, inputs: list[str]) -> None:
    with AurousClient(server.api_key, base_url=server.base_url) as client:
        for text in inputs:
            client.embed(text)


def raw_threads(server: Server, inputs: list[str]) -> None:
    limits = httpx.Limits(max_connections=2 * C, max_keepalive_connections=2 * C)
    with httpx.Client(timeout=60, limits=limits) as http, ThreadPoolExecutor(C) as pool:

        def one(text: str) -> object:
            return http.post(
                f"{server.base_url}/embeddings",
                json={"model": MODEL, "input": text},
                headers={"X-Api-Key": server.api_key},
            ).json()

        list(pool.map(one, inputs))


def ours_threads(server: Server, inputs: list[str]) -> None:
    with AurousClient(server.api_key, base_url=server.base_url) as client:
        client.embed_many(inputs)


def raw_async(server: Server, inputs: list[str]) -> None:
    async def run() -> None:
        limits = httpx.Limits(max_connections=2 * C, max_keepalive_connections=2 * C)
        gate = asyncio.Semaphore(C)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:

            async def one(text: str) -> object:
                async with gate:
                    response = await http.post(
                        f"{server.base_url}/embeddings",
                        json={"model": MODEL, "input": text},
                        headers={"X-Api-Key": server.api_key},
                    )
                    return response.json()

            await asyncio.gather(*(one(t) for t in inputs))

    asyncio.run(run())


def ours_async(server: Server, inputs: list[str], backend: HTTPBackend = "auto") -> None:
    async def run() -> None:
        async with AsyncAurousClient(
            server.api_key, base_url=server.base_url, http_backend=backend
        ) as client:
            await client.embed_many(inputs)

    asyncio.run(run())


PAIRS: list[
    tuple[str, Callable[[Server, list[str]], None], Callable[[Server, list[str]], None]]
] = [
    ("sequential (embed in a loop)", raw_sequential, ours_sequential),
    (f"{C} threads (sync embed_many)", raw_threads, ours_threads),
    (f"{C} tasks (async embed_many, {async_default()})", raw_async, ours_async),
    (
        f'{C} tasks (async embed_many, http_backend="httpx")',
        raw_async,
        functools.partial(ours_async, backend="httpx"),
    ),
]


def cpu_per_1000(
    run: Callable[[Server, list[str]], None], server: Server, inputs: list[str], repeat: int
) -> tuple[float, float]:
    best_cpu, best_wall = float("inf"), float("inf")
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        run(server, inputs)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    scale = 1000 / len(inputs)
    return best_cpu * scale, best_wall * scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    inputs = [f"overhead probe {i}: a short passage" for i in range(args.n)]
    print(f"Machine: {machine()}; N = {args.n}, best of {args.repeat}\n")
    rows = []
    with serve(*UNLIMITED) as server:
        ours_sequential(server, inputs[:50])  # warm up both sides
        raw_sequential(server, inputs[:50])
        for name, raw, ours in PAIRS:
            raw_cpu, raw_wall = cpu_per_1000(raw, server, inputs, args.repeat)
            our_cpu, our_wall = cpu_per_1000(ours, server, inputs, args.repeat)
            rows.append([name, raw_cpu, our_cpu, f"{our_cpu / raw_cpu:.2f}×", raw_wall, our_wall])
            print(f"  {name}: raw {raw_cpu:.3f} s, ours {our_cpu:.3f} s CPU per 1,000", flush=True)
    table(
        "Scenario 3: client CPU seconds per 1,000 requests (emulator at zero latency)",
        [
            "mode",
            "raw httpx CPU s",
            "aurous-embed CPU s",
            "ratio",
            "raw wall s",
            "aurous-embed wall s",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
