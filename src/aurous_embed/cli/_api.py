"""``aurous-embed embed``, ``estimate`` and ``models``."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from aurous_embed._errors import InputValidationError
from aurous_embed.cli._base import EXIT_OK, Output, open_client


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


def cmd_embed(args: argparse.Namespace, out: Output) -> int:
    inputs, labels = _inputs(args)
    with open_client(args) as client:
        results = client.embed_many(inputs, dimensions=args.dimensions)
    out.json(
        [
            {
                "input": label,
                "embedding": result.embedding,
                "model": result.model,
                "usage": _usage_json(result),
                "request_id": result.request_id,
            }
            for label, result in zip(labels, results, strict=True)
        ],
        lines=True,
    )
    return EXIT_OK


def cmd_estimate(args: argparse.Namespace, out: Output) -> int:
    inputs, labels = _inputs(args)
    rows = []
    with open_client(args) as client:
        for label, value in zip(labels, inputs, strict=True):
            estimate = client.estimate(value, dimensions=args.dimensions)
            rows.append(
                {
                    "input": label,
                    "tokens": dataclasses.asdict(estimate.tokens),
                    "credits_estimated": estimate.credits_estimated,
                }
            )
    if out.as_json:
        out.json(rows)
    else:
        out.table(
            "Estimate (nothing was charged)",
            ["input", "text tokens", "image tokens", "total tokens", "credits"],
            [
                [
                    r["input"][:50],
                    r["tokens"]["text"],
                    r["tokens"]["image"],
                    r["tokens"]["total"],
                    f"{r['credits_estimated']:.6f}",
                ]
                for r in rows
            ],
        )
    return EXIT_OK


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
