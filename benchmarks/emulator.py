"""Throughput of the local emulator: requests/s at zero latency, and 256 in flight at 100 ms.

Run: ``python -m benchmarks.emulator [--requests 3000] [--concurrency 16]``

The emulator runs in its own process (``aurous-embed serve``), so the load generator never
competes with it for the GIL. The load generator is a minimal keep-alive HTTP/1.1 client on
asyncio streams (no httpx, no JSON parsing of the 2048-float answers): the numbers measure the
emulator, not a client. Every request embeds a distinct text, so no cache hides the work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass

from benchmarks._harness import KEY, UNLIMITED, serve

MODEL = "aurous-embed-vision-1.0"


@dataclass
class Result:
    name: str
    requests: int
    in_flight: int
    errors: int
    wall: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.wall

    def row(self) -> str:
        p50 = statistics.median(self.latencies) * 1000
        p99 = sorted(self.latencies)[int(len(self.latencies) * 0.99) - 1] * 1000
        return (
            f"| {self.name:<40} | {self.in_flight:>9} | {self.requests:>8} | {self.errors:>6} | "
            f"{self.wall:>7.2f} | {self.rps:>8.0f} | {p50:>7.1f} | {p99:>7.1f} |"
        )


def request_bytes(method: str, path: str, payload: dict[str, object] | None) -> bytes:
    body = b"" if payload is None else json.dumps(payload).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: emulator\r\nX-Api-Key: {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def worker(
    host: str, port: int, requests: list[bytes], latencies: list[float], statuses: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for raw in requests:
            started = time.perf_counter()
            writer.write(raw)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses.append(int(status_line.split()[1]))
    finally:
        writer.close()


async def run_load(
    host: str, port: int, requests: list[bytes], in_flight: int
) -> tuple[float, list[float], list[int]]:
    latencies: list[float] = []
    statuses: list[int] = []
    shares = [requests[i::in_flight] for i in range(in_flight)]
    started = time.perf_counter()
    await asyncio.gather(*(worker(host, port, share, latencies, statuses) for share in shares))
    return time.perf_counter() - started, latencies, statuses


def scenario(name: str, in_flight: int, requests: list[bytes], *server_args: str) -> Result:
    with serve(*UNLIMITED, *server_args) as server:
        host, port = server.host_port
        warmup = [request_bytes("GET", "/v1/balance", None)] * in_flight
        asyncio.run(run_load(host, port, warmup, in_flight))
        wall, latencies, statuses = asyncio.run(run_load(host, port, requests, in_flight))
    errors = sum(1 for s in statuses if s != 200) + (len(requests) - len(statuses))
    return Result(name, len(requests), in_flight, errors, wall, latencies)


def embeddings(n: int) -> list[bytes]:
    return [
        request_bytes(
            "POST",
            "/v1/embeddings",
            {"model": MODEL, "input": f"Product {i}: a hand-stitched leather bag"},
        )
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    n, c = args.requests, args.concurrency
    results = [
        scenario(
            "POST /v1/embeddings/estimate, no latency",
            c,
            [
                request_bytes("POST", "/v1/embeddings/estimate", {"model": MODEL, "input": f"t{i}"})
                for i in range(n)
            ],
        ),
        scenario("POST /v1/embeddings, no latency", c, embeddings(n)),
        scenario(
            "POST /v1/embeddings, 100 ms latency",
            256,
            embeddings(max(n, 256 * 8)),
            "--latency",
            "0.1",
        ),
    ]
    print("Emulator in its own process; raw asyncio keep-alive client; distinct inputs.")
    print(
        f"| {'scenario':<40} | in flight | requests | errors |  wall s |    req/s | p50 ms  | p99 ms  |"
    )
    print(
        "|"
        + "|".join(["-" * 42, "-" * 11, "-" * 10, "-" * 8, "-" * 9, "-" * 10, "-" * 9, "-" * 9])
        + "|"
    )
    for result in results:
        print(result.row())


if __name__ == "__main__":
    main()
