"""The ``aurous-embed`` command as a user runs it: a subprocess, no key, no network, in a tmp dir.

Commands run with ``--emulator`` (an emulator inside the CLI process) when the test needs no view
of the server, and against an emulator this test starts (``--base-url``/``--api-key``) when it
must count requests or charges, or answer with a 401. A guard (``offline/sitecustomize.py``) fails
and records any non-loopback network access. The emulator's vectors are deterministic and lexical
(texts sharing words are close; an image is close to the names of its colours), so search results
are exact expectations. Exit codes: 0 ok, 2 usage, 3 authentication, 4 API error, 5 partial.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aurous_embed import AurousClient, Image, Text
from aurous_embed._config import DEFAULT_MODEL
from aurous_embed.testing import Emulator
from tests.cli.conftest import Run, assert_offline, run_python
from tests.helpers import png

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

CLI = ("-m", "aurous_embed.cli")
EMBEDDINGS = "POST /v1/embeddings"
RED, GREEN, BLUE, BROWN = (220, 20, 20), (20, 200, 20), (20, 20, 220), (120, 70, 30)
BAD_KEY = "al_live_" + "0" * 64
ERROR_WITH_REQUEST_ID = re.compile(r"^error: .+\(.*request_id=req_\w+\)$")


def png_file(path: Path, rgb: tuple[int, int, int], size: int = 32) -> Path:
    path.write_bytes(png((size, size), rgb))
    return path


def make_folder(root: Path) -> Path:
    """Two texts, two images, one image + sidecar caption, and two files that are skipped."""
    root.mkdir()
    (root / "sweater.txt").write_text("Green merino wool sweater, warm for winter.\n")
    (root / "lamp.md").write_text("Yellow brass desk lamp with a warm light.\n")
    png_file(root / "red.png", RED)
    png_file(root / "blue.png", BLUE)
    png_file(root / "bag.png", BROWN)
    (root / "bag.txt").write_text("Photo of a leather messenger bag\n")  # bag.png's caption
    (root / "notes.csv").write_text("a,b\n1,2\n")
    (root / "empty.txt").write_text("   \n")
    return root


def cli(run: Run, *args: str, env: dict[str, str] | None = None) -> Any:
    return run(*CLI, *args, env=env)


def one_error_line(stderr: str) -> str:
    """The error output, checked to be exactly one ``error: ...`` line and no traceback."""
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def server(emu: Emulator, key: str | None = None) -> list[str]:
    return ["--base-url", emu.base_url, "--api-key", key or emu.api_key]


def embedding_requests(emu: Emulator) -> int:
    return emu.stats.by_route.get(EMBEDDINGS, 0)


# --- demo ----------------------------------------------------------------------------------------


def test_demo_indexes_the_sample_data_searches_it_and_reruns_without_embedding(
    run: Run, tmp_path: Path
) -> None:
    first = cli(run, "demo", "--db", "demo-db")
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "Vectors come from the local emulator" in out
    assert "No key, no network." in out
    assert "export AUROUS_API_KEY=al_live_" in out  # how to run the same for real
    assert "Sample data: 30 product texts, 6 images, 6 images with a caption" in out
    assert "Indexed 42 new documents (0 were already there)" in out
    for title in ("text → text:", "text → image:", "image → image:", "text + image → anything:"):
        assert title in out
    totals = re.search(r"Totals: (\d+) requests, ([\d,]+) tokens, ([\d.]+) credits", out)
    assert totals is not None, out
    assert int(totals[1]) == 42 + 5  # one per document, one per search
    assert int(totals[2].replace(",", "")) > 0 and float(totals[3]) > 0
    assert (tmp_path / "demo-db" / "chroma.sqlite3").is_file()

    # The same database again, as JSON: nothing re-embedded, only the 5 searches sent.
    again = cli(run, "demo", "--db", "demo-db", "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["indexed"], report["already_indexed"], report["requests"]) == (0, 42, 5)
    assert report["db"] == str((tmp_path / "demo-db").resolve())
    searches = {s["query"]: s["hits"] for s in report["searches"]}
    wool = searches["'warm wool clothing for winter'"]
    assert Path(wool[0]["path"]).name == "sweater-green-wool.txt"
    red = searches["'something red'"]
    assert {h["kind"] for h in red} <= {"image", "text+image"}  # the kinds filter held
    assert all("red" in Path(h["path"]).name for h in red)
    by_image = searches["images/photo-red-bag.png"]
    assert Path(by_image[0]["path"]).name == "photo-red-umbrella.png"  # the other red photo


# --- index and search ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A folder indexed twice into one persistent --db with --emulator --json (cache removed
    between the runs, so only the content-hash ids can explain what the second run skips)."""
    base = tmp_path_factory.mktemp("indexed")
    log = tmp_path_factory.mktemp("guard") / "network.log"
    folder = make_folder(base / "docs")
    command = [*CLI, "--emulator", "--json", "index", "docs", "--collection", "products"]
    runs = [run_python(*command, "--db", "db", cwd=base, network_log=log)]
    cache = base / "db" / "aurous-embed-cache.sqlite"
    cache_existed = cache.is_file()
    cache.unlink(missing_ok=True)
    runs.append(run_python(*command, "--db", "db", cwd=base, network_log=log))
    yield {"base": base, "folder": folder, "runs": runs, "cache_existed": cache_existed, "log": log}
    assert_offline(log)


def test_index_embeds_texts_images_and_captioned_images_and_reports_skips(
    indexed: dict[str, Any],
) -> None:
    first = indexed["runs"][0]
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["collection"] == "products"
    assert (report["found"], report["unchanged"], report["added"]) == (5, 0, 5)
    assert report["failed"] == []
    assert {Path(s["path"]).name: s["reason"] for s in report["skipped"]} == {
        "notes.csv": "not a document (.csv)",
        "empty.txt": "empty",
    }
    assert report["requests"] == 5  # one request per document: bag.png + bag.txt are ONE
    assert report["tokens"] > 0 and report["credits"] > 0
    assert indexed["cache_existed"]  # the default cache lives inside --db


def test_index_second_run_skips_everything_and_sends_nothing(indexed: dict[str, Any]) -> None:
    second = indexed["runs"][1]
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert (report["found"], report["unchanged"], report["added"]) == (5, 5, 0)
    assert (report["requests"], report["tokens"], report["credits"]) == (0, 0, 0)
    assert report["failed"] == []


def test_search_by_text_finds_the_document(indexed: dict[str, Any]) -> None:
    result = run_python(
        *CLI,
        *("--emulator", "--json", "search", "warm wool sweater", "--collection", "products"),
        *("--db", "db", "-k", "5"),
        cwd=indexed["base"],
        network_log=indexed["log"],
    )
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    assert hits[0]["kind"] == "text"
    assert Path(hits[0]["path"]).name == "sweater.txt"
    assert hits[0]["text"] == "Green merino wool sweater, warm for winter."
    distances = [h["distance"] for h in hits]
    assert distances == sorted(distances) and distances[0] < distances[1]
    # All five documents: the image and its sidecar caption are ONE text+image document.
    kinds = {Path(h["path"]).name: (h["kind"], h["text"]) for h in hits}
    assert kinds == {
        "sweater.txt": ("text", "Green merino wool sweater, warm for winter."),
        "lamp.md": ("text", "Yellow brass desk lamp with a warm light."),
        "red.png": ("image", "red.png"),
        "blue.png": ("image", "blue.png"),
        "bag.png": ("text+image", "Photo of a leather messenger bag"),
    }


def test_search_by_image_finds_the_image_and_prints_a_table(indexed: dict[str, Any]) -> None:
    query = png_file(indexed["base"] / "query-red.png", RED, size=48)  # not the indexed file
    result = run_python(
        *(*CLI, "--emulator", "search", "--image", str(query), "--collection", "products"),
        *("--db", "db", "-k", "2"),
        cwd=indexed["base"],
        network_log=indexed["log"],
    )
    assert result.returncode == 0, result.stderr
    assert f"Top 2 for {query}" in result.stdout
    rows = [line for line in result.stdout.splitlines() if re.match(r"^│ \d ", line)]
    assert len(rows) == 2
    assert re.match(r"^│ 1 │ [\d.]+\s+│ image\s+│ \S*red\.png #0\s+│ red\.png\s+│$", rows[0]), (
        result.stdout
    )


def test_reindexing_sends_no_request_to_the_server(
    run: Run, tmp_path: Path, aurous_emulator: Emulator
) -> None:
    make_folder(tmp_path / "docs")
    env = {"AUROUS_API_KEY": aurous_emulator.api_key, "AUROUS_BASE_URL": aurous_emulator.base_url}
    command = ["--json", "index", "docs", "--collection", "products", "--db", "db"]
    first = cli(run, *command, env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["added"] == 5
    assert embedding_requests(aurous_emulator) == 5
    seen = aurous_emulator.stats.requests

    (tmp_path / "docs" / "extra.txt").write_text("A new blue cotton shirt.")
    second = cli(run, *command, env=env)
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert (report["found"], report["unchanged"], report["added"]) == (6, 5, 1)
    assert aurous_emulator.stats.requests == seen + 1  # only the new file reached the server


# --- embed, estimate, models ---------------------------------------------------------------------


def test_embed_prints_one_json_line_per_input_with_the_real_vectors(
    run: Run, tmp_path: Path
) -> None:
    image = png_file(tmp_path / "red.png", RED)
    result = cli(run, "--emulator", "embed", "red leather bag", "blue shirt", "--image", "red.png")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["input"] for line in lines] == ["red leather bag", "blue shirt", "red.png"]
    for line in lines:
        assert len(line["embedding"]) == 2048
        assert line["model"] == DEFAULT_MODEL
        assert line["request_id"].startswith("req_")
        assert line["usage"]["prompt_tokens"] > 0
    assert len({line["request_id"] for line in lines}) == 3
    assert lines[0]["usage"]["breakdown"]["visual"] == 0
    assert lines[2]["usage"]["breakdown"]["text"] == 0
    assert lines[2]["usage"]["breakdown"]["visual"] > 0

    combined = cli(run, "--emulator", "embed", "red leather bag", "--image", "red.png", "--combine")
    assert combined.returncode == 0, combined.stderr
    (line,) = [json.loads(text) for text in combined.stdout.splitlines()]
    assert line["input"] == "combined"
    breakdown = line["usage"]["breakdown"]
    assert breakdown["text"] > 0 and breakdown["visual"] > 0

    # The emulator is deterministic: the printed vectors are what the client computes in-process.
    with Emulator() as emu, AurousClient(emu.api_key, base_url=emu.base_url) as client:
        assert lines[0]["embedding"] == pytest.approx(client.embed("red leather bag").embedding)
        assert lines[2]["embedding"] == pytest.approx(client.embed(Image(image)).embedding)
        mixed = client.embed([Text("red leather bag"), Image(image)]).embedding
        assert line["embedding"] == pytest.approx(mixed)
    assert line["embedding"] != pytest.approx(lines[0]["embedding"])


def test_estimate_charges_nothing(run: Run, tmp_path: Path, aurous_emulator: Emulator) -> None:
    png_file(tmp_path / "red.png", RED)
    args = ["estimate", "hello there", "--image", "red.png"]
    as_json = cli(run, *server(aurous_emulator), "--json", *args)
    assert as_json.returncode == 0, as_json.stderr
    text_row, image_row = json.loads(as_json.stdout)
    assert text_row["input"] == "hello there"
    assert text_row["tokens"]["text"] > 0 and text_row["tokens"]["image"] == 0
    assert image_row["tokens"]["image"] > 0 and image_row["tokens"]["text"] == 0
    assert text_row["credits_estimated"] > 0 and image_row["credits_estimated"] > 0
    table = cli(run, *server(aurous_emulator), *args)
    assert table.returncode == 0, table.stderr
    assert "Estimate (nothing was charged)" in table.stdout
    assert re.search(r"│ hello there\s+│ \d+\s+│ 0\s+│", table.stdout), table.stdout
    assert aurous_emulator.stats.charges == 0
    assert embedding_requests(aurous_emulator) == 0


def test_models_as_table_and_json(run: Run) -> None:
    table = cli(run, "--emulator", "models")
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if DEFAULT_MODEL in line)
    assert re.search(r"│ embedding\s+│ \d+\s+│ 1024,2048\s+│", row), row
    as_json = cli(run, "--emulator", "--json", "models")
    assert as_json.returncode == 0, as_json.stderr
    models = {m["id"]: m for m in json.loads(as_json.stdout)}
    assert models[DEFAULT_MODEL]["kind"] == "embedding"


# --- exit codes and error lines ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["embed", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "usage: aurous-embed"),
        (["index"], "the following arguments are required: PATH, --collection"),
        (
            ["search", "q", "--collection", "products", "--db", "d", "--chroma-host", "h"],
            "not allowed with argument",
        ),
        (["embed", "hi", "--dimensions", "many"], "invalid int value: 'many'"),
    ],
)
def test_argument_errors_exit_2_with_usage(run: Run, args: list[str], message: str) -> None:
    result = cli(run, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "usage: aurous-embed" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--emulator", "embed", ""], "error: item 0 input: text is empty"),
        (["--emulator", "embed"], "error: TEXT: give at least one TEXT or --image"),
        (["--emulator", "embed", "hi", "--image", "missing.png"], "image file 'missing.png' does not exist"),
        (["--emulator", "search", "--collection", "products"], "error: query: give a query text, an --image, or both"),
        (["--emulator", "index", "nowhere", "--collection", "products"], "error: PATH: nowhere does not exist"),
        (["--emulator", "search", "q", "--collection", "nothere"], "no Chroma database at aurous-chroma-db"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_one_error_line(run: Run, args: list[str], line: str) -> None:
    result = cli(run, *args)
    assert result.returncode == 2, result.stderr
    assert line in one_error_line(result.stderr)


def test_search_of_a_missing_collection_exits_2_and_creates_nothing(
    run: Run, tmp_path: Path
) -> None:
    make_folder(tmp_path / "docs")
    assert (
        cli(run, "--emulator", "index", "docs", "--collection", "products", "--db", "db").returncode
        == 0
    )
    result = cli(run, "--emulator", "search", "q", "--collection", "nothere", "--db", "db")
    assert result.returncode == 2
    assert "no collection named 'nothere'" in one_error_line(result.stderr)
    nowhere = cli(run, "--emulator", "search", "q", "--collection", "x", "--db", "elsewhere")
    assert nowhere.returncode == 2
    assert not (tmp_path / "elsewhere").exists()


def test_no_key_exits_3_and_names_the_variable(run: Run) -> None:
    result = cli(run, "embed", "hello")
    assert result.returncode == 3
    assert "AUROUS_API_KEY" in one_error_line(result.stderr)
    assert result.stdout == ""


def test_bad_key_exits_3_with_one_line_carrying_the_request_id(
    run: Run, aurous_emulator: Emulator
) -> None:
    result = cli(run, *server(aurous_emulator, BAD_KEY), "models")
    assert result.returncode == 3
    line = one_error_line(result.stderr)
    assert line.startswith("error: 401 invalid_api_key: ")
    assert ERROR_WITH_REQUEST_ID.match(line), line
    assert BAD_KEY not in result.stderr + result.stdout
    assert aurous_emulator.stats.by_code == {"invalid_api_key": 1}  # the server said so

    debug = cli(run, *server(aurous_emulator, BAD_KEY), "--debug", "models")
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "AuthenticationError: 401 invalid_api_key" in debug.stderr


def test_embed_with_a_bad_key_exits_3(run: Run, aurous_emulator: Emulator) -> None:
    result = cli(run, *server(aurous_emulator, BAD_KEY), "embed", "hello")
    assert ERROR_WITH_REQUEST_ID.match(one_error_line(result.stderr))
    assert result.returncode == 3


def test_index_with_a_bad_key_exits_3(run: Run, tmp_path: Path, aurous_emulator: Emulator) -> None:
    make_folder(tmp_path / "docs")
    args = ["--json", "index", "docs", "--collection", "products", "--db", "db"]
    result = cli(run, *server(aurous_emulator, BAD_KEY), *args)
    assert "invalid_api_key" in result.stderr
    assert result.returncode == 3


def test_api_error_exits_4_with_the_code_and_request_id(run: Run) -> None:
    result = cli(run, "--emulator", "estimate", "hello", "--dimensions", "1000")
    assert result.returncode == 4
    line = one_error_line(result.stderr)
    assert "400 embeddings_unsupported_dimensions" in line
    assert ERROR_WITH_REQUEST_ID.match(line), line


def test_embed_api_error_exits_4(run: Run) -> None:
    result = cli(run, "--emulator", "embed", "hello", "--dimensions", "1000")
    assert "embeddings_unsupported_dimensions" in one_error_line(result.stderr)
    assert result.returncode == 4


def test_invalid_collection_name_exits_2(run: Run, tmp_path: Path) -> None:
    make_folder(tmp_path / "docs")
    result = cli(run, "--emulator", "index", "docs", "--collection", "c")
    assert "collection" in one_error_line(result.stderr)
    assert result.returncode == 2


def test_corrupt_images_are_a_partial_failure_exit_5(run: Run, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "docs")
    (folder / "garbage.png").write_bytes(b"this is not an image")  # refused by the client
    (folder / "truncated.png").write_bytes(
        png_file(tmp_path / "green.png", GREEN).read_bytes()[:60]
    )
    result = cli(run, "--emulator", "--json", "index", "docs", "--collection", "products")
    assert result.returncode == 5
    report = json.loads(result.stdout)
    assert (report["found"], report["added"]) == (6, 5)  # the good documents are all in
    failed = {Path(f["path"]).name: f["error"] for f in report["failed"]}
    assert set(failed) == {"garbage.png", "truncated.png"}
    assert "cannot decode image" in failed["garbage.png"]  # found by the scan: never sent
    assert "400 invalid_format" in failed["truncated.png"]  # refused by the server
    assert "request_id=req_" in failed["truncated.png"]
    assert one_error_line(result.stderr) == "error: 2 of 7 documents failed"
