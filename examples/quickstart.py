"""Embed text and an image, offline: an embedded emulator stands in for the API when no key is set.

python examples/quickstart.py                 # offline, against the local emulator
AUROUS_API_KEY=al_live_... python examples/quickstart.py   # the live API
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from aurous_embed import AurousClient, Image, Text


@contextlib.contextmanager
def api() -> Iterator[AurousClient]:
    if os.environ.get("AUROUS_API_KEY"):
        with AurousClient() as client:
            yield client
        return
    from aurous_embed.testing import Emulator

    print("No AUROUS_API_KEY: using the local emulator (stand-in vectors, not the real model).")
    with Emulator() as emu, AurousClient(emu.api_key, base_url=emu.base_url) as client:
        yield client


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=False))


def main() -> None:
    from PIL import Image as PILImage

    red_square = PILImage.new("RGB", (64, 64), (210, 30, 30))
    with api() as client:
        query = client.embed("a red leather bag")
        docs = client.embed_many(
            [
                "Red leather messenger bag, hand-stitched",
                "Blue cotton t-shirt, relaxed fit",
                [Text("Product photo:"), Image(red_square)],  # text + image: ONE vector
            ]
        )
        for label, doc in zip(["red bag text", "blue shirt text", "red image"], docs, strict=False):
            print(f"{label:>16}: cosine {cosine(query.embedding, doc.embedding):+.3f}")
        usage = client.usage
        print(
            f"{usage.requests} requests, {usage.prompt_tokens} tokens, "
            f"{usage.credits_charged:.6f} credits; vectors of {len(query.embedding)} floats"
        )


if __name__ == "__main__":
    main()
