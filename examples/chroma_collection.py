"""A persistent Chroma collection of texts and images with ``AurousEmbeddingFunction``.

Documents are added as text, images as file ``uris`` read by Chroma's ``ImageLoader``; one vector
space holds both, so a text query finds photos and a photo finds texts. The collection then is
reopened with ``get_collection(name)`` WITHOUT passing the function: Chroma rebuilds it from the
config stored with the collection (model, dimensions, the NAME of the key's environment variable;
never the key itself) and queries keep working.

python examples/chroma_collection.py                 # offline, against the local emulator
AUROUS_API_KEY=al_live_... python examples/chroma_collection.py   # the live API

Offline, the vectors come from the emulator: a deterministic stand-in in which texts sharing words
are close and an image is close to the names of its colours. Nothing leaves the machine. The
database lives in a temporary directory removed at the end.
Needs: pip install "aurous-embed[chroma,emulator]" (emulator: offline only)
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
from chromadb.config import Settings
from chromadb.utils.data_loaders import ImageLoader

from aurous_embed.chroma import AurousEmbeddingFunction

DOCUMENTS = {
    "bag-text": "Red leather messenger bag, hand-stitched, with a brass buckle.",
    "shirt-text": "Blue cotton t-shirt, relaxed fit, soft and breathable for summer.",
    "lamp-text": "Yellow metal desk lamp with an adjustable arm and warm light.",
    "plant-text": "Green fern in a ceramic pot, easy to care for indoors.",
}
PHOTOS = {
    "umbrella-photo": "photo-red-umbrella.png",
    "vase-photo": "photo-blue-vase.png",
    "plant-photo": "photo-green-plant.png",
    "lamp-photo": "photo-yellow-lamp.png",
}


@contextlib.contextmanager
def api() -> Iterator[None]:
    """Offline, point the environment at an embedded emulator for the duration.

    Chroma builds the embedding function again from the stored config whenever a collection is
    reopened, and that function reads the key from ``$AUROUS_API_KEY`` (and the address from
    ``$AUROUS_BASE_URL``): so the emulator is announced through the same variables.
    """
    if os.environ.get("AUROUS_API_KEY"):
        yield
        return
    from aurous_embed.testing import Emulator

    print("No AUROUS_API_KEY: using the local emulator (stand-in vectors, not the real model).")
    with Emulator() as emu:
        saved = {name: os.environ.get(name) for name in ("AUROUS_API_KEY", "AUROUS_BASE_URL")}
        os.environ.update(AUROUS_API_KEY=emu.api_key, AUROUS_BASE_URL=emu.base_url)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def show(title: str, found: Any) -> None:
    print(title)
    for doc_id, distance, text in zip(
        found["ids"][0], found["distances"][0], found["documents"][0], strict=True
    ):
        print(f"  {distance:.3f}  {doc_id:<15} {text or '(image)'}")


def main() -> None:
    images = importlib.resources.files("aurous_embed") / "demo_data" / "images"
    settings = Settings(anonymized_telemetry=False)
    with (
        importlib.resources.as_file(images) as folder,
        tempfile.TemporaryDirectory() as db,
        api(),
    ):
        photo = {key: str(Path(folder) / name) for key, name in PHOTOS.items()}
        client = chromadb.PersistentClient(path=db, settings=settings)
        collection = client.create_collection(
            "products",
            embedding_function=AurousEmbeddingFunction(),  # key from $AUROUS_API_KEY
            data_loader=ImageLoader(),  # turns uris into images for the function
        )
        collection.add(ids=list(DOCUMENTS), documents=list(DOCUMENTS.values()))
        collection.add(ids=list(photo), uris=list(photo.values()))
        print(f"Collection 'products' in {db}: {collection.count()} items (texts and images).")

        show(
            "\nquery_texts=['a red bag']:",
            collection.query(query_texts=["a red bag"], n_results=3),
        )
        query_photo = str(Path(folder) / "photo-blue-shirt.png")
        show(
            "\nquery_uris=[photo-blue-shirt.png] (a photo not in the collection):",
            collection.query(query_uris=[query_photo], n_results=3),
        )

        # Reopen as another program would: a new client, no embedding function passed.
        reopened = chromadb.PersistentClient(path=db, settings=settings).get_collection(
            "products", data_loader=ImageLoader()
        )
        stored = reopened.configuration_json["embedding_function"]
        print(f"\nReopened without the function; Chroma rebuilt it from: {stored['name']!r}")
        print(f"  stored config: {stored['config']}")
        show(
            "query_texts=['something yellow'] on the reopened collection:",
            reopened.query(query_texts=["something yellow"], n_results=2),
        )
        show(
            "query_uris=[photo-red-bag.png] on the reopened collection:",
            reopened.query(query_uris=[str(Path(folder) / "photo-red-bag.png")], n_results=2),
        )


if __name__ == "__main__":
    main()
