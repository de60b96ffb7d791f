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
    assert wrong.startswith("InvalidArgumentError: ")  # Chroma's refusal, by type and first line
    assert "dimension" in wrong and "\n" not in wrong
    after = collection(tmp_path / "db")
    assert sorted(after.get(include=[])["ids"]) == ["a", "b"]
    assert after.metadata == {"aurous:layout": 2}


def test_half_a_message_ends_the_child_without_writing_it(tmp_path: Path) -> None:
    collection(tmp_path / "db")
    whole = frames(("upsert", {"ids": ["a"], "embeddings": numpy.ones((1, 4), numpy.float32)}))
    cut = io.BytesIO(whole.getvalue() + whole.getvalue()[:20])  # the parent died mid-message
    serve(str(tmp_path / "db"), "docs", cut, io.BytesIO())
    assert collection(tmp_path / "db").get(include=[])["ids"] == ["a"]


def test_a_collection_the_child_cannot_open_is_the_answer_to_every_write(tmp_path: Path) -> None:
    collection(tmp_path / "db")
    requests = frames(("delete", {"ids": ["a"]}), ("modify", {"metadata": {"k": 1}}))
    written = io.BytesIO()
    serve(str(tmp_path / "db"), "gone", requests, written)  # no exception leaves the child
    first, second = answers(written)
    assert first == second
    assert first.startswith(
        f"the Chroma writer cannot open collection 'gone' at {tmp_path / 'db'}: "
    )
    assert "NotFoundError" in first and "\n" not in first


def test_a_request_that_cannot_be_read_is_answered_and_the_next_applied(tmp_path: Path) -> None:
    collection(tmp_path / "db")
    good = frames(("upsert", {"ids": ["a"], "embeddings": numpy.ones((1, 4), numpy.float32)}))
    garbage = struct.pack("!Q", 3) + b"abc"
    written = io.BytesIO()
    serve(str(tmp_path / "db"), "docs", io.BytesIO(garbage + good.getvalue()), written)
    unreadable, applied = answers(written)
    assert unreadable.startswith("the Chroma writer cannot read a request: UnpicklingError")
    assert applied is None
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


def test_a_child_that_cannot_start_is_a_store_error_of_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    here = collection(tmp_path / "db")
    writer = WriterProcess(here, str(tmp_path / "elsewhere"))  # no such collection there
    try:
        with pytest.raises(StoreError) as info:
            writer.delete(ids=["a"])
        with pytest.raises(StoreError) as again:  # the child is still there, and says the same
            writer.modify(metadata={"k": 1})
    finally:
        writer.close()
    assert isinstance(info.value, WriterError)
    assert str(info.value).startswith("the Chroma writer cannot open collection 'docs' at ")
    assert "NotFoundError" in str(info.value) and "\n" not in str(info.value)
    assert str(again.value) == str(info.value)
    assert "Traceback" not in capfd.readouterr().err  # the child printed none
