"""Re-embedding an unchanged 10,000-item corpus with the SQLite cache: requests, credits, lookups/s.

Run: ``python -m benchmarks.cache [--n 10000]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx

from aurous_embed import AurousClient
from aurous_embed._cache import SQLiteCache, cache_key
from aurous_embed._config import DEFAULT_MODEL as MODEL
from benchmarks._harness import UNLIMITED, Counter, machine, serve, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    corpus = [f"corpus passage {i}: unchanged between runs" for i in range(args.n)]
    print(f"Machine: {machine()}; N = {args.n:,}\n")
    rows = []
    runs = [
        ("first run (cold cache)", False),
        ("second run (unchanged corpus)", False),
        ("third run, as_numpy=True", True),
    ]
    with tempfile.TemporaryDirectory() as tmp, serve(*UNLIMITED) as server:
        path = Path(tmp) / "cache.sqlite"
        for label, as_numpy in runs:
            counter = Counter()
            http = httpx.Client(timeout=60, event_hooks={"response": [counter]})
            with AurousClient(
                server.api_key, base_url=server.base_url, http_client=http, cache=path
            ) as client:
                started = time.perf_counter()
                results = client.embed_many(corpus, as_numpy=as_numpy)
                wall = time.perf_counter() - started
                stats, usage = client.cache_stats, client.usage
            http.close()
            assert len(results) == args.n
            # Each run stands alone (a re-run in a new process): the previous run's 10,000 results
            # would otherwise stay alive and make every garbage collection of the next run slower.
            del results
            rows.append(
                [
                    label,
                    counter.total,
                    f"{usage.credits_charged:.4f}",
                    stats.hits,
                    wall,
                    f"{args.n / wall:,.0f}",
                ]
            )
            print(f"  {label}: {counter.total} requests, {wall:.2f} s", flush=True)
        # The lookups alone: the cache key of each input and the SQLite query, no result objects.
        cache = SQLiteCache(path)
        started = time.perf_counter()
        keys = [
            key
            for text in corpus
            if (
                key := cache_key(
                    text,
                    endpoint=server.base_url,
                    model=MODEL,
                    api_version=None,
                    dimensions=None,
                    cache_urls=False,
                )
            )
        ]
        found = sum(len(cache.get_many(keys[i : i + 512])) for i in range(0, len(keys), 512))
        wall = time.perf_counter() - started
        cache.close()
        assert found == args.n
        rows.append(
            ["cache lookups only (key + SQLite)", 0, "-", found, wall, f"{args.n / wall:,.0f}"]
        )
    table(
        f"Scenario 5: re-embedding an unchanged {args.n:,}-item corpus",
        ["run", "requests sent", "credits", "cache hits", "wall s", "inputs/s"],
        rows,
    )


if __name__ == "__main__":
    main()
