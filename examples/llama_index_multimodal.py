"""A LlamaIndex ``MultiModalVectorStoreIndex`` over product texts and product photos.

One ``AurousEmbedding`` serves as both ``embed_model`` and ``image_embed_model``: texts and images
share one vector space, so a text query retrieves photos (text -> image) and a photo retrieves
similar photos (image -> image), with no CLIP model to download. No LLM is used: retrieval only
(a ``MockLLM`` in ``Settings.llm`` makes sure nothing reaches a default OpenAI model).

python examples/llama_index_multimodal.py                 # offline, against the local emulator
AUROUS_API_KEY=al_live_... python examples/llama_index_multimodal.py   # the live API

Offline, the vectors come from the emulator: a deterministic stand-in in which texts sharing words
are close and an image is close to the names of its colours. Nothing leaves the machine.
Needs: pip install "aurous-embed[llama-index,images,emulator]" (emulator: offline only)
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
from collections.abc import Iterator
from pathlib import Path

from llama_index.core import Settings
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.schema import BaseNode, ImageNode, NodeWithScore, TextNode

from aurous_embed.llama_index import AurousEmbedding

PRODUCTS = {
    "bag": "Red leather messenger bag, hand-stitched, with a brass buckle.",
    "shirt": "Blue cotton t-shirt, relaxed fit, soft and breathable for summer.",
    "jacket": "Yellow rain jacket with a hood, waterproof and windproof.",
    "fern": "Green fern in a ceramic pot, easy to care for indoors.",
}
PHOTOS = [
    "photo-red-umbrella.png",
    "photo-blue-vase.png",
    "photo-green-plant.png",
    "photo-yellow-lamp.png",
    "photo-white-mug.png",
]


@contextlib.contextmanager
def embed_model() -> Iterator[AurousEmbedding]:
    """The live API with AUROUS_API_KEY set; otherwise an embedded emulator on loopback."""
    with contextlib.ExitStack() as stack:
        if os.environ.get("AUROUS_API_KEY"):
            model = AurousEmbedding()  # reads AUROUS_API_KEY; base_url=... for another endpoint
        else:
            from aurous_embed.testing import Emulator

            print(
                "No AUROUS_API_KEY: using the local emulator (stand-in vectors, not the real model)."
            )
            emu = stack.enter_context(Emulator())
            model = AurousEmbedding(api_key=emu.api_key, base_url=emu.base_url)
        stack.callback(model.close)
        yield model


def show(hits: list[NodeWithScore]) -> str:
    names = []
    for hit in hits:
        node = hit.node
        name = node.metadata.get("file") or node.node_id
        names.append(f"{name} ({hit.score:.3f})")
    return ", ".join(names)


def main() -> None:
    Settings.llm = MockLLM()  # retrieval only: never build a default (networked) LLM
    images = importlib.resources.files("aurous_embed") / "demo_data" / "images"
    with importlib.resources.as_file(images) as folder, embed_model() as model:
        text_nodes = [TextNode(text=text, id_=key) for key, text in PRODUCTS.items()]
        # An image node needs text or metadata, or the index drops it.
        image_nodes = [
            ImageNode(image_path=str(folder / name), metadata={"file": name}) for name in PHOTOS
        ]
        nodes: list[BaseNode] = [*text_nodes, *image_nodes]
        index = MultiModalVectorStoreIndex(nodes, embed_model=model, image_embed_model=model)
        print(f"Indexed {len(text_nodes)} text nodes and {len(image_nodes)} image nodes.")
        retriever = index.as_retriever(similarity_top_k=2, image_similarity_top_k=2)

        print("\ntext -> text:")
        for query in ["waterproof jacket for rain", "a leather bag"]:
            print(f"  {query!r:>30} -> {show(retriever.text_retrieve(query))}")

        print("\ntext -> image:")
        for query in ["something yellow", "a green plant"]:
            print(f"  {query!r:>30} -> {show(retriever.text_to_image_retrieve(query))}")

        print("\nimage -> image:")
        for name in ["photo-red-bag.png", "photo-blue-shirt.png"]:
            hits = retriever.image_to_image_retrieve(str(Path(folder) / name))
            print(f"  {name:>30} -> {show(hits)}")


if __name__ == "__main__":
    main()
