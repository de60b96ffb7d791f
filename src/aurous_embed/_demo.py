"""``aurous-embed demo``: the offline tour. Index the bundled sample data into a persistent Chroma
collection through an embedded emulator, then search it text→text, text→image and image→image."""

from __future__ import annotations

import importlib.resources
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aurous_embed._config import DEFAULT_MODEL
from aurous_embed._indexing import LAYOUT, LAYOUT_KEY, Hit, index_folder, search
from aurous_embed._scan import scan_folder
from aurous_embed.cli import EMBEDDED_EMULATOR, MODEL_KEY, SOURCE_KEY

if TYPE_CHECKING:
    import argparse

    from aurous_embed.cli import Output

COLLECTION = "aurous-demo"
SEARCHES: list[tuple[str, str | None, str | None, tuple[str, ...] | None]] = [
    # (title, text query, image query (a bundled file), kinds to search)
    ("text → text", "warm wool clothing for winter", None, ("text",)),
    ("text → text", "waterproof gear for the outdoors", None, ("text",)),
    ("text → image", "something red", None, ("image", "text+image")),
    ("image → image", None, "images/photo-red-bag.png", ("image", "text+image")),
    ("text + image → anything", "leather", "images/photo-brown-boots.png", None),
]


def _show(out: Output, title: str, what: str, hits: list[Hit]) -> None:
    out.table(
        f"{title}: {what}",
        ["#", "distance", "kind", "document"],
        [[h.rank, f"{h.distance:.3f}", h.kind, (h.text or Path(h.path).name)[:60]] for h in hits],
    )


def run_demo(args: argparse.Namespace, out: Output) -> int:
    import chromadb

    from aurous_embed._client import AurousClient
    from aurous_embed.chroma import AurousEmbeddingFunction
    from aurous_embed.testing import Emulator

    started = time.perf_counter()
    db = Path(args.db).resolve()
    out.say("[bold]aurous-embed demo[/bold]: index sample products into Chroma, then search them.")
    out.say(
        "Vectors come from the [bold]local emulator[/bold] (a deterministic stand-in: texts sharing "
        "words are close, images by colour), not the Aurous model. No key, no network."
    )
    out.say(f"Chroma database: {db}")
    with (
        importlib.resources.as_file(
            importlib.resources.files("aurous_embed") / "demo_data"
        ) as data,
        Emulator() as emu,
        AurousClient(emu.api_key, base_url=emu.base_url) as client,
    ):
        scan = scan_folder(data)
        store = chromadb.PersistentClient(path=str(db))
        collection = store.get_or_create_collection(
            COLLECTION,
            embedding_function=AurousEmbeddingFunction(),
            metadata={
                SOURCE_KEY: EMBEDDED_EMULATOR,
                MODEL_KEY: DEFAULT_MODEL,
                LAYOUT_KEY: LAYOUT,
            },
        )
        kinds = {k: sum(d.kind == k for d in scan.sources) for k in ("text", "image", "text+image")}
        out.say(
            f"Sample data: {kinds['text']} product texts, {kinds['image']} images, "
            f"{kinds['text+image']} images with a caption (one text+image vector each)."
        )
        report = index_folder(
            client,
            collection,
            scan,
            legacy=(collection.metadata or {}).get(LAYOUT_KEY) != LAYOUT,
            show_progress=not args.json,
        )
        out.say(
            f"Indexed {report.added} new documents ({report.unchanged} were already there) "
            f"into collection {COLLECTION!r}."
        )
        results: list[dict[str, Any]] = []
        for title, text, image, kinds_filter in SEARCHES:
            from aurous_embed._indexing import query_input

            image_path = str(data / image) if image else None
            query = query_input(text, image_path)
            hits = search(client, collection, query, k=3, kinds=kinds_filter)
            what = " + ".join(x for x in (repr(text) if text else "", image or "") if x)
            _show(out, title, what, hits)
            results.append({"search": title, "query": what, "hits": [h.__dict__ for h in hits]})
        usage = client.usage
    elapsed = time.perf_counter() - started
    out.say(
        f"Totals: {usage.requests} requests, {usage.prompt_tokens:,} tokens, "
        f"{usage.credits_charged:.6f} credits (emulated), {elapsed:.1f} s."
    )
    out.say(
        "Run it for real: [bold]export AUROUS_API_KEY=al_live_...[/bold] then\n"
        "  aurous-embed index ./my-folder --collection products\n"
        '  aurous-embed search "a red leather bag" --collection products'
    )
    if args.json:
        out.json(
            {
                "db": str(db),
                "collection": COLLECTION,
                "indexed": report.added,
                "already_indexed": report.unchanged,
                "searches": results,
                "requests": usage.requests,
                "tokens": usage.prompt_tokens,
                "credits": usage.credits_charged,
            }
        )
    return 0
