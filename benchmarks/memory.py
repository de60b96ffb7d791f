"""Peak memory of ``embed_iter`` streaming a generator of 100,000 inputs (emulator at zero latency).

Run: ``python -m benchmarks.memory [--n 100000]``. Peak RSS is the client process's high-water mark
(``getrusage``); the emulator runs in its own process.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Iterator

from aurous_embed import AurousClient
from benchmarks._harness import UNLIMITED, machine, serve, table


def rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 1024 / 1024


def generated(n: int) -> Iterator[str]:
    for i in range(n):
        yield f"streamed chunk {i}: generated on the fly, never held in a list"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    print(f"Machine: {machine()}; N = {args.n}\n")
    with (
        serve(*UNLIMITED) as server,
        AurousClient(server.api_key, base_url=server.base_url) as client,
    ):
        client.embed("warm up")
        before = rss_mb()
        started = time.perf_counter()
        count, checksum = 0, 0.0
        for result in client.embed_iter(generated(args.n)):
            count += 1
            checksum += result.embedding[0]
            if count % 20_000 == 0:
                print(f"  {count:,} done, peak RSS {rss_mb():.0f} MB", flush=True)
        wall = time.perf_counter() - started
    table(
        f"Scenario 4: embed_iter over {args.n:,} generated inputs",
        [
            "results",
            "vector length",
            "wall s",
            "requests/s",
            "peak RSS before MB",
            "peak RSS after MB",
        ],
        [[f"{count:,}", len(result.embedding), wall, count / wall, before, rss_mb()]],
    )


if __name__ == "__main__":
    main()
