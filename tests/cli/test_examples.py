"""Every script in ``examples/`` runs offline (no AUROUS_API_KEY) and prints its key results.

Each runs as a subprocess from an empty temporary directory, under a guard that blocks and records
any network access other than loopback (the embedded emulator), so "offline" is checked, not
assumed. The expected lines follow from the emulator's vectors (texts sharing words are close, an
image is close to the names of its colours), so a wrong retrieval result fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.conftest import Run

EXAMPLES = Path(__file__).parents[2] / "examples"
OFFLINE_NOTICE = "No AUROUS_API_KEY: using the local emulator"

# example file -> lines (or regular expressions) its output must contain
EXPECTED: dict[str, list[str | re.Pattern[str]]] = {
    "quickstart.py": [
        re.compile(r"red bag text: cosine \+0\.\d+"),
        re.compile(r"^4 requests, \d+ tokens, [\d.]+ credits; vectors of 2048 floats$", re.M),
    ],
    "langchain_rag.py": [
        "Indexed 6 product texts and 3 photos in one collection.",
        "- Yellow rain jacket with a hood, waterproof and windproof.",  # retrieved for "rain"
        "'something red' -> [photo] photo-red-umbrella.png",
        "'a green plant' -> [photo] photo-green-plant.png",
        "photo-red-bag.png -> Red leather messenger bag",  # similarity_search_by_image
    ],
    "llama_index_multimodal.py": [
        "Indexed 4 text nodes and 5 image nodes.",
        re.compile(r"'waterproof jacket for rain' -> jacket \("),
        re.compile(r"'something yellow' -> photo-yellow-lamp\.png \("),
        re.compile(r"photo-blue-shirt\.png -> photo-blue-vase\.png \("),
    ],
    "chroma_collection.py": [
        "Collection 'products' in ",
        re.compile(r"query_uris=\[photo-blue-shirt\.png\].*\n\s+[\d.]+\s+vase-photo "),
        "Reopened without the function; Chroma rebuilt it from: 'aurous'",
        "'api_key_env_var': 'AUROUS_API_KEY'",
        re.compile(r"'something yellow'\] on the reopened collection:\n\s+[\d.]+\s+lamp-photo "),
    ],
    "langchain_multimodal_documents.py": [
        "InMemoryVectorStore: 7 documents, 6 of them text+image.",
        "'a red kettle' -> Photo of a red steel kettle [photo-red-kettle.png]",
        "'hiking boots' -> Photo of brown hiking boots [photo-brown-boots.png]",
        re.compile(
            r"Chroma \(async add\): 'a leather bag' -> Photo of a red leather messenger bag"
        ),
    ],
    "llama_index_image_nodes.py": [
        "Embedded 6 image nodes, each caption and photo as one vector.",
        "'a red kettle' -> Photo of a red steel kettle [photo-red-kettle.png]",
        "'a leather bag' -> Photo of a red leather messenger bag [photo-red-bag.png]",
    ],
    "chroma_multimodal.py": [
        "Added 6 text+image documents, one vector each.",
        "'hiking boots' -> photo-brown-boots: Photo of brown hiking boots",
    ],
    "openai_migration.py": [
        "input=[2 strings] -> HTTP 400 embeddings_batch_not_supported",
        re.compile(r"20 texts, sequential embeddings\.create: [\d.]+ s"),
        re.compile(r"20 texts, embed_many: [\d.]+ s"),
        "texts: 20 of 20 vectors match",
        "text + image: same vector",
    ],
}


def test_every_example_has_expectations() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_offline(name: str, run: Run, tmp_path: Path) -> None:
    result = run(str(EXAMPLES / name))
    assert result.returncode == 0, result.stderr[-3000:]
    assert OFFLINE_NOTICE in result.stdout
    for expected in EXPECTED[name]:
        if isinstance(expected, str):
            assert expected in result.stdout, f"{expected!r} missing from:\n{result.stdout}"
        else:
            assert expected.search(result.stdout), (
                f"{expected.pattern!r} no match in:\n{result.stdout}"
            )
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing left behind in the working directory


def test_the_network_guard_blocks_and_records(run: Run, network_log: Path) -> None:
    # The guard the example tests rely on: a real attempt fails and is written down.
    code = "import httpx\ntry:\n    httpx.get('https://example.com')\nexcept httpx.ConnectError as e:\n    print(e)"
    result = run("-c", code)
    assert "network access blocked" in result.stdout
    assert network_log.read_text() == "getaddrinfo 'example.com'\n"
    network_log.unlink()  # expected here; the fixture asserts it is gone
