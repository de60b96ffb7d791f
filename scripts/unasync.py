#!/usr/bin/env python3
"""Generate the synchronous client (``_client.py``) from the asynchronous one (``_async_client.py``).

Usage::

    python scripts/unasync.py           # write src/aurous_embed/_client.py
    python scripts/unasync.py --check   # exit 1 (and show the diff) if _client.py is stale

``_async_client.py`` is the one definition of both clients. The generated text is the async
source with, in this order:

1. its leading comment replaced by a header saying the file is generated;
2. each entry of ``SNIPPETS`` replaced: the few lines only the async client has (``http_backend``,
   async iterables in ``embed_iter``). An entry that no longer matches is an error, so the table
   cannot go stale unnoticed;
3. the words of ``WORDS`` swapped, in code and prose alike (``async def`` -> ``def``, ``await x``
   -> ``x``, ``AsyncFlavour`` -> ``SyncFlavour``, ``to_sync`` <-> ``to_async``...);
4. ``ruff check --select I --fix`` and ``ruff format`` (imports merged and sorted, lines rejoined
   where removing ``await`` made them fit), with the project's settings.

What truly differs between the clients (connections, slots, closing, encoding, how ``embed_iter``
reads its inputs, how a batch is collected) is hand-written in ``_flavours.py``; the engine's
drivers are ``run_sync``/``run_async`` in ``_batch.py``.

Why a small script rather than the ``unasync`` package (as httpcore does with its own script):
the package renames tokens one way only, while this file needs a swap (``AurousClient`` <->
``AsyncAurousClient``, ``_client`` <-> ``_async_client``, ``to_sync`` <-> ``to_async``), the
same words changed in docstrings (they are generated too, from the same text), multi-line
snippets removed, and the result formatted; and this needs no dependency beyond the test extra.
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "aurous_embed" / "_async_client.py"
TARGET = ROOT / "src" / "aurous_embed" / "_client.py"

HEADER = """\
# GENERATED FILE, DO NOT EDIT: scripts/unasync.py writes it from _async_client.py.
# Edit _async_client.py (or _flavours.py, or the script's tables), then run
# `python scripts/unasync.py`; CI runs `python scripts/unasync.py --check`.
"""

#: Exact text of the async source -> its sync text. Each must occur at least once.
SNIPPETS: list[tuple[str, str]] = [
    ("from aurous_embed._connections import HTTPBackend\n", ""),
    ('        http_backend: HTTPBackend = "auto",\n', ""),
    ("self._connect(http_client, http_backend)", "self._connect(http_client)"),
    (
        """\
        http_backend: which library carries the requests of the client's own connections.
            ``"auto"`` (default): aiohttp when it is installed (extra ``speedups``; about 40% less
            client CPU per request, see :mod:`aurous_embed._aiohttp`), else httpx. ``"httpx"`` or
            ``"aiohttp"`` to choose. The same requests, errors and retries either way; httpx
            whenever the environment names a proxy. Not used with ``http_client=``.
""",
        "",
    ),
    (
        """\
    ``embed_iter`` also takes an async iterable of inputs; iterate its results with ``async for``.

""",
        "",
    ),
    ("Iterable[EmbedInput] | AsyncIterable[EmbedInput]", "Iterable[EmbedInput]"),
]

#: Whole words (or word pairs) of the async source -> the sync words, swapped in one pass.
WORDS: dict[str, str] = {
    "async def": "def",
    "async with": "with",
    "async for": "for",
    "AsyncAurousClient": "AurousClient",
    "AurousClient": "AsyncAurousClient",
    "_async_client": "_client",
    "_client": "_async_client",
    "to_sync": "to_async",
    "Asynchronous": "Synchronous",
    "asynchronous": "synchronous",
    "AsyncFlavour": "SyncFlavour",
    "AsyncItems": "Items",
    "AsyncOutcomes": "Outcomes",
    "AsyncIterator": "Iterator",
    "AsyncIterable": "Iterable",
    "AsyncClient": "Client",
    "run_async": "run_sync",
    "aclosing": "closing",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
}
_WORD = re.compile(r"\bawait\s+|\b(" + "|".join(map(re.escape, WORDS)) + r")\b")


def _swap(match: re.Match[str]) -> str:
    word = match.group(1)
    return "" if word is None else WORDS[word]


def _ruff(args: list[str], text: str) -> str:
    command = [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(TARGET), "-"]
    done = subprocess.run(
        command, input=text, capture_output=True, text=True, cwd=ROOT, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"unasync: {' '.join(command[2:4])} failed:\n{done.stderr}{done.stdout}")
    return done.stdout


def generate(source: str) -> str:
    """The text of ``_client.py`` for this text of ``_async_client.py``."""
    lines = source.splitlines(keepends=True)
    start = next(n for n, line in enumerate(lines) if not line.startswith("#"))
    text = "".join(lines[start:])
    for old, new in SNIPPETS:
        if old not in text:
            raise SystemExit(f"unasync: stale table, this text is not in {SOURCE.name}:\n{old}")
        text = text.replace(old, new)
    text = HEADER + _WORD.sub(_swap, text)
    text = _ruff(["check", "--select", "I", "--fix", "--quiet", "--exit-zero"], text)
    return _ruff(["format", "--quiet"], text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="fail if _client.py differs from what would be generated",
    )
    args = parser.parse_args(argv)
    expected = generate(SOURCE.read_text(encoding="utf-8"))
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if not args.check:
        if current != expected:
            TARGET.write_text(expected, encoding="utf-8")
            print(f"wrote {TARGET.relative_to(ROOT)}")
        return 0
    if current == expected:
        return 0
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        expected.splitlines(keepends=True),
        f"{TARGET.relative_to(ROOT)} (on disk)",
        f"{TARGET.relative_to(ROOT)} (generated from {SOURCE.name})",
    )
    sys.stdout.writelines(diff)
    print(
        f"\n{TARGET.relative_to(ROOT)} is stale: run `python scripts/unasync.py`", file=sys.stderr
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
