"""``aurous-embed serve``: run the emulator in the foreground until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from aurous_embed._config import (
    CURRENT_API_VERSION,
    EMULATOR_CREDITS,
    EMULATOR_NATIVE_DIMENSION,
    EMULATOR_RPM,
    EMULATOR_RPM_BURST,
    EMULATOR_TPM,
    ENV_API_KEY,
    ENV_BASE_URL,
)
from aurous_embed.testing._faults import FAULT_HEADER, INJECTABLE_STATUSES, Faults

DEFAULT_PORT = 8787


def build_parser() -> argparse.ArgumentParser:
    """The ``serve`` options."""
    parser = argparse.ArgumentParser(
        prog="aurous-embed serve",
        description=(
            "Run a local emulator of the Aurous Labs embeddings API (a stand-in: its vectors "
            f"are not the real model's). Per-request faults: the {FAULT_HEADER} header."
        ),
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    add(
        "--port", type=int, default=DEFAULT_PORT, help=f"port; 0 picks one (default {DEFAULT_PORT})"
    )
    add("--allow-remote", action="store_true", help="allow binding a non-loopback host")
    add("--latency", type=float, default=0.0, help="seconds added to each request")
    add("--jitter", type=float, default=0.0, help="uniform +/- seconds around --latency")
    add("--rpm", type=float, default=EMULATOR_RPM, help="embedding requests per minute")
    add("--rpm-burst", type=float, default=EMULATOR_RPM_BURST, help="request burst capacity")
    add("--tpm", type=float, default=EMULATOR_TPM, help="tokens per minute")
    add("--credits", type=float, default=EMULATOR_CREDITS, help="starting balance in credits")
    add(
        "--key",
        action="append",
        metavar="KEY[:SCOPE]",
        help="an API key with scope read|write|full (repeatable; default: one generated key)",
    )
    add("--dimension", type=int, default=EMULATOR_NATIVE_DIMENSION, help="vector length")
    add("--accept-video", action="store_true", help="accept video_url parts")
    add("--api-version", default=CURRENT_API_VERSION, help="the team's Aurous-Version")
    add("--seed", type=int, default=None, help="seed for jitter and random faults")
    faults = parser.add_argument_group("random faults (on POST /v1/embeddings)")
    faults.add_argument("--fail-rate", type=float, default=0.0, help="probability of a 5xx")
    faults.add_argument(
        "--fail-statuses",
        default="500,502,503",
        help="comma-separated statuses for --fail-rate (default 500,502,503)",
    )
    faults.add_argument("--rate-limit-rate", type=float, default=0.0, help="429 burst probability")
    faults.add_argument("--burst-length", type=int, default=3, help="requests per 429 burst")
    faults.add_argument("--retry-after", type=int, default=None, help="Retry-After on 429/503")
    faults.add_argument(
        "--reset-rate", type=float, default=0.0, help="connection reset probability"
    )
    faults.add_argument("--slow-rate", type=float, default=0.0, help="slow response probability")
    faults.add_argument("--slow-seconds", type=float, default=5.0, help="length of a slow response")
    return parser


def serve_command(argv: Sequence[str]) -> int:
    """Run ``aurous-embed serve ARGS``; return the exit status (0 after Ctrl-C).

    Prints the base URL, a ready-to-use key and ``export`` lines, then serves until SIGINT or
    SIGTERM.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # --help or a usage error; argparse already printed
        return int(exc.code or 0)
    try:
        from aurous_embed.testing import Emulator

        statuses = tuple(int(s) for s in args.fail_statuses.split(",") if s.strip())
        faults = Faults(
            error_rate=args.fail_rate,
            error_statuses=statuses,
            rate_limit_rate=args.rate_limit_rate,
            burst_length=args.burst_length,
            retry_after=args.retry_after,
            reset_rate=args.reset_rate,
            slow_rate=args.slow_rate,
            slow_seconds=args.slow_seconds,
            seed=args.seed,
        )
        emulator = Emulator(
            host=args.host,
            port=args.port,
            latency=args.latency,
            jitter=args.jitter,
            rpm=args.rpm,
            rpm_burst=args.rpm_burst,
            tpm=args.tpm,
            credits=args.credits,
            keys=args.key,
            faults=faults,
            native_dimension=args.dimension,
            accept_video=args.accept_video,
            seed=args.seed,
            api_version=args.api_version,
            allow_remote=args.allow_remote,
        )
        emulator.start()
    except (ImportError, ValueError, OSError) as exc:
        hint = f" (statuses must be among {INJECTABLE_STATUSES})" if "statuses" in str(exc) else ""
        print(f"aurous-embed serve: {exc}{hint}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        scope = emulator.keys[emulator.api_key]
        print("Aurous Labs API emulator (a local stand-in, not the real model)")
        print(f"base URL: {emulator.base_url}")
        print(f"API key:  {emulator.api_key}  (scope {scope})")
        print(f"export {ENV_BASE_URL}={emulator.base_url} {ENV_API_KEY}={emulator.api_key}")
        print("Press Ctrl-C to stop.", flush=True)
        stop.wait()
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stats = emulator.stats
    print(
        f"stopped after {stats.requests} requests, {stats.charges} charges, "
        f"{stats.credits_charged} credits",
        flush=True,
    )
    return 0
