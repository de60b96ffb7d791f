"""LlamaIndex ImageNodes with a caption: each embedded as ONE text+image vector.

``AurousEmbedding(multimodal_nodes=True)`` as an ingestion transformation embeds an ``ImageNode``
from its text and its image together; a ``MultiModalVectorStoreIndex`` built from those nodes keeps
the combined vectors, and a text query retrieves the product by caption and picture at once.

python examples/llama_index_image_nodes.py                 # offline, the local emulator
AUROUS_API_KEY=al_live_... python examples/llama_index_image_nodes.py   # the live API

Needs: pip install "aurous-embed[llama-index,emulator]" (emulator: offline only)
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
from collections.abc import Iterator
from pathlib import Path

from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import ImageNode

from aurous_embed.llama_index import AurousEmbedding


@contextlib.contextmanager
def model() -> Iterator[AurousEmbedding]:
    if os.environ.get("AUROUS_API_KEY"):
        yield AurousEmbedding(multimodal_nodes=True)
        return
    from aurous_embed.testing import Emulator

    print("No AUROUS_API_KEY: using the local emulator (stand-in vectors, not the real model).")
    with Emulator() as emu:
        made = AurousEmbedding(api_key=emu.api_key, base_url=emu.base_url, multimodal_nodes=True)
        yield made
        made.close()


def main() -> None:
    images = importlib.resources.files("aurous_embed") / "demo_data" / "images"
    with importlib.resources.as_file(images) as folder, model() as embed_model:
        nodes = [
            ImageNode(text=caption.read_text().strip(), image_path=str(caption.with_suffix(".png")))
            for caption in sorted(Path(folder).glob("*.txt"))
        ]
        embedded = IngestionPipeline(transformations=[embed_model]).run(nodes=nodes)
        print(f"Embedded {len(embedded)} image nodes, each caption and photo as one vector.")
        index = MultiModalVectorStoreIndex(
            embedded, embed_model=embed_model, image_embed_model=embed_model
        )
        retriever = index.as_retriever(image_similarity_top_k=1)
        for query in ("a red kettle", "a leather bag"):
            hit = retriever.text_to_image_retrieve(query)[0]
            print(f"{query!r} -> {hit.node.text} [{Path(hit.node.image_path).name}]")


if __name__ == "__main__":
    main()
