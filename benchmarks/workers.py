"""Several worker processes on one key: do they share the team's rate limit, or fight over it?

The emulator runs in its own process at ``--rpm`` requests/min (burst 120, latency 100 ms); every
worker is a separate Python process with its own client (nothing shared but the server's
headers), started ahead of time and released at the same instant (or at its ``join`` time), each
embedding its own inputs with ``embed_many`` and default settings.

Scenarios:

* ``together``: N workers x M inputs each, all at once. The limit is N·M/R (R = requests/s).
* ``join-leave``: two long workers from the start, a short one that finishes (leaves) early and
  one that joins mid-run; the table shows each worker's accepted requests per 2 seconds.
* ``first-wave``: one fresh process, sync and async, against a bucket of 10 at 120 RPM (full, or
  just drained by another process) and one of 120 at 600 RPM: how many of its first requests
  bounce, and the wall time against the ideal.

``--before PATH`` runs every scenario a second time, side by side in the same run, with the
workers importing ``aurous_embed`` from ``PATH`` (e.g. a checkout of main's ``src``).
``--machine-shared`` adds the same rows with ``$AUROUS_RATE_LIMIT_DIR`` set (a fresh directory per
row): the workers then keep one rate-limit model in a file there instead of each their own.

Run: ``python -m benchmarks.workers [--workers 4 16] [--n 200] [--rpm 1200] [--client sync]
[--scenario together join-leave first-wave] [--before ../main/src] [--machine-shared]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks._harness import KEY, Server, machine, serve, table

MODEL = "aurous-embed-vision-1.0"
#: A "src" that names a directory for $AUROUS_RATE_LIMIT_DIR instead (the --machine-shared rows).
SHARED = "machine-shared:"
LATENCY = 0.1
BURST = 120  # the emulator's default burst


def _texts(worker: int, n: int) -> list[str]:
    return [f"worker {worker} chunk {i}: a short passage about product {i % 97}" for i in range(n)]


def worker_main(args: argparse.Namespace) -> None:
    """One worker process: wait for the start time, embed, print what it saw as JSON."""
    from aurous_embed import AsyncAurousClient, AurousClient, BatchEmbeddingError

    try:
        from aurous_embed import _pacing as pacing
    except ImportError:  # the code of --before, from when the pacer lived in the engine
        from aurous_embed import _batch as pacing  # type: ignore[no-redef]

    answers: list[tuple[float, int]] = []
    observe = pacing.Pacer.observe

    def recording(self: Any, status: int, *rest: Any, **kw: Any) -> None:
        answers.append((time.time(), status))  # every answer passes here (it carries headers)
        observe(self, status, *rest, **kw)

    pacing.Pacer.observe = recording  # type: ignore[method-assign]
    inputs = _texts(args.index, args.n)
    failures = 0
    time.sleep(max(0.0, args.start_at - time.time()))
    started = time.time()
    if args.client == "sync":
        with AurousClient(KEY, base_url=args.base_url) as client:
            try:
                client.embed_many(inputs)
            except BatchEmbeddingError as exc:
                failures = len(exc.errors)
    else:

        async def run() -> int:
            async with AsyncAurousClient(KEY, base_url=args.base_url) as client:
                try:
                    await client.embed_many(inputs)
                except BatchEmbeddingError as exc:
                    return len(exc.errors)
                return 0

        failures = asyncio.run(run())
    ended = time.time()
    print(
        json.dumps({"start": started, "end": ended, "failures": failures, "answers": answers}),
        flush=True,
    )


@dataclass
class Worker:
    index: int
    n: int
    delay: float  # seconds after the common start


def run_workers(
    server: Server,
    plan: Sequence[Worker],
    client: str,
    src: str | None,
    *,
    before_start: Callable[[Server], object] | None = None,
) -> list[dict[str, Any]]:
    """Start every worker (imports done before the common start), wait, collect their reports."""
    env = dict(os.environ)
    if src is not None and src.startswith(SHARED):
        env["AUROUS_RATE_LIMIT_DIR"] = src.removeprefix(SHARED)
        src = None
    if src is not None:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    # room for every interpreter to start and import on 2 CPUs before the common start
    start_at = time.time() + 3.0 + 0.4 * len(plan)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.workers",
                "--worker",
                str(w.index),
                "--n",
                str(w.n),
                "--base-url",
                server.base_url,
                "--start-at",
                str(start_at + w.delay),
                "--client",
                client,
            ],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for w in plan
    ]
    if before_start is not None:
        time.sleep(max(0.0, start_at - 1.0 - time.time()))
        before_start(server)
    reports = []
    for proc in procs:
        out, _ = proc.communicate()
        report = json.loads(out.strip().splitlines()[-1])
        report["t0"] = start_at
        reports.append(report)
    if os.environ.get("WORKERS_DUMP"):  # every answer's time and status, for a closer look
        with open(os.environ["WORKERS_DUMP"], "a") as dump:
            dump.write(json.dumps(reports) + "\n")
    return reports


def summarise(reports: list[dict[str, Any]], total: int, rate: float) -> dict[str, Any]:
    t0 = reports[0]["t0"]
    wall = max(r["end"] for r in reports) - t0
    statuses = [s for r in reports for _, s in r["answers"]]
    limited = sum(s == 429 for s in statuses)
    return {
        "wall": wall,
        "ideal": total / rate,
        "ratio": wall / (total / rate),
        # the bucket starts full: its burst goes at once, the rest at the refill rate
        "floor": wall / ((total - BURST) / rate),
        "sent": len(statuses),
        "429": limited,
        "share429": limited / max(1, len(statuses)),
        "failures": sum(r["failures"] for r in reports),
        # the last worker to finish against the first (equal work: equal shares make it 1)
        "spread": wall / max(1e-9, min(r["end"] for r in reports) - t0),
    }


def together(
    server: Server, workers: int, n: int, rate: float, client: str, src: str | None
) -> dict[str, Any]:
    plan = [Worker(i, n, 0.0) for i in range(workers)]
    return summarise(run_workers(server, plan, client, src), workers * n, rate)


def join_leave(
    server: Server, rate: float, client: str, src: str | None, label: str
) -> dict[str, Any]:
    # A and B run throughout; C is short and leaves early; D joins at 20 s.
    plan = [Worker(0, 450, 0.0), Worker(1, 450, 0.0), Worker(2, 100, 0.0), Worker(3, 200, 20.0)]
    reports = run_workers(server, plan, client, src)
    t0 = reports[0]["t0"]
    step = 2
    end = int(max(r["end"] for r in reports) - t0) + step
    rows = []
    for lo in range(0, end, step):
        row: list[object] = [f"{lo}-{lo + step}"]
        accepted_all = 0
        limited_all = 0
        for r in reports:
            inside = [s for t, s in r["answers"] if lo <= t - t0 < lo + step]
            ok = sum(s != 429 for s in inside)
            accepted_all += ok
            limited_all += len(inside) - ok
            row.append(f"{ok / step:.1f}" if inside else "-")
        row += [f"{accepted_all / step:.1f}", limited_all]
        rows.append(row)
    table(
        f"Join and leave, {label}: accepted requests/s per worker, 2-second bins "
        f"(R = {rate:.0f}/s; A, B 450 inputs; C 100 inputs, leaves when done; D joins at 20 s)",
        ["t s", "A", "B", "C", "D", "all", "429s"],
        rows,
    )
    return summarise(reports, sum(w.n for w in plan), rate)


def drain(server: Server) -> int:
    """Spend the whole request bucket from this process (another client on the same key)."""
    import httpx

    spent = 0
    with httpx.Client(timeout=30) as http:
        while True:
            response = http.post(
                f"{server.base_url}/embeddings",
                json={"model": MODEL, "input": "drain"},
                headers={"X-Api-Key": server.api_key},
            )
            if response.status_code == 429:
                return spent
            spent += 1


#: (name, RPM, burst, inputs, bucket drained by another process first)
FIRST_WAVE = [
    ("burst 10, 120 RPM", 120.0, 10.0, 40, False),
    ("burst 10, 120 RPM, drained by another process", 120.0, 10.0, 40, True),
    ("burst 120, 600 RPM", 600.0, 120.0, 200, False),
]


def first_wave(versions: list[tuple[str, str | None]]) -> None:
    """One fresh worker process against a small bucket: how many of its first requests bounce."""
    rows = []
    for name, rpm, burst, n, drained in FIRST_WAVE:
        rate = rpm / 60
        for client in ("sync", "async"):
            for label, src in versions:
                if label == "machine-shared":
                    continue  # one process: nothing to share
                options = ("--rpm", str(rpm), "--rpm-burst", str(burst), "--latency", str(LATENCY))
                with serve(*options, "--tpm", "1e12", "--credits", "1e12") as server:
                    plan = [Worker(0, n, 0.0)]
                    if drained:
                        # the drain runs while the worker starts; it ends before the common start
                        reports = run_workers(server, plan, client, src, before_start=drain)
                    else:
                        reports = run_workers(server, plan, client, src)
                result = summarise(reports, n, rate)
                ideal = (n - (0 if drained else burst)) / rate
                rows.append(
                    [
                        name,
                        client,
                        label,
                        result["wall"],
                        ideal,
                        result["wall"] / ideal,
                        result["sent"],
                        f"{result['429']} ({100 * result['share429']:.1f}%)",
                        result["failures"],
                    ]
                )
                print(f"  {name}, {client}, {label}: {result}", flush=True)
    table(
        "The first wave: one fresh process",
        [
            "bucket",
            "client",
            "code",
            "wall s",
            "ideal s",
            "wall ÷ ideal",
            "requests",
            "429s",
            "failures",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--n", type=int, default=200, help="inputs per worker")
    parser.add_argument("--rpm", type=float, default=1200)
    parser.add_argument("--client", choices=("sync", "async"), default="sync")
    parser.add_argument(
        "--scenario",
        nargs="+",
        choices=("together", "join-leave", "first-wave"),
        default=["together"],
    )
    parser.add_argument("--before", help="a src/ directory to run the 'before' rows from")
    parser.add_argument(
        "--machine-shared",
        action="store_true",
        help="also run each row with $AUROUS_RATE_LIMIT_DIR set (one model for the machine)",
    )
    args = parser.parse_args()
    if args.worker is not None:
        args.index = args.worker
        worker_main(args)
        return
    rate = args.rpm / 60
    print(
        f"Machine: {machine()}; emulator at {args.rpm:,.0f} RPM (burst 120), L = "
        f"{LATENCY * 1000:.0f} ms; {args.client} embed_many in every worker (first wave: both)\n",
        flush=True,
    )
    versions: list[tuple[str, str | None]] = [("this branch", None)]
    if args.before:
        versions.insert(0, ("before", os.path.abspath(args.before)))
    if args.machine_shared:
        versions.append(("machine-shared", None))
    rows = []
    if "first-wave" in args.scenario:
        first_wave(versions)
    for scenario in args.scenario:
        if scenario == "first-wave":
            continue
        counts = args.workers if scenario == "together" else [0]
        for count in counts:
            for label, src in versions:
                if label == "machine-shared":
                    src = SHARED + tempfile.mkdtemp(prefix="aurous-pacer-")
                # a fresh emulator per row: every row starts from a full bucket
                options = ("--rpm", str(args.rpm), "--latency", str(LATENCY))
                with serve(*options, "--tpm", "1e12", "--credits", "1e12") as server:
                    if scenario == "together":
                        result = together(server, count, args.n, rate, args.client, src)
                        name = f"{count} workers x {args.n}"
                    else:
                        result = join_leave(server, rate, args.client, src, label)
                        name = "join and leave (A, B, C, D)"
                rows.append(
                    [
                        name,
                        label,
                        result["wall"],
                        result["ideal"],
                        result["ratio"],
                        result["floor"],
                        result["sent"],
                        f"{result['429']} ({100 * result['share429']:.1f}%)",
                        result["failures"],
                        result["spread"],
                    ]
                )
                print(f"  {name}, {label}: {result}", flush=True)
    if not rows:
        return
    table(
        "Workers sharing one key",
        [
            "workers",
            "code",
            "wall s",
            "N/R s",
            "wall ÷ N/R",
            "wall ÷ (N - burst)/R",
            "requests",
            "429s",
            "failures",
            "last ÷ first worker done",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
