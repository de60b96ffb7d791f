"""Retrieval for a RAG pipeline in LangChain: one Chroma vector store holding texts AND images.

``AurousEmbeddings`` puts product descriptions (``add_texts``) and product photos (``add_images``)
into one vector space, so a retriever built with ``as_retriever`` answers a text question with the
right photos, and ``similarity_search_by_image`` finds the descriptions that match a photo. The
retriever feeds a prompt template: what an LLM would be asked. No LLM is called (pipe the prompt
into any chat model to finish the chain).

python examples/langchain_rag.py                 # offline, against the local emulator
AUROUS_API_KEY=al_live_... python examples/langchain_rag.py   # the live API

Offline, the vectors come from the emulator: a deterministic stand-in in which texts sharing words
are close and an image is close to the names of its colours. Nothing leaves the machine.
Needs: pip install "aurous-embed[langchain,chroma,emulator]" langchain-chroma (emulator: offline only)
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
from collections.abc import Iterator

import chromadb
from chromadb.config import Settings
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough

from aurous_embed.langchain import AurousEmbeddings

PRODUCTS = [
    "Red leather messenger bag, hand-stitched, with a brass buckle.",
    "Blue cotton t-shirt, relaxed fit, soft and breathable for summer.",
    "Green merino wool sweater, warm crew neck for cold winter days.",
    "Yellow rain jacket with a hood, waterproof and windproof.",
    "White ceramic mug, holds 350 ml, dishwasher safe.",
    "Brown hiking boots, waterproof leather with a rugged grip.",
]
PHOTOS = ["photo-red-umbrella.png", "photo-blue-vase.png", "photo-green-plant.png"]
QUESTIONS = ["What keeps me dry in the rain?", "Which bag is made of leather?"]

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer from these catalogue entries only:\n{context}"),
        ("human", "{question}"),
    ]
)


@contextlib.contextmanager
def embeddings() -> Iterator[AurousEmbeddings]:
    """The live API with AUROUS_API_KEY set; otherwise an embedded emulator on loopback."""
    with contextlib.ExitStack() as stack:
        if os.environ.get("AUROUS_API_KEY"):
            model = AurousEmbeddings()  # reads AUROUS_API_KEY (and AUROUS_BASE_URL if set)
        else:
            from aurous_embed.testing import Emulator

            print(
                "No AUROUS_API_KEY: using the local emulator (stand-in vectors, not the real model)."
            )
            emu = stack.enter_context(Emulator())
            model = AurousEmbeddings(api_key=emu.api_key, base_url=emu.base_url)
        stack.callback(model.close)
        yield model


def describe(document: Document) -> str:
    if document.metadata.get("kind") == "image":
        return f"[photo] {document.metadata['name']}"
    return document.page_content


def main() -> None:
    images = importlib.resources.files("aurous_embed") / "demo_data" / "images"
    with importlib.resources.as_file(images) as folder, embeddings() as model:
        # An in-memory Chroma; Chroma(persist_directory=...) keeps it on disk instead.
        client = chromadb.EphemeralClient(Settings(anonymized_telemetry=False))
        store = Chroma(collection_name="catalogue", embedding_function=model, client=client)
        store.add_texts(PRODUCTS, metadatas=[{"kind": "text"} for _ in PRODUCTS])
        # add_images calls embed_image(uris=...): each file is sent inline, one vector each.
        store.add_images(
            uris=[str(folder / name) for name in PHOTOS],
            metadatas=[{"kind": "image", "name": name} for name in PHOTOS],
        )
        print(f"Indexed {len(PRODUCTS)} product texts and {len(PHOTOS)} photos in one collection.")

        retriever = store.as_retriever(search_kwargs={"k": 2, "filter": {"kind": "text"}})
        context = retriever | (lambda docs: "\n".join(f"- {d.page_content}" for d in docs))
        chain = {"context": context, "question": RunnablePassthrough()} | PROMPT
        for question in QUESTIONS:
            prompt = chain.invoke(question)
            print(f"\nQ: {question}\nWhat the LLM would be given:")
            print(prompt.to_messages()[0].content)

        print("\nText -> photos (one space for both):")
        for query in ["something red", "a green plant"]:
            (hit,) = store.similarity_search(query, k=1, filter={"kind": "image"})
            print(f"  {query!r:>18} -> {describe(hit)}")

        print("\nPhoto -> product texts (similarity_search_by_image):")
        photo = str(folder / "photo-red-bag.png")
        for hit in store.similarity_search_by_image(photo, k=2, filter={"kind": "text"}):
            print(f"  photo-red-bag.png -> {describe(hit)}")


if __name__ == "__main__":
    main()
