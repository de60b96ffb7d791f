"""``index_folder``'s durability: results reach the collection as they finish, a slow request holds
back no other file, an open batch goes when it is old even if nothing else finishes, and an
interruption while the last writes are made still keeps them and returns the report."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aurous_embed import AurousClient
from aurous_embed import _indexing as indexing
from aurous_embed._indexing import _Writer, index_folder
from aurous_embed._scan import Chunking, scan_folder
from aurous_embed.testing import Emulator
from tests.helpers import make_client
from tests.unit.conftest import FakeClock

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

WAIT = 30.0  # a bound on waiting for another thread, never reached when the code is right


class Collection:
    """A collection that records writes and lets a test wait for a number of entries."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.deleted: list[str] = []
        self.metadata: dict[str, Any] = {indexing.LAYOUT_KEY: indexing.LAYOUT}
        self.changed = threading.Condition()

    def get(self, **_: Any) -> dict[str, Any]:
        return {"ids": [], "metadatas": []}

    def upsert(self, *, ids: list[str], **_: Any) -> None:
        with self.changed:
            self.ids.extend(ids)
            self.changed.notify_all()

    def delete(self, *, ids: list[str]) -> None:
        self.deleted.extend(ids)

    def wait_for(self, count: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.ids) >= count, timeout=WAIT)


def folder(tmp_path: Path, files: int) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    for i in range(files):
        (root / f"note-{i:02d}.txt").write_text(f"note number {i} about tents\n")
    return root


def client_of(emulator: Emulator) -> AurousClient:
    return make_client("sync", emulator.api_key, base_url=emulator.base_url)  # type: ignore[no-any-return]


def test_a_slow_request_holds_back_no_other_file(
    tmp_path: Path,
    aurous_emulator_factory: Callable[..., Emulator],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(indexing, "FLUSH_ITEMS", 1)  # each finished file is a batch of its own
    emulator = aurous_emulator_factory()
    emulator.queue_faults("slow=60")  # the first request the emulator gets is held until released
    scan = scan_folder(folder(tmp_path, 12), Chunking())
    collection = Collection()
    reports: list[indexing.IndexReport] = []
    with client_of(emulator) as client:
        worker = threading.Thread(
            target=lambda: reports.append(index_folder(client, collection, scan)), daemon=True
        )
        worker.start()
        try:
            # Eleven files are written while the twelfth request is still held (in input order,
            # none after the held one would be).
            assert collection.wait_for(11)
            assert emulator.stats.slow_in_flight == 1
        finally:
            emulator.release_slow()
        worker.join(WAIT)
    assert len(set(collection.ids)) == 12
    assert reports[0].added == 12 and not reports[0].failed


class Source:
    """The least of :class:`aurous_embed._scan.Source` that the writer reads."""

    def __init__(self, name: str) -> None:
        self.path = Path(name)
        self.chunks = [type("Chunk", (), {"id": f"{name}-0", "text": name})()]

    def metadata(self, chunk: Any, root: Path) -> dict[str, Any]:
        return {"path": str(self.path)}


def test_an_open_batch_is_written_when_it_is_old_though_nothing_else_finishes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(indexing, "FLUSH_SECONDS", 0.01)  # how often the writer thread looks
    clock = FakeClock()
    collection = Collection()
    writer = _Writer(collection, Path("/docs"), clock.monotonic)
    try:
        writer.file(Source("a"), [[1.0]], [])  # type: ignore[arg-type]
        assert collection.ids == []  # one entry, and not old yet: the batch stays open
        clock.now += 1.0  # older than FLUSH_SECONDS on the writer's clock
        assert collection.wait_for(1)
        assert collection.ids == ["a-0"]
    finally:
        writer.close()


def test_index_folder_returns_its_report_when_interrupted_during_the_last_writes(
    tmp_path: Path,
    aurous_emulator_factory: Callable[..., Emulator],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator = aurous_emulator_factory()
    scan = scan_folder(folder(tmp_path, 5), Chunking())
    collection = Collection()
    closes = 0
    close = _Writer.close

    def interrupted_once(self: _Writer) -> None:
        nonlocal closes
        closes += 1
        if closes == 1:
            raise KeyboardInterrupt  # as SIGTERM turned into one by the CLI would
        close(self)

    monkeypatch.setattr(_Writer, "close", interrupted_once)
    with client_of(emulator) as client:
        report = index_folder(client, collection, scan)
    assert report.interrupted
    assert report.added == 5 and sorted(set(collection.ids)) == sorted(collection.ids)
    assert len(collection.ids) == 5  # every finished file was written


def test_entries_under_a_folder_that_could_not_be_listed_are_not_removed(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    paths = {"a": root / "sub" / "a.txt", "b": root / "subway" / "b.txt", "c": root / "sub.txt"}

    class Stored:
        def get(self, *, ids: list[str], **_: Any) -> dict[str, Any]:
            return {"ids": ids, "metadatas": [{"path": str(paths[i[0]])} for i in ids]}

    stored = {f"<gone {k}>": indexing.Stored({"fp": [f"{k}-fp-0", f"{k}-fp-1"]}) for k in paths}
    scan = indexing.Scan(root, unlisted=[root / "sub"])
    assert indexing._gone(Stored(), stored, scan) == ["<gone b>", "<gone c>"]
    assert indexing._gone(Stored(), stored, indexing.Scan(root)) == list(stored)
