"""``aurous-embed embed``, ``estimate`` and ``models``."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from aurous_embed._errors import AurousError, InputValidationError, stops_batch
from aurous_embed._parts import normalize_inputs
from aurous_embed.cli._base import (
    EXIT_AUTH,
    EXIT_OK,
    EXIT_PARTIAL,
    Output,
    complain,
    error_line,
    exit_code,
    open_client,
)


def _usage_json(result: Any) -> dict[str, Any]:
    usage = result.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "credits_charged": usage.credits_charged,
        "breakdown": {
            "text": usage.breakdown.text,
            "visual": usage.breakdown.visual,
            "video": usage.breakdown.video,
        },
    }


def _inputs(args: argparse.Namespace) -> tuple[list[Any], list[str]]:
    """The inputs of ``embed``/``estimate``: one per text and image, or ONE with --combine."""
    from aurous_embed._parts import Text, image_from_uri

    images = [image_from_uri(uri) for uri in args.image or []]
    if not args.text and not images:
        raise InputValidationError("give at least one TEXT or --image", param="TEXT")
    if args.combine:
        return [[*(Text(t) for t in args.text), *images]], ["combined"]
    labels = [*args.text, *(args.image or [])]
    return [*args.text, *images], labels


def _failed(labels: list[str], errors: dict[int, BaseException]) -> None:
    """One line per failed input, in input order, in the command line's words."""
    for index, error in sorted(errors.items()):
        complain(f"error: input {index} ({labels[index][:60]!r}): {error_line(error)[7:]}")


def _verdict(errors: dict[int, BaseException], total: int) -> int:
    """The exit code of a run where ``errors`` failed out of ``total`` (0 when none)."""
    if not errors:
        return EXIT_OK
    first = next(iter(sorted(errors.items())))[1]
    if len(errors) == total:  # nothing succeeded: the error decides
        return exit_code(first)
    auth = exit_code(first) == EXIT_AUTH
    return EXIT_AUTH if auth else EXIT_PARTIAL


def cmd_embed(args: argparse.Namespace, out: Output) -> int:
    """Every success is printed, in input order and with its index, even when others failed
    (they were paid for); then one line per failure."""
    inputs, labels = _inputs(args)
    normalize_inputs(inputs)  # every input checked before anything is sent (exit 2)
    errors: dict[int, BaseException] = {}
    rows: list[dict[str, Any]] = []
    with open_client(args) as client:
        for index, result in enumerate(
            client.embed_iter(inputs, dimensions=args.dimensions, return_exceptions=True)
        ):
            if isinstance(result, AurousError):
                errors[index] = result
                continue
            rows.append(
                {
                    "index": index,
                    "input": labels[index],
                    "embedding": result.embedding,
                    "model": result.model,
                    "usage": _usage_json(result),
                    "request_id": result.request_id,
                }
            )
    out.json(rows, lines=True)
    _failed(labels, errors)
    return _verdict(errors, len(inputs))


def cmd_estimate(args: argparse.Namespace, out: Output) -> int:
    inputs, labels = _inputs(args)
    normalize_inputs(inputs)
    rows = []
    errors: dict[int, BaseException] = {}
    with open_client(args) as client:
        for index, (label, value) in enumerate(zip(labels, inputs, strict=True)):
            try:
                estimate = client.estimate(value, dimensions=args.dimensions)
            except AurousError as error:
                errors[index] = error
                if stops_batch(error):  # every other input would fail the same way
                    for rest in range(index + 1, len(inputs)):
                        errors[rest] = error
                    break
                continue
            rows.append(
                {
                    "index": index,
                    "input": label,
                    "tokens": dataclasses.asdict(estimate.tokens),
                    "credits_estimated": estimate.credits_estimated,
                }
            )
    if out.as_json:
        out.json(rows)
    elif rows:
        out.table(
            "Estimate (nothing was charged)",
            ["#", "input", "text tokens", "image tokens", "total tokens", "credits"],
            [
                [
                    r["index"],
                    r["input"][:50],
                    r["tokens"]["text"],
                    r["tokens"]["image"],
                    r["tokens"]["total"],
                    f"{r['credits_estimated']:.6f}",
                ]
                for r in rows
            ],
        )
    _failed(labels, errors)
    return _verdict(errors, len(inputs))


def cmd_models(args: argparse.Namespace, out: Output) -> int:
    with open_client(args) as client:
        models = client.list_models()
    if out.as_json:
        out.json([dict(m.raw) for m in models])
        return EXIT_OK
    out.table(
        "Models",
        ["id", "kind", "context", "dimensions", "text credits/1M", "visual credits/1M"],
        [
            [
                m.id,
                m.kind or "?",
                m.context_window or "",
                ",".join(map(str, m.dimensions or ())) or "-",
                m.text_credits_per_m if m.text_credits_per_m is not None else "-",
                m.visual_credits_per_m if m.visual_credits_per_m is not None else "-",
            ]
            for m in models
        ],
    )
    return EXIT_OK
