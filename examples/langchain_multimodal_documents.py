"""LangChain Documents with a photo: each stored as ONE text+image vector, in any vector store.

A LangChain vector store gives its embedding model only the documents' texts. ``add_documents``
(and ``aadd_documents``) of ``AurousEmbeddings`` tells it the images that go with them
(``metadata["image"]``: a path or an https URL), so each caption and its photo become one vector;
a text query then finds the product by what it says and by what it shows.

python examples/langchain_multimodal_documents.py                 # offline, the local emulator
AUROUS_API_KEY=al_live_... python examples/langchain_multimodal_documents.py   # the live API

Offline, the vectors come from the emulator (texts sharing words are close; an image is close to
the names of its colours). Needs: pip install "aurous-embed[langchain,chroma,emulator]"
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import chromadb
from chromadb.config import Settings
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from aurous_embed.langchain import AurousEmbeddings


@contextlib.contextmanager
def embeddings() -> Iterator[AurousEmbeddings]:
    if os.environ.get("AUROUS_API_KEY"):
        yield AurousEmbeddings()
        return
    from aurous_embed.testing import Emulator

    print("No AUROUS_API_KEY: using the local emulator (stand-in vectors, not the real model).")
    with Emulator() as emu:
        model = AurousEmbeddings(api_key=emu.api_key, base_url=emu.base_url)
        yield model
        model.close()


def main() -> None:
    images = importlib.resources.files("aurous_embed") / "demo_data" / "images"
    with importlib.resources.as_file(images) as folder, embeddings() as model:
        docs = [  # each captioned photo: its caption as the text, the photo in the metadata
            Document(
                caption.read_text().strip(), metadata={"image": str(caption.with_suffix(".png"))}
            )
            for caption in sorted(Path(folder).glob("*.txt"))
        ]
        docs.append(Document("A plain note about shipping times, no photo."))

        memory = InMemoryVectorStore(model)
        model.add_documents(memory, docs)
        print(f"InMemoryVectorStore: {len(docs)} documents, {len(docs) - 1} of them text+image.")
        for query in ("a red kettle", "hiking boots"):
            hit = memory.similarity_search(query, k=1)[0]
            print(f"{query!r} -> {hit.page_content} [{Path(hit.metadata['image']).name}]")

        with tempfile.TemporaryDirectory() as db:
            store = Chroma(
                collection_name="products",
                embedding_function=model,
                client=chromadb.PersistentClient(db, settings=Settings(anonymized_telemetry=False)),
                collection_metadata={"hnsw:space": "cosine"},  # relevance scores in [0, 1]
            )
            asyncio.run(model.aadd_documents(store, docs))  # the async path, the same vectors
            hit, score = store.similarity_search_with_relevance_scores("a leather bag", k=1)[0]
            print(
                f"Chroma (async add): 'a leather bag' -> {hit.page_content} (relevance {score:.2f})"
            )


if __name__ == "__main__":
    main()
