"""``index`` writes a local Chroma database from a process of its own (Chroma holds the GIL while it
inserts): the writes arrive in order, an error in the child is raised in the parent, and what was
sent is written even when the parent stops listening."""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path
from typing import Any

import chromadb
import numpy
import pytest

from aurous_embed.cli._base import StoreError
from aurous_embed.cli._chroma_writer import WriterError, WriterProcess, serve


def collection(db: Path) -> Any:
    store = chromadb.PersistentClient(str(db))
    return store.get_or_create_collection("docs")


def frames(*messages: object) -> io.BytesIO:
    data = b""
    for message in messages:
        body = pickle.dumps(message)
        data += struct.pack("!Q", len(body)) + body
    return io.BytesIO(data)


def answers(stream: io.BytesIO) -> list[Any]:
    stream.seek(0)
    found = []
    while head := stream.read(8):
        found.append(pickle.loads(stream.read(struct.unpack("!Q", head)[0])))
    return found


def test_the_child_applies_each_write_in_order_and_answers_each(tmp_path: Path) -> None:
    collection(tmp_path / "db").add(ids=["old"], embeddings=[[0.5] * 4], documents=["old"])
    requests = frames(
        ("upsert", {"ids": ["a", "b"], "embeddings": numpy.ones((2, 4), numpy.float32)}),
        ("delete", {"ids": ["old"]}),
        ("upsert", {"ids": ["c"], "embeddings": numpy.ones((1, 3), numpy.float32)}),
        ("modify", {"metadata": {"aurous:layout": 2}}),
    )
    written = io.BytesIO()
    serve(str(tmp_path / "db"), "docs", requests, written)
    first, second, wrong, last = answers(written)
    assert first is None and second is None and last is None
    assert "dimension" in wrong[1]  # Chroma's refusal, by type and message
    after = collection(tmp_path / "db")
    assert sorted(after.get(include=[])["ids"]) == ["a", "b"]
    assert after.metadata == {"aurous:layout": 2}


def test_half_a_message_ends_the_child_without_writing_it(tmp_path: Path) -> None:
    collection(tmp_path / "db")
    whole = frames(("upsert", {"ids": ["a"], "embeddings": numpy.ones((1, 4), numpy.float32)}))
    cut = io.BytesIO(whole.getvalue() + whole.getvalue()[:20])  # the parent died mid-message
    serve(str(tmp_path / "db"), "docs", cut, io.BytesIO())
    assert collection(tmp_path / "db").get(include=[])["ids"] == ["a"]


def test_the_parent_reads_here_writes_there_and_raises_the_childs_errors(tmp_path: Path) -> None:
    here = collection(tmp_path / "db")
    with WriterProcess(here, str(tmp_path / "db")) as writer:
        writer.upsert(ids=["a"], embeddings=numpy.ones((1, 4), numpy.float32), documents=["a"])
        assert writer.get(include=[])["ids"] == ["a"]  # a read in this process sees the write
        with pytest.raises(WriterError, match="dimension"):
            writer.upsert(ids=["b"], embeddings=numpy.ones((1, 3), numpy.float32))
        writer.delete(ids=["a"])
    assert here.get(include=[])["ids"] == []


def test_a_child_that_cannot_start_is_a_store_error(tmp_path: Path) -> None:
    here = collection(tmp_path / "db")
    writer = WriterProcess(here, str(tmp_path / "elsewhere"))  # no such collection there
    try:
        with pytest.raises(StoreError, match="writer process ended"):
            writer.delete(ids=["a"])
    finally:
        writer.close()
