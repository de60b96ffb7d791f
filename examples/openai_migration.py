"""The same job with the unmodified OpenAI SDK and with aurous-embed, side by side.

The job: embed N product texts, then one multimodal document (a caption and a photo combined
into ONE vector). The Aurous API speaks the OpenAI embeddings dialect, so the OpenAI SDK works
when pointed at it, with limits this script shows:

- one input per request: a ``string[]`` batch fails with ``embeddings_batch_not_supported``, so
  N texts are N sequential ``embeddings.create`` calls;
- content parts (text + image) have no typed method: they go through the raw
  ``client.post("/embeddings", body=..., cast_to=...)`` escape hatch, with the image encoded by
  hand.

aurous-embed sends the same requests concurrently (``embed_many``) and takes paths, bytes, PIL
images and URLs as parts (``embed([Text(...), Image(...)])``). The script prints both wall times
and checks that both paths give the same vectors.

python examples/openai_migration.py                 # offline, against the local emulator
AUROUS_API_KEY=al_live_... python examples/openai_migration.py   # the live API

Offline, the emulator adds 50 ms to every request to stand in for a model's latency (its vectors
are a deterministic stand-in, not the Aurous model). Nothing leaves the machine.
Needs: pip install "aurous-embed[emulator]" openai (emulator: offline only)
"""

from __future__ import annotations

import base64
import contextlib
import importlib.resources
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import openai

from aurous_embed import AurousClient, Image, Text

TEXTS = [
    f"{colour} {item}, product #{n}"
    for n, (colour, item) in enumerate(
        (colour, item)
        for colour in ("Red", "Blue", "Green", "Yellow")
        for item in ("leather bag", "cotton shirt", "wool scarf", "ceramic mug", "desk lamp")
    )
]
CAPTION = "Product photo of a red leather messenger bag"


@contextlib.contextmanager
def api() -> Iterator[tuple[str, str]]:
    """(base URL, key): the live API with AUROUS_API_KEY set, else an embedded emulator."""
    key = os.environ.get("AUROUS_API_KEY")
    if key:
        with AurousClient() as probe:  # resolves AUROUS_BASE_URL or the production URL
            yield probe.base_url, key
        return
    from aurous_embed.testing import Emulator

    print("No AUROUS_API_KEY: using the local emulator (stand-in vectors, 50 ms per request).")
    with Emulator(latency=0.05) as emu:
        yield emu.base_url, emu.api_key


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def same(a: list[float], b: list[float]) -> str:
    return "same vector" if cosine(a, b) > 0.9999 else f"DIFFERENT (cosine {cosine(a, b):.4f})"


def with_openai_sdk(base_url: str, key: str, model: str, photo: Path) -> list[list[float]]:
    vectors = []
    with openai.OpenAI(base_url=base_url, api_key=key) as sdk:
        try:
            sdk.embeddings.create(model=model, input=TEXTS[:2])
        except openai.BadRequestError as error:
            print(f"  input=[2 strings] -> HTTP {error.status_code} {error.code}")
        else:
            print("  input=[2 strings] -> accepted (this API now takes batches)")

        started = time.perf_counter()
        for text in TEXTS:  # one request per text, one after another
            vectors.append(sdk.embeddings.create(model=model, input=text).data[0].embedding)
        print(
            f"  {len(TEXTS)} texts, sequential embeddings.create: {time.perf_counter() - started:.2f} s"
        )

        # Content parts: no typed method, so a raw POST with a hand-built body.
        image = base64.b64encode(photo.read_bytes()).decode("ascii")
        parts = [
            {"type": "text", "text": CAPTION},
            {"type": "image_url", "image_url": {"b64_json": image}},
        ]
        response = sdk.post(
            "/embeddings",
            body={"model": model, "input": parts},
            cast_to=openai.types.CreateEmbeddingResponse,
        )
        vectors.append(response.data[0].embedding)
        print(f"  text + image via client.post('/embeddings'): {len(vectors[-1])} floats")
    return vectors


def with_aurous_embed(base_url: str, key: str, photo: Path) -> list[list[float]]:
    with AurousClient(key, base_url=base_url) as client:
        started = time.perf_counter()
        results = client.embed_many(TEXTS)  # concurrent, in input order, retries included
        print(f"  {len(TEXTS)} texts, embed_many: {time.perf_counter() - started:.2f} s")
        mixed = client.embed([Text(CAPTION), Image(photo)])  # ONE vector for both parts
        print(f"  text + image via embed([Text, Image]): {len(mixed.embedding)} floats")
        usage = client.usage
        print(f"  {usage.requests} requests, {usage.credits_charged:.6f} credits")
    return [result.embedding for result in results] + [mixed.embedding]


def main() -> None:
    images = importlib.resources.files("aurous_embed") / "demo_data" / "images"
    with importlib.resources.as_file(images) as folder, api() as (base_url, key):
        photo = Path(folder) / "photo-red-bag.png"
        with AurousClient(key, base_url=base_url) as client:
            model = client.model
        print("OpenAI SDK (unmodified, pointed at the Aurous API):")
        sdk_vectors = with_openai_sdk(base_url, key, model, photo)
        print("aurous-embed:")
        aurous_vectors = with_aurous_embed(base_url, key, photo)

    pairs = list(zip(sdk_vectors[:-1], aurous_vectors[:-1], strict=True))
    matching = sum(cosine(a, b) > 0.9999 for a, b in pairs)
    print("Check, OpenAI SDK vs aurous-embed:")
    print(f"  texts: {matching} of {len(pairs)} vectors match")
    print(f"  text + image: {same(sdk_vectors[-1], aurous_vectors[-1])}")


if __name__ == "__main__":
    main()
