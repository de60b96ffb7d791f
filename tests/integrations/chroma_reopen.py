"""Run by ``test_chroma.py`` in a fresh process: reopen a persistent collection WITHOUT passing
the embedding function, query it, print the answer as JSON.

Usage: ``python chroma_reopen.py DB_PATH COLLECTION QUERY_TEXT``. The key and the API address
come from ``AUROUS_API_KEY`` / ``AUROUS_BASE_URL``; importing ``aurous_embed.chroma`` is what
lets Chroma rebuild the function from the stored config.
"""

from __future__ import annotations

import json
import sys

import chromadb
from chromadb.config import Settings

import aurous_embed.chroma  # noqa: F401  (registers the "aurous" embedding function)


def main() -> None:
    path, name, query = sys.argv[1:4]
    client = chromadb.PersistentClient(path, settings=Settings(anonymized_telemetry=False))
    collection = client.get_collection(name)  # no embedding_function: rebuilt from the config
    result = collection.query(query_texts=[query], n_results=1)
    stored = collection.configuration_json["embedding_function"]
    print(json.dumps({"ids": result["ids"], "embedding_function": stored}))


if __name__ == "__main__":
    main()
