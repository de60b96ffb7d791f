"""The scan of a folder: every file not indexed is listed with its reason, and a file that could
never be sent fails in the scan (for ``index`` and ``--dry-run`` alike), not mid-run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from aurous_embed import InputValidationError
from aurous_embed._config import CONTEXT_WINDOW_TOKENS, MAX_TEXT_CHARS
from aurous_embed._scan import Chunking, scan_folder, tokens

pytest.importorskip("semantic_text_splitter")

LATIN1_NAME = os.fsdecode(b"caf\xe9.txt")  # a name that is not UTF-8 (a Latin-1 archive, say)


def listed(pairs: list[tuple[Path, str]], root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): reason for path, reason in pairs}


def test_hidden_files_and_folders_are_listed_as_skipped_and_the_database_is_not(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.txt").write_text("visible")
    (tmp_path / ".notes.txt").write_text("hidden")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "b.txt").write_text("in a hidden folder")
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "c.txt").write_text("the index's own database")
    scan = scan_folder(tmp_path, exclude=(tmp_path / "db",))
    assert [s.path.name for s in scan.sources] == ["a.txt"]
    assert listed(scan.skipped, scan.root) == {
        ".notes.txt": "a hidden file",
        ".cache": "a hidden folder (not looked into)",  # once, not each file in it
    }
    assert scan.failed == []


def test_a_hidden_file_given_as_the_path_is_indexed(tmp_path: Path) -> None:
    (tmp_path / ".notes.txt").write_text("asked for by name")
    scan = scan_folder(tmp_path / ".notes.txt")
    assert [s.path.name for s in scan.sources] == [".notes.txt"] and scan.skipped == []


def test_a_name_that_is_not_utf8_fails_that_file_with_its_bytes_escaped(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("a good file about rivers")
    (tmp_path / LATIN1_NAME).write_text("a file about hail")
    (tmp_path / os.fsdecode(b"d\xe9j\xe0")).mkdir()
    (tmp_path / os.fsdecode(b"d\xe9j\xe0") / "inside.md").write_text("# in a Latin-1 folder")
    (tmp_path / os.fsdecode(b"notes\xe9.csv")).write_text("x")
    scan = scan_folder(tmp_path)
    assert [s.path.name for s in scan.sources] == ["good.txt"]
    assert listed(scan.failed, scan.root) == {
        "caf\\xe9.txt": "its name is not valid UTF-8",
        "d\\xe9j\\xe0/inside.md": "its folder's name is not valid UTF-8",
    }
    assert listed(scan.skipped, scan.root) == {"notes\\xe9.csv": "not a document (.csv)"}
    for path, _ in scan.failed + scan.skipped:
        str(path).encode("utf-8")  # printable as it is listed
    assert scan.cost()[0] == 1  # the file that failed is not counted


def test_a_path_whose_name_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / LATIN1_NAME).write_text("a file about hail")
    with pytest.raises(InputValidationError, match=r"caf\\xe9\.txt: its name is not valid UTF-8"):
        scan_folder(tmp_path / LATIN1_NAME)


def test_a_chunk_over_the_apis_cap_fails_its_file_in_the_scan(tmp_path: Path) -> None:
    (tmp_path / "huge.txt").write_text("word " * (MAX_TEXT_CHARS // 5 + 1000))
    (tmp_path / "emoji.txt").write_text("\N{GRINNING FACE}" * 600_000)  # 600K chars, 2.4 MB
    (tmp_path / "ok.txt").write_text("small ok file")
    scan = scan_folder(tmp_path, Chunking(0, 0))
    assert [s.path.name for s in scan.sources] == ["ok.txt"]
    reasons = {path.name: reason for path, reason in scan.failed}
    assert f"over the {MAX_TEXT_CHARS:,}" in reasons["huge.txt"]
    assert f"about 600,000 tokens is over the {CONTEXT_WINDOW_TOKENS:,}" in reasons["emoji.txt"]
    assert all("drop --chunk-size 0" in reason for reason in reasons.values())
    assert scan.cost()[0] == 1  # costs the rest, raises nothing
    chunked = scan_folder(tmp_path, Chunking(CONTEXT_WINDOW_TOKENS, 0))  # the largest chunks fit
    assert not chunked.failed
    sizes = [tokens(c.text or "") for s in chunked.sources for c in s.chunks]
    assert len(sizes) > 3 and max(sizes) <= CONTEXT_WINDOW_TOKENS


@pytest.mark.parametrize(
    ("size", "overlap", "option"),
    [
        (2**64, 50, "--chunk-size"),
        (CONTEXT_WINDOW_TOKENS + 1, 50, "--chunk-size"),
        (-1, 0, "--chunk-size"),
        (400, 2**64, "--chunk-overlap"),
        (0, 2**64, "--chunk-overlap"),
        (400, 400, "--chunk-overlap"),
        (400, -1, "--chunk-overlap"),
    ],
)
def test_chunk_options_out_of_range_are_refused_naming_the_option(
    size: int, overlap: int, option: str
) -> None:
    with pytest.raises(InputValidationError) as caught:
        Chunking(size, overlap)
    assert caught.value.param == option


def test_the_largest_chunk_size_is_accepted() -> None:
    big = CONTEXT_WINDOW_TOKENS
    assert Chunking(big, big - 1).split("one two", markdown=False)


def test_a_folder_that_cannot_be_listed_fails_and_is_remembered_as_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("inside")
    (tmp_path / "subway").mkdir()
    (tmp_path / "subway" / "b.txt").write_text("beside")
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if os.fspath(path) == str(tmp_path / "sub"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    scan = scan_folder(tmp_path)
    assert listed(scan.failed, tmp_path) == {
        "sub": "a folder that cannot be listed: permission denied"
    }
    assert scan.unlisted == [tmp_path / "sub"]
    assert [s.path.name for s in scan.sources] == ["b.txt"]
