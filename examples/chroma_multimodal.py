"""Chroma with text+image documents: each caption and its photo as ONE vector.

Chroma hands an embedding function either documents or images, never both together, so the
combined vectors come from the client (``embed_many`` of ``[Text(caption), Image(photo)]``) and go
into the collection as precomputed ``embeddings``; queries then use the collection's
``AurousEmbeddingFunction`` as usual. (With Chroma's ``AsyncHttpClient``, the ``aadd``/``aquery``
helpers of ``aurous_embed.chroma`` do the same with an ``AsyncAurousClient``, keeping the event
loop free: Chroma calls embedding functions synchronously.)

python examples/chroma_multimodal.py                 # offline, the local emulator
AUROUS_API_KEY=al_live_... python examples/chroma_multimodal.py   # the live API

Needs: pip install "aurous-embed[chroma,emulator]" (emulator: offline only)
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import chromadb
from chromadb.config import Settings

from aurous_embed import AurousClient, Image, Text
from aurous_embed.chroma import AurousEmbeddingFunction


@contextlib.contextmanager
def environment() -> Iterator[None]:
    """Offline, the emulator through the variables Chroma's rebuilt functions read too."""
    if os.environ.get("AUROUS_API_KEY"):
        yield
        return
    from aurous_embed.testing import Emulator

    print("No AUROUS_API_KEY: using the local emulator (stand-in vectors, not the real model).")
    with Emulator() as emu:
        os.environ.update(AUROUS_API_KEY=emu.api_key, AUROUS_BASE_URL=emu.base_url)
        try:
            yield
        finally:
            os.environ.pop("AUROUS_API_KEY")
            os.environ.pop("AUROUS_BASE_URL")


def main() -> None:
    images = importlib.resources.files("aurous_embed") / "demo_data" / "images"
    with (
        importlib.resources.as_file(images) as folder,
        environment(),
        tempfile.TemporaryDirectory() as db,
        AurousClient() as client,
    ):
        captions = sorted(Path(folder).glob("*.txt"))
        texts = [c.read_text().strip() for c in captions]
        photos = [str(c.with_suffix(".png")) for c in captions]
        vectors = client.embed_many(
            [[Text(text), Image(photo)] for text, photo in zip(texts, photos, strict=True)],
            as_numpy=True,
        )
        store = chromadb.PersistentClient(db, settings=Settings(anonymized_telemetry=False))
        products = store.create_collection("products", embedding_function=AurousEmbeddingFunction())
        products.add(
            ids=[Path(p).stem for p in photos],
            embeddings=list(vectors),
            documents=texts,
            metadatas=[{"image": p} for p in photos],
        )
        print(f"Added {products.count()} text+image documents, one vector each.")
        found = products.query(query_texts=["hiking boots"], n_results=1)
        print(f"'hiking boots' -> {found['ids'][0][0]}: {found['documents'][0][0]}")


if __name__ == "__main__":
    main()
