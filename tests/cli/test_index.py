"""``aurous-embed index`` as an ingestion tool: the collection mirrors the folder, long texts are
chunked, interrupted work is kept, per-file errors never end the run, a folder is costed first."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import chromadb
import pytest
from PIL import Image as PILImage

from aurous_embed.testing import Emulator
from tests.cli.conftest import TIMEOUT, Run, clean_env
from tests.cli.test_cli import cli, embedding_requests, one_error_line

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

CLI = (sys.executable, "-m", "aurous_embed.cli")


def entries(db: Path, collection: str = "docs") -> dict[str, Any]:
    store = chromadb.PersistentClient(str(db))
    try:
        got = store.get_collection(collection).get(include=["metadatas", "documents"])
    finally:
        store.close()  # type: ignore[attr-defined]
    return {
        "ids": got["ids"],
        "metas": got["metadatas"],
        "docs": got["documents"],
        "paths": {Path(str(m["path"])).name for m in got["metadatas"]},
    }


def served(emu: Emulator) -> dict[str, str]:
    return {"AUROUS_API_KEY": emu.api_key, "AUROUS_BASE_URL": emu.base_url}


def index(run: Run, emu: Emulator, *args: str) -> tuple[Any, dict[str, Any]]:
    result = cli(
        run, "--json", "index", "docs", "--collection", "docs", "--db", "db", *args, env=served(emu)
    )
    report = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result, report


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "sweater.txt").write_text("Green merino wool sweater, warm for winter.\n")
    (folder / "lamp.md").write_text("# Lamp\n\nYellow brass desk lamp with a warm light.\n")
    (folder / "boots.rst").write_text("Boots\n=====\n\nBrown leather hiking boots.\n")
    (folder / "page.html").write_text(
        "<html><head><title>x</title><script>var secret = 1;</script></head>"
        "<body><h1>Tent</h1><p>A two-person tent for <b>camping</b>.</p></body></html>"
    )
    PILImage.new("RGB", (32, 32), (200, 30, 30)).save(folder / "red.gif")
    PILImage.new("RGB", (32, 32), (30, 30, 200)).save(folder / "blue.bmp")
    return folder


# --- mirror ---------------------------------------------------------------------------------------


def test_the_collection_mirrors_the_folder(
    run: Run, docs: Path, tmp_path: Path, aurous_emulator: Emulator
) -> None:
    first, report = index(run, aurous_emulator)
    assert first.returncode == 0, first.stderr
    assert (report["added"], report["updated"], report["unchanged"], report["removed"]) == (
        6,
        0,
        0,
        0,
    )
    stored = entries(tmp_path / "db")
    assert stored["paths"] == {
        "sweater.txt",
        "lamp.md",
        "boots.rst",
        "page.html",
        "red.gif",
        "blue.bmp",
    }
    html = next(
        d
        for d, m in zip(stored["docs"], stored["metas"], strict=True)
        if str(m["path"]).endswith("page.html")
    )
    assert "camping" in html and "secret" not in html  # text only

    sent = embedding_requests(aurous_emulator)
    again, report = index(run, aurous_emulator)
    assert again.returncode == 0, again.stderr
    assert report["unchanged"] == 6 and embedding_requests(aurous_emulator) == sent  # nothing sent

    (docs / "sweater.txt").write_text("Blue cotton shirt, light for summer.\n")  # changed
    (docs / "boots.rst").unlink()  # deleted
    (docs / "new.txt").write_text("A new red umbrella.\n")  # added
    third, report = index(run, aurous_emulator)
    assert third.returncode == 0, third.stderr
    assert (report["added"], report["updated"], report["unchanged"], report["removed"]) == (
        1,
        1,
        4,
        1,
    )
    assert embedding_requests(aurous_emulator) == sent + 2  # only what changed
    stored = entries(tmp_path / "db")
    assert "boots.rst" not in stored["paths"]
    texts = [
        d
        for d, m in zip(stored["docs"], stored["metas"], strict=True)
        if str(m["path"]).endswith("sweater.txt")
    ]
    assert texts == ["Blue cotton shirt, light for summer."]  # the old version is gone

    (docs / "lamp.md").unlink()
    fourth, report = index(run, aurous_emulator, "--keep-deleted")
    assert fourth.returncode == 0 and report["removed"] == 0
    assert "lamp.md" in entries(tmp_path / "db")["paths"]


# --- chunking -------------------------------------------------------------------------------------


def test_long_texts_are_chunked_and_every_chunk_names_its_place(
    run: Run, tmp_path: Path, aurous_emulator: Emulator
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    paragraph = "The quick brown fox jumps over the lazy dog near the river bank. " * 12 + "\n\n"
    text = "".join(f"Section {i}. {paragraph}" for i in range(1800))  # about 1.4 MB
    assert len(text) > 1_000_000
    (folder / "book.txt").write_text(text)
    result, report = index(run, aurous_emulator)
    assert result.returncode == 0, result.stderr  # measured before: failed on every run
    stored = entries(tmp_path / "db")
    chunks = sorted(
        zip(stored["metas"], stored["docs"], strict=True), key=lambda md: int(md[0]["chunk"])
    )
    assert len(chunks) == report["entries_written"] > 300
    for meta, document in chunks:
        assert Path(str(meta["path"])).name == "book.txt"
        assert text[int(meta["start"]) : int(meta["end"])] == document  # traced back exactly
    assert [int(m["chunk"]) for m, _ in chunks] == list(range(len(chunks)))
    whole, _ = index(run, aurous_emulator, "--chunk-size", "0")
    assert whole.returncode == 5
    assert "book.txt" in whole.stdout and "1,000,000" in whole.stdout


def minimal_pdf(pages: list[str]) -> bytes:
    """A valid PDF whose pages each show one line of text (enough for a text extractor)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for n, text in enumerate(pages):
        page_id, content_id = 4 + 2 * n, 5 + 2 * n
        kids.append(f"{page_id} 0 R")
        stream = f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET"
        objects += [
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
            "/Resources << /Font << /F1 3 0 R >> >> >>",
            f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        ]
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    objects.insert(2, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out


def test_pdf_pages_are_indexed_with_their_page_numbers(
    run: Run, tmp_path: Path, aurous_emulator: Emulator
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "manual.pdf").write_bytes(
        minimal_pdf(["Waterproof tent manual", "Packing the poles"])
    )
    result, _ = index(run, aurous_emulator)
    assert result.returncode == 0, result.stderr
    stored = entries(tmp_path / "db")
    pages = {int(m["page"]): d for m, d in zip(stored["metas"], stored["docs"], strict=True)}
    assert pages == {1: "Waterproof tent manual", 2: "Packing the poles"}


# --- errors of one file never end the run ------------------------------------------------------


def test_files_that_cannot_be_indexed_are_listed_and_the_rest_indexed(
    run: Run, docs: Path, tmp_path: Path, aurous_emulator: Emulator
) -> None:
    os.mkfifo(docs / "pipe.txt")
    (docs / "dangling.md").symlink_to(docs / "gone.md")
    (docs / "folder.png").mkdir()
    (docs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (docs / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(docs / "socket.txt"))
    try:
        result, report = index(run, aurous_emulator)
    finally:
        sock.close()
    assert result.returncode == 5
    assert "Traceback" not in result.stderr
    failed = {Path(f["path"]).name: f["error"] for f in report["failed"]}
    assert set(failed) == {"pipe.txt", "dangling.md", "broken.png", "latin1.txt", "socket.txt"}
    assert "named pipe" in failed["pipe.txt"]
    assert "broken symbolic link" in failed["dangling.md"]
    assert "UTF-8" in failed["latin1.txt"]
    assert report["added"] == 6  # everything else is in
    counted = report["added"] + report["updated"] + report["unchanged"] + len(report["failed"])
    assert report["documents"] == counted == 11  # 6 indexed and 5 failed, one count
    skipped = {Path(f["path"]).name: f["reason"] for f in report["skipped"]}
    assert "directory named like a file" in skipped["folder.png"]  # listed, not a failure


def test_folders_named_like_files_and_links_to_folders_are_listed_and_not_failures(
    run: Run, docs: Path, tmp_path: Path, aurous_emulator: Emulator
) -> None:
    (docs / "photos.png").mkdir()
    (docs / "photos.png" / "inside.txt").write_text("A note inside a folder named like an image.")
    (docs / "elsewhere").symlink_to(tmp_path / "outside", target_is_directory=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "far.txt").write_text("not under the indexed folder")
    for _ in range(2):  # not a failure, so not exit 5 on every run
        result, report = index(run, aurous_emulator)
        assert result.returncode == 0, result.stdout + result.stderr
        skipped = {Path(f["path"]).name: f["reason"] for f in report["skipped"]}
        assert "looked into" in skipped["photos.png"]
        assert "link to a folder (not followed)" in skipped["elsewhere"]
    assert "inside.txt" in entries(tmp_path / "db")["paths"]
    assert "far.txt" not in entries(tmp_path / "db")["paths"]


def test_a_link_given_as_the_path_is_indexed_under_its_own_name(
    run: Run, docs: Path, tmp_path: Path, aurous_emulator: Emulator
) -> None:
    (tmp_path / "link.txt").symlink_to(docs / "sweater.txt")
    (tmp_path / "gone.txt").symlink_to(tmp_path / "nowhere" / "x.txt")
    args = ("--json", "index", "link.txt", "--collection", "one", "--db", "db")
    result = cli(run, *args, env=served(aurous_emulator))
    assert result.returncode == 0, result.stderr
    [meta] = entries(tmp_path / "db", "one")["metas"]
    assert meta["path"] == str(tmp_path / "link.txt")
    estimate = cli(run, "--json", "estimate", "--path", "gone.txt")
    [failed] = json.loads(estimate.stdout)["failed"]
    assert failed["path"] == str(tmp_path / "gone.txt")
    assert "broken symbolic link" in failed["reason"]
    (tmp_path / "shelf").symlink_to(docs, target_is_directory=True)  # a link to a folder
    folder_args = ("--json", "index", "shelf", "--collection", "two", "--db", "db")
    through = cli(run, *folder_args, env=served(aurous_emulator))
    assert through.returncode == 0, through.stderr
    metas = entries(tmp_path / "db", "two")["metas"]
    assert len(metas) == 6 and all(str(m["path"]).startswith(f"{docs}/") for m in metas)
    direct = cli(run, *folder_args[:2], "docs", *folder_args[3:], env=served(aurous_emulator))
    assert json.loads(direct.stdout)["unchanged"] == 6  # the same entries, by either name


#: ``python -c`` running the CLI with one folder that cannot be listed (as a ``chmod 000`` folder
#: is for anyone but root: the tests may run as root, who can list every folder).
UNLISTABLE = """
import os, sys
real = os.scandir
def scandir(path="."):
    if os.fspath(path).endswith(os.sep + "sub"):
        raise PermissionError(13, "Permission denied", os.fspath(path))
    return real(path)
os.scandir = scandir
from aurous_embed.cli import main
sys.argv[0] = "aurous-embed"
sys.exit(main())
"""


def test_a_folder_that_cannot_be_listed_fails_and_its_files_entries_are_kept(
    run: Run, docs: Path, tmp_path: Path, aurous_emulator: Emulator
) -> None:
    (docs / "sub").mkdir()
    (docs / "sub" / "tent.txt").write_text("A two-person tent.\n")
    first, _ = index(run, aurous_emulator)
    assert first.returncode == 0, first.stderr
    before = entries(tmp_path / "db")
    assert "tent.txt" in before["paths"]
    args = ("--json", "index", "docs", "--collection", "docs", "--db", "db")
    again = run("-c", UNLISTABLE, *args, env=served(aurous_emulator))
    assert again.returncode == 5, again.stderr
    report = json.loads(again.stdout)
    assert [Path(f["path"]).name for f in report["failed"]] == ["sub"]
    assert "cannot be listed" in report["failed"][0]["error"]
    assert report["removed"] == 0
    assert sorted(entries(tmp_path / "db")["ids"]) == sorted(before["ids"])  # nothing removed
    dry = run("-c", UNLISTABLE, *args, "--dry-run", env=served(aurous_emulator))
    assert dry.returncode == 0
    assert [Path(f["path"]).name for f in json.loads(dry.stdout)["failed"]] == ["sub"]
    back = index(run, aurous_emulator)[1]  # listed again: nothing to do
    assert (back["removed"], back["added"], back["unchanged"]) == (0, 0, 7)


def test_a_file_whose_name_is_not_utf8_fails_alone_and_is_listed_escaped(
    run: Run, docs: Path, tmp_path: Path, aurous_emulator: Emulator
) -> None:
    (docs / os.fsdecode(b"caf\xe9.txt")).write_text("a file about hail")  # a Latin-1 name
    dry, costed = index(run, aurous_emulator, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert costed["documents"] == 6  # not counted
    assert [(Path(f["path"]).name, f["reason"]) for f in costed["failed"]] == [
        ("caf\\xe9.txt", "its name is not valid UTF-8")
    ]
    result, report = index(run, aurous_emulator)
    assert result.returncode == 5, result.stderr  # measured before: exit 6, nothing written
    assert [(Path(f["path"]).name, f["error"]) for f in report["failed"]] == [
        ("caf\\xe9.txt", "its name is not valid UTF-8")
    ]
    assert report["added"] == 6 and len(entries(tmp_path / "db")["ids"]) == 6


def test_a_bad_key_is_one_line_not_one_per_file(
    run: Run, docs: Path, aurous_emulator: Emulator
) -> None:
    env = {**served(aurous_emulator), "AUROUS_API_KEY": "al_live_" + "0" * 64}
    result = cli(run, "index", "docs", "--collection", "docs", "--db", "db", env=env)
    assert result.returncode == 3
    assert result.stdout.count("401") == 1  # the summary's "stopped" line, not one per file
    assert "6 documents not indexed" in result.stdout
    sent = embedding_requests(aurous_emulator)  # the summary counts what the server received
    assert 1 <= sent <= 4 and f"{sent} requests" in result.stdout  # was "0 requests" (answers)


def test_a_missing_key_speaks_the_command_lines_words(run: Run, docs: Path) -> None:
    result = cli(run, "index", "docs", "--collection", "docs", "--db", "db")
    assert result.returncode == 3
    line = one_error_line(result.stderr)
    assert "--api-key" in line and "AUROUS_API_KEY" in line and "api_key=" not in line


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (
            ["index", "docs", "--collection", "docs", "--chroma-host", "http://127.0.0.1:9"],
            6,
            "Chroma server",
        ),
        (["index", "docs", "--collection", "docs", "--db", "afile"], 6, "is a file"),
        (["search", "wool", "--collection", "docs", "--db", "db", "-k", "0"], 2, "-k"),
        (
            ["--timeout", "inf", "index", "docs", "--collection", "docs", "--db", "db"],
            2,
            "--timeout",
        ),
        (["embed", "hi", "--dimensions", str(2**70)], 2, "dimensions"),
        (["search", "wool", "--collection", "docs", "--db", "db", "-k", str(2**32)], 2, "-k"),
        *(
            ([*command, option, str(2**64)], 2, option)
            for command in (
                ["index", "docs", "--collection", "docs", "--db", "db"],
                ["index", "docs", "--collection", "docs", "--db", "db", "--dry-run"],
                ["estimate", "--path", "docs"],
            )
            for option in ("--chunk-size", "--chunk-overlap")
        ),
    ],
)
def test_store_and_option_errors_are_one_line_with_a_documented_code(
    run: Run, docs: Path, tmp_path: Path, args: list[str], code: int, fragment: str
) -> None:
    (tmp_path / "afile").write_text("not a database")
    (tmp_path / "db").mkdir(exist_ok=True)
    result = cli(run, "--emulator", *args)
    assert result.returncode == code, result.stderr
    assert fragment in one_error_line(result.stderr)


# --- cost first -----------------------------------------------------------------------------------


def test_dry_run_costs_a_folder_and_sends_and_writes_nothing(
    run: Run, docs: Path, tmp_path: Path, aurous_emulator: Emulator
) -> None:
    result, report = index(run, aurous_emulator, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert (report["documents"], report["chunks"], report["images"]) == (6, 6, 2)
    assert report["estimated_tokens"] > 3000 and report["estimated_credits"] > 0  # two images
    assert aurous_emulator.stats.requests == 0
    assert not (tmp_path / "db").exists()
    estimate = cli(run, "--json", "estimate", "--path", "docs")
    assert estimate.returncode == 0, estimate.stderr
    assert json.loads(estimate.stdout)["estimated_tokens"] == report["estimated_tokens"]


def test_dry_run_lists_a_file_over_the_apis_cap_and_costs_the_rest(
    run: Run, docs: Path, aurous_emulator: Emulator
) -> None:
    (docs / "huge.txt").write_text("word " * 240_000)  # 1.2 million characters
    (docs / "emoji.txt").write_text("\N{GRINNING FACE}" * 600_000)  # 600,000 tokens, 2.4 MB
    chunking = ("--chunk-size", "0")
    result, report = index(run, aurous_emulator, "--dry-run", *chunking)
    estimate = cli(run, "--json", "estimate", "--path", "docs", *chunking)
    assert result.returncode == estimate.returncode == 0, result.stderr + estimate.stderr
    for costed in (report, json.loads(estimate.stdout)):  # measured before: exit 2, no cost
        assert costed["documents"] == 6 and costed["estimated_tokens"] > 3000
        failed = {Path(f["path"]).name: f["reason"] for f in costed["failed"]}
        assert "1,000,000" in failed["huge.txt"]  # characters
        assert "128,000" in failed["emoji.txt"]  # tokens: the API refused it (a 400) before
    assert aurous_emulator.stats.requests == 0
    indexed, report = index(run, aurous_emulator, *chunking)
    assert indexed.returncode == 5
    assert sorted(Path(f["path"]).name for f in report["failed"]) == ["emoji.txt", "huge.txt"]
    assert embedding_requests(aurous_emulator) == 6  # the two were never sent


def test_hidden_files_and_folders_are_listed_as_skipped(
    run: Run, docs: Path, aurous_emulator: Emulator
) -> None:
    (docs / ".notes.txt").write_text("hidden")
    (docs / ".cache").mkdir()
    (docs / ".cache" / "b.txt").write_text("in a hidden folder")
    result, report = index(run, aurous_emulator, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert {Path(s["path"]).name: s["reason"] for s in report["skipped"]} == {
        ".notes.txt": "a hidden file",
        ".cache": "a hidden folder (not looked into)",
    }  # measured before: listed nowhere
    assert report["documents"] == 6


def test_max_image_side_sends_fewer_bytes(
    run: Run, tmp_path: Path, aurous_emulator: Emulator
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    import numpy

    noise = numpy.random.default_rng(7).integers(0, 255, (1200, 1600, 3), dtype=numpy.uint8)
    PILImage.fromarray(noise).save(folder / "photo.jpg", quality=90)
    full, full_report = index(run, aurous_emulator)
    small, small_report = cli_report(
        run, aurous_emulator, "--collection", "small", "--max-image-side", "400"
    )
    assert full.returncode == small.returncode == 0
    assert small_report["bytes_sent"] * 4 < full_report["bytes_sent"]


def test_max_image_side_downscales_a_16_bit_scan(
    run: Run, tmp_path: Path, aurous_emulator: Emulator
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    import numpy

    scan = (numpy.arange(400 * 300) * 7 % 65536).astype(numpy.uint16).reshape(300, 400)
    PILImage.fromarray(scan).save(folder / "scan16.png")  # mode I;16, reduced 8x below
    (folder / "notes.txt").write_text("notes about the scan\n")
    result, report = index(run, aurous_emulator, "--max-image-side", "50")
    assert result.returncode == 0, result.stderr
    assert (report["added"], report["failed"]) == (2, [])


def cli_report(run: Run, emu: Emulator, *args: str) -> tuple[Any, dict[str, Any]]:
    result = cli(run, "--json", "index", "docs", "--db", "db", *args, env=served(emu))
    return result, json.loads(result.stdout)


# --- durability -----------------------------------------------------------------------------------


@pytest.fixture
def slow_emulator(aurous_emulator_factory: Callable[..., Emulator]) -> Emulator:
    return aurous_emulator_factory(
        latency=0.05, rpm=1e9, rpm_burst=1e9, tpm=1e12, native_dimension=64
    )


@pytest.mark.usefixtures("sigint_raises_keyboard_interrupt")  # the child inherits it
@pytest.mark.parametrize(
    ("signum", "code", "hammered"),
    [(signal.SIGINT, 130, False), (signal.SIGTERM, 143, False), (signal.SIGINT, 130, True)],
    ids=["SIGINT", "SIGTERM", "Ctrl-C pressed again and again"],
)
def test_an_interrupted_run_keeps_what_it_finished_and_the_next_pays_only_for_the_rest(
    tmp_path: Path,
    network_log: Path,
    slow_emulator: Emulator,
    signum: int,
    code: int,
    hammered: bool,
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(400):
        (folder / f"doc{i:03d}.txt").write_text(
            f"document {i} about wool, leather and camping gear\n"
        )
    env = {**clean_env(network_log), **served(slow_emulator), "COLUMNS": "200"}
    command = [
        *CLI,
        "--json",
        "index",
        str(folder),
        "--collection",
        "docs",
        "--db",
        str(tmp_path / "db"),
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    slow_emulator.wait_until(
        lambda s: s.by_route.get("POST /v1/embeddings", 0) >= 200, timeout=TIMEOUT
    )
    process.send_signal(signum)
    if hammered:  # a user pressing Ctrl-C until it stops: only the first press interrupts
        deadline = time.monotonic() + TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.02)
            if process.poll() is None:
                process.send_signal(signum)
    stdout, _ = process.communicate(timeout=TIMEOUT)
    assert process.returncode == code
    report = json.loads(stdout)  # the summary of what was kept, however often it was pressed
    assert report["interrupted"] is True
    kept = len(entries(tmp_path / "db")["ids"])
    assert kept == report["added"] >= 150  # measured before: 0 kept after 236 of 400
    assert report["added"] + report["not_finished"] == report["documents"] == 400  # one count
    assert report["not_finished"] > 0
    sent = slow_emulator.stats.by_route["POST /v1/embeddings"]
    again = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert again.returncode == 0, again.stderr
    assert len(entries(tmp_path / "db")["ids"]) == 400
    resent = slow_emulator.stats.by_route["POST /v1/embeddings"] - sent
    assert resent <= 400 - kept  # only what was not finished (the cache answers the rest)
    # What was in flight at the interrupt was charged by the API; the rerun sends the same
    # requests with the same (derived) keys and gets them replayed free: each chunk paid once.
    assert slow_emulator.stats.charges == 400
    assert report["unconfirmed_credits"] >= 0


def writer_child(pid: int) -> bool:
    """Whether ``pid`` has started a child process (``index``'s Chroma writer)."""
    try:
        return bool(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_the_last_writes_are_made_keeps_them_and_prints_the_summary(
    tmp_path: Path, network_log: Path, aurous_emulator: Emulator, signum: int, code: int
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(3):  # few files: every answer is in before the writer process has started
        (folder / f"doc{i}.txt").write_text(f"document {i} about tents\n")
    env = {**clean_env(network_log), **served(aurous_emulator)}
    command = [*CLI, "--json", "index", str(folder), "--collection", "docs", "--db"]
    process = subprocess.Popen(
        [*command, str(tmp_path / "db")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + TIMEOUT
    while not writer_child(process.pid) and process.poll() is None:
        assert time.monotonic() < deadline, "the writer process did not start"
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.005)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode in (code, 0), stderr  # 0: it had finished before the signal came
    report = json.loads(stdout)  # measured before: no summary at all, and 130 for SIGTERM
    assert report["interrupted"] is (process.returncode == code)
    assert report["added"] == 3 == len(entries(tmp_path / "db")["ids"])


def test_a_collection_indexed_by_an_earlier_version_is_brought_up_to_date(
    run: Run, docs: Path, tmp_path: Path, aurous_emulator: Emulator
) -> None:
    from aurous_embed.chroma import AurousEmbeddingFunction

    store = chromadb.PersistentClient(str(tmp_path / "db"))
    legacy = store.create_collection(
        "docs", embedding_function=AurousEmbeddingFunction(), metadata={"aurous:vectors": "api"}
    )
    legacy.add(  # what `index` wrote before: content-hash ids, no folder, no fingerprint
        ids=["doc-aaaa", "doc-bbbb"],
        embeddings=[[0.1] * 2048, [0.2] * 2048],
        metadatas=[
            {"kind": "text", "path": str((docs / "sweater.txt").resolve())},
            {"kind": "text", "path": str((docs / "deleted-since.txt").resolve())},
        ],
        documents=["old sweater", "old deleted"],
    )
    store.close()  # type: ignore[attr-defined]
    result, report = index(run, aurous_emulator)
    assert result.returncode == 0, result.stderr
    assert report["removed"] == 1  # the file that is gone
    stored = entries(tmp_path / "db")
    assert "doc-aaaa" not in stored["ids"] and "doc-bbbb" not in stored["ids"]
    assert len(stored["ids"]) == 6  # one entry per file, no duplicates
    store = chromadb.PersistentClient(str(tmp_path / "db"))
    assert store.get_collection("docs").metadata["aurous:layout"] == 2
    store.close()  # type: ignore[attr-defined]


def test_files_with_the_same_content_are_all_indexed_and_paid_once(
    tmp_path: Path, network_log: Path, slow_emulator: Emulator
) -> None:
    """Identical requests share a derived key (replay_identical): the copies wait for the first
    one's answer and get it replayed, instead of failing with 409 idempotency_key_in_use."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(12):
        (folder / f"LICENSE-{i:02d}.txt").write_text(
            "Permission is hereby granted, free of charge.\n"
        )
    env = {**clean_env(network_log), **served(slow_emulator)}
    command = [
        *CLI,
        "--json",
        "index",
        str(folder),
        "--collection",
        "docs",
        "--db",
        str(tmp_path / "db"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["added"] == 12 and report["failed"] == []
    assert len(entries(tmp_path / "db")["ids"]) == 12
    assert slow_emulator.stats.charges == 1
    assert report["credits"] == pytest.approx(slow_emulator.stats.credits_charged)
