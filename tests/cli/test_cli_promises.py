"""The command line on a broken terminal, and collections that know where their vectors came from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import chromadb
import pytest

from aurous_embed.testing import Emulator
from tests.cli.conftest import TIMEOUT, Run, clean_env
from tests.cli.test_cli import cli, one_error_line, server

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

CLI = (sys.executable, "-m", "aurous_embed.cli")


def folder(root: Path, n: int = 40) -> Path:
    root.mkdir()
    for i in range(n):
        (root / f"doc{i:02d}.txt").write_text(f"document number {i} about wool and leather\n")
    return root


def count(db: Path, collection: str) -> int:
    store = chromadb.PersistentClient(str(db))
    try:
        return int(store.get_collection(collection).count())
    finally:
        store.close()  # type: ignore[attr-defined]


def test_index_with_standard_error_closed_still_indexes_everything(
    tmp_path: Path, network_log: Path
) -> None:
    docs, db = folder(tmp_path / "docs"), tmp_path / "db"
    command = " ".join(
        [*CLI, "--emulator", "index", str(docs), "--collection", "docs", "--db", str(db)]
    )
    result = subprocess.run(
        ["sh", "-c", f"exec {command} 2>&-"],
        env=clean_env(network_log),
        capture_output=False,
        stdout=subprocess.PIPE,
        timeout=TIMEOUT,
        check=False,
    )
    # Measured before: exit 0 with nothing indexed.
    assert result.returncode == 0
    assert count(db, "docs") == 40


def test_index_piped_into_a_reader_that_leaves_early_finishes_its_work(
    tmp_path: Path, network_log: Path
) -> None:
    docs, db = folder(tmp_path / "docs"), tmp_path / "db"
    process = subprocess.Popen(
        [*CLI, "--emulator", "index", str(docs), "--collection", "docs", "--db", str(db)],
        env=clean_env(network_log),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # like `2>&1 | head -c 10`: the bar and the report, one pipe
    )
    assert process.stdout is not None
    process.stdout.read(10)
    process.stdout.close()  # the reader goes away
    # Measured before: it hung (tqdm's lock leaked by the failed write), or indexed nothing.
    assert process.wait(TIMEOUT) == 0
    assert count(db, "docs") == 40


def test_vectors_of_another_endpoint_are_never_mixed_into_a_collection(
    run: Run, tmp_path: Path, aurous_emulator: Emulator
) -> None:
    docs = folder(tmp_path / "docs", 3)
    first = cli(run, "--emulator", "index", str(docs), "--collection", "docs")
    assert first.returncode == 0, first.stderr
    served = server(aurous_emulator)
    for args in (["index", str(docs)], ["search", "wool"]):
        result = cli(run, *served, *args, "--collection", "docs")
        assert result.returncode == 2
        line = one_error_line(result.stderr)
        assert "the embedded emulator" in line and aurous_emulator.base_url in line
    assert aurous_emulator.stats.by_route.get("POST /v1/embeddings", 0) == 0  # nothing was paid
    again = cli(run, "--emulator", "index", str(docs), "--collection", "docs")
    assert again.returncode == 0, again.stderr  # the same endpoint is welcome


def test_a_key_with_a_line_break_in_it_is_refused_in_one_line_that_shows_none_of_it(
    run: Run,
) -> None:
    key = "al_live_5ec7e7" + "a" * 20 + "\n" + "b" * 30
    result = cli(run, "--api-key", key, "models")
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "api_key" in line
    for fragment in ("5ec7e7", "a" * 20, "b" * 30):
        assert fragment not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("command", "path"), [("embed", "/v1/embeddings"), ("estimate", "/v1/embeddings/estimate")]
)
def test_every_success_is_printed_when_some_inputs_fail(
    run: Run, aurous_emulator: Emulator, command: str, path: str
) -> None:
    texts = [f"text number {i}" for i in range(40)]
    aurous_emulator.queue_faults("status=500", path=path)  # the first request fails
    result = cli(run, *server(aurous_emulator), "--json", "--max-retries", "0", command, *texts)
    assert result.returncode == 5  # measured before: nothing printed (exit 5, estimate exit 4)
    if command == "embed":
        rows = [json.loads(line) for line in result.stdout.splitlines()]
    else:
        rows = json.loads(result.stdout)
    assert len(rows) == 39
    assert [r["index"] for r in rows] == sorted(r["index"] for r in rows)  # input order
    failed = set(range(40)) - {r["index"] for r in rows}
    assert len(failed) == 1
    line = one_error_line(result.stderr)
    assert line.startswith(f"error: input {failed.pop()} (") and "500" in line
    assert ".results" not in result.stderr  # command-line words, not Python attributes


def test_a_full_disk_under_the_local_cache_or_database_is_one_line_and_exit_6(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """SQLite says "database or disk is full" (Chroma's store, or the embedding cache flushing as
    the run unwinds): a store error, not a traceback with exit 1."""
    import sqlite3

    import aurous_embed.cli as cli_module

    def full(*_: object) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setitem(cli_module.COMMANDS, "index", full)
    code = cli_module.main(["index", str(tmp_path), "--collection", "c", "--db", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 6
    assert err.strip().splitlines() == [
        "error: the local cache or database: database or disk is full"
    ]
