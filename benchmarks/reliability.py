"""The fault table: 2,000 inputs through an emulator that fails on purpose, sync and async.

Run: ``python -m benchmarks.reliability [--n 2000] [--concurrency 8] [--timeout 0.5] [--slow 1.0]``
(``--only-nearby`` prints only the second table).

A second table takes the promises to nearby conditions: answers lost after the server charged,
under a budget (every answer, then half of them); a 2-second storm of 429s with
``Retry-After: 0``; successes cut mid-body with no ``Content-Length`` (a ``CuttingProxy`` in
front of the emulator). Each row shows charges against inputs and credits against the budget.

The emulator injects 10% 500/502/503, 5% 429 bursts, 2% connection resets after the answer was
charged and 1% responses slower than the client's timeout (``tests/reliability/test_faults.py``
runs the same mix). Unlike the other benchmarks, the emulator runs in this process: the table
reads its fault counters and charge ledger, which a separate ``aurous-embed serve`` does not
expose. The client's retry waits are fast-forwarded 50x (a clock whose sleeps are 1/50 of what the
client asks for; its decisions are unchanged); the timeout and the slow responses are real.
Reference vectors come from a fault-free emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from aurous_embed import AsyncAurousClient, AurousClient, BatchEmbeddingError, EmbeddingResult
from aurous_embed._config import CONFLICT_MAX_WAIT
from aurous_embed.testing import CuttingProxy, Emulator, EmulatorStats, FastClock, Faults
from benchmarks._harness import Counter, machine, table

KINDS = ("status=500", "status=502", "status=503", "rate_limit", "reset", "slow")


@dataclass
class Run:
    name: str
    stats: EmulatorStats
    results: list[EmbeddingResult]
    attempts: int
    statuses: dict[int, int]
    client_credits: float
    wall: float


def unlimited(**options: Any) -> Emulator:
    """An emulator without rate or credit limits and with short (64-float) vectors."""
    return Emulator(rpm=1e9, rpm_burst=1e9, tpm=1e12, credits=1e9, native_dimension=64, **options)


def reference(inputs: Sequence[str], concurrency: int) -> list[list[float]]:
    emulator = unlimited()  # fault-free, mounted in-process (no socket needed)

    async def embed_all() -> list[EmbeddingResult]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator.app)) as http:
            client = AsyncAurousClient(
                emulator.api_key, base_url="http://127.0.0.1/v1", http_client=http
            )
            return await client.embed_many(inputs, concurrency=concurrency)

    return [result.embedding for result in asyncio.run(embed_all())]


def run(mode: str, inputs: Sequence[str], faults: Faults, args: argparse.Namespace) -> Run:
    clock = FastClock(args.speed)
    counter = Counter()
    attempts = 0

    def count_attempt(request: httpx.Request) -> None:
        nonlocal attempts
        attempts += 1

    async def acount_attempt(request: httpx.Request) -> None:
        count_attempt(request)

    with unlimited(faults=faults, clock=clock) as emulator:
        options = {
            "base_url": emulator.base_url,
            "max_retries": args.max_retries,
            "clock": clock,
        }
        started = time.perf_counter()
        if mode == "sync":
            http = httpx.Client(
                timeout=args.timeout,
                event_hooks={"request": [count_attempt], "response": [counter]},
            )
            with http, AurousClient(emulator.api_key, http_client=http, **options) as client:
                results = client.embed_many(inputs, concurrency=args.concurrency)
                credits = client.usage.credits_charged
        else:

            async def embed_all() -> tuple[list[EmbeddingResult], float]:
                ahttp = httpx.AsyncClient(
                    timeout=args.timeout,
                    event_hooks={"request": [acount_attempt], "response": [counter.async_hook]},
                )
                async with ahttp:
                    aclient = AsyncAurousClient(emulator.api_key, http_client=ahttp, **options)
                    found = await aclient.embed_many(inputs, concurrency=args.concurrency)
                    return found, aclient.usage.credits_charged

            results, credits = asyncio.run(embed_all())
        wall = time.perf_counter() - started
        return Run(mode, emulator.stats, results, attempts, counter.statuses, credits, wall)


@dataclass
class Nearby:
    """One row of the nearby-conditions table."""

    condition: str
    mode: str
    inputs: int
    embedded: int
    failed: int
    requests: int
    rate_limited: int
    charges: int
    charged: float
    budget: float | None
    client_unconfirmed: float


def nearby(
    mode: str,
    condition: str,
    inputs: Sequence[str],
    args: argparse.Namespace,
    *,
    faults: Faults | None = None,
    budget_items: int | None = None,
    storm: float = 0.0,
    cut_rate: float = 0.0,
) -> Nearby:
    clock = FastClock(args.speed)
    with unlimited() as probe, AurousClient(probe.api_key, base_url=probe.base_url) as client:
        price = client.embed(inputs[0]).usage.credits_charged  # the inputs cost about the same
    with unlimited(faults=faults or Faults(), clock=clock) as emulator:
        budget = None if budget_items is None else (budget_items + 0.5) * price
        proxy = CuttingProxy(emulator.base_url, cut_rate=cut_rate, seed=args.seed)
        options: dict[str, Any] = {
            "base_url": proxy.base_url,
            "clock": clock,
            "max_retries": args.max_retries,
            "max_credits": budget,
        }
        if storm:
            emulator.rate_limit_storm(storm, retry_after=0)

        def outcome(error: BatchEmbeddingError | None, found: Sequence[object]) -> int:
            return len(found) if error is None else sum(r is not None for r in error.results)

        error: BatchEmbeddingError | None = None
        found: Sequence[object] = ()
        with proxy:
            if mode == "sync":
                with AurousClient(emulator.api_key, **options) as client:
                    try:
                        found = client.embed_many(inputs, concurrency=args.concurrency)
                    except BatchEmbeddingError as exc:
                        error = exc
                    usage = client.usage
            else:

                async def embed_all() -> Any:
                    async with AsyncAurousClient(emulator.api_key, **options) as aclient:
                        try:
                            got: Any = await aclient.embed_many(
                                inputs, concurrency=args.concurrency
                            )
                        except BatchEmbeddingError as exc:
                            got = exc
                        return got, aclient.usage

                got, usage = asyncio.run(embed_all())
                if isinstance(got, BatchEmbeddingError):
                    error = got
                else:
                    found = got
        stats = emulator.stats
        embedded = outcome(error, found)
        return Nearby(
            condition,
            mode,
            len(inputs),
            embedded,
            len(inputs) - embedded,
            stats.requests,
            stats.by_status.get(429, 0),
            stats.charges,
            stats.credits_charged,
            budget,
            usage.unconfirmed_credits,
        )


def nearby_table(args: argparse.Namespace) -> None:
    """The promises under nearby conditions (see the module docstring)."""
    inputs = [f"item {i}: a distinct product description, number {i}" for i in range(args.n)]
    rows: list[Nearby] = []
    for mode in ("sync", "async"):
        rows += [
            nearby(
                mode,
                "every answer lost after the charge, budget 25 inputs",
                inputs[:200],
                args,
                faults=Faults(reset_rate=1.0, seed=args.seed),
                budget_items=25,
            ),
            nearby(
                mode,
                "half the answers lost after the charge, budget 100 inputs",
                inputs[:400],
                args,
                faults=Faults(reset_rate=0.5, seed=args.seed),
                budget_items=100,
            ),
            nearby(mode, "2 s of 429 with Retry-After: 0 at the start", inputs, args, storm=2.0),
            nearby(mode, "10% of successes cut mid-body", inputs, args, cut_rate=0.1),
        ]

    def budget(r: Nearby) -> str:
        return "-" if r.budget is None else f"{r.charged / r.budget:.2f}"

    table(
        "Promises under nearby conditions",
        [
            "condition",
            "client",
            "inputs",
            "embedded",
            "failed",
            "requests",
            "429s",
            "charges",
            "credits ÷ budget",
            "unconfirmed credits (client)",
        ],
        [
            [
                r.condition,
                r.mode,
                r.inputs,
                r.embedded,
                r.failed,
                r.requests,
                r.rate_limited,
                r.charges,
                budget(r),
                f"{r.client_unconfirmed:.6f}",
            ]
            for r in rows
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=0.5, help="client timeout, seconds")
    parser.add_argument("--slow", type=float, default=1.0, help="slow response, seconds")
    parser.add_argument("--max-retries", type=int, default=6)
    parser.add_argument("--speed", type=float, default=50.0, help="retry-wait fast-forward")
    parser.add_argument("--seed", type=int, default=20260515)
    parser.add_argument("--only-nearby", action="store_true", help="only the second table")
    args = parser.parse_args()
    if CONFLICT_MAX_WAIT / args.speed <= args.slow - args.timeout:
        parser.error("--speed too high: the client would stop waiting for a slow first attempt")

    if args.only_nearby:
        print(f"Machine: {machine()}\n")
        nearby_table(args)
        return
    inputs = [f"item {i}: a distinct product description, number {i}" for i in range(args.n)]
    faults = Faults(
        error_rate=0.10,
        error_statuses=(500, 502, 503),
        rate_limit_rate=0.05,
        reset_rate=0.02,
        slow_rate=0.01,
        slow_seconds=args.slow,
        seed=args.seed,
    )
    print(f"Machine: {machine()}")
    print(
        f"N = {args.n:,}; concurrency {args.concurrency}; timeout {args.timeout}s; slow "
        f"{args.slow}s; max_retries {args.max_retries}; retry waits fast-forwarded "
        f"{args.speed:g}x\n",
        flush=True,
    )
    expected = reference(inputs, args.concurrency)
    runs = [run(mode, inputs, faults, args) for mode in ("sync", "async")]

    table(
        "Faults injected by the emulator",
        ["fault", *(r.name for r in runs)],
        [
            ["500 internal_error", *(r.stats.faults.get("status=500", 0) for r in runs)],
            [
                "502 embeddings_provider_unknown_error",
                *(r.stats.faults.get("status=502", 0) for r in runs),
            ],
            ["503 provider_rate_limited", *(r.stats.faults.get("status=503", 0) for r in runs)],
            [
                "429 too_many_requests (bursts)",
                *(r.stats.faults.get("rate_limit", 0) for r in runs),
            ],
            ["connection reset after charging", *(r.stats.faults.get("reset", 0) for r in runs)],
            ["slower than the timeout", *(r.stats.faults.get("slow", 0) for r in runs)],
            ["total", *(sum(r.stats.faults.get(k, 0) for k in KINDS) for r in runs)],
        ],
    )

    def correct(r: Run) -> str:
        good = sum(res.embedding == ref for res, ref in zip(r.results, expected, strict=True))
        return f"{good:,} / {len(expected):,}"

    def credits(r: Run) -> str:
        return f"{r.client_credits:.6f} / {r.stats.credits_charged:.6f}"

    table(
        "What the client made of them",
        ["", *(r.name for r in runs)],
        [
            ["inputs", *(len(r.results) for r in runs)],
            ["attempts sent", *(r.attempts for r in runs)],
            ["retries", *(r.attempts - len(r.results) for r in runs)],
            [
                "409 (retry met its own first attempt)",
                *(r.stats.by_status.get(409, 0) for r in runs),
            ],
            ["replays served", *(r.stats.replays for r in runs)],
            ["results that are replays", *(sum(x.replayed for x in r.results) for r in runs)],
            ["charges (ledger rows)", *(r.stats.charges for r in runs)],
            [
                "idempotency keys charged twice",
                *(sum(v > 1 for v in r.stats.charges_by_idempotency_key.values()) for r in runs),
            ],
            ["vectors correct, in order", *(correct(r) for r in runs)],
            ["credits: client / emulator", *(credits(r) for r in runs)],
            ["wall seconds", *(r.wall for r in runs)],
        ],
    )
    nearby_table(args)


if __name__ == "__main__":
    main()
