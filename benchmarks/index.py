"""``aurous-embed index`` on a folder of 10,000 texts and 500 images, the emulator in its own process.

Run: ``python -m benchmarks.index [--texts 10000] [--images 500] [--photos 200] [--latency 0.1]``

Rows (each is the real command, ``python -m aurous_embed.cli index``, in a subprocess):

1. first run: every file embedded and written; wall against N·L/C plus the scan (the time of
   ``index --dry-run`` on the same folder, which scans and chunks and sends nothing);
2. the same folder again: nothing changed, nothing sent;
3. 1% of the text files edited: requests equal to their chunks, nothing else;
4. photos of 4032 x 3024 (about 4.6 MB of JPEG each), without and with ``--max-image-side 1568``:
   bytes sent and wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import UNLIMITED, machine, serve, table

CONCURRENCY = 32


def make_folder(root: Path, texts: int, images: int) -> None:
    from PIL import Image as PILImage

    root.mkdir(parents=True)
    for i in range(texts):
        (root / f"note-{i:05d}.txt").write_text(
            f"Note {i}: a short product description about wool, leather, camping gear and tents.\n"
        )
    for i in range(images):
        colour = (i * 37 % 256, i * 91 % 256, i * 53 % 256)
        PILImage.new("RGB", (64, 64), colour).save(root / f"image-{i:04d}.png")


def make_photos(root: Path, count: int) -> None:
    import numpy
    from PIL import Image as PILImage

    root.mkdir(parents=True)
    rng = numpy.random.default_rng(20261130)
    base = rng.integers(0, 255, (3024, 4032, 3), dtype=numpy.uint8)
    for i in range(count):  # noise compresses badly: about the size of a phone photo
        shifted = numpy.roll(base, i * 7, axis=1)
        PILImage.fromarray(shifted).save(root / f"photo-{i:03d}.jpg", quality=72)


def index(server: Any, folder: Path, db: Path, *extra: str) -> tuple[float, dict[str, Any]]:
    env = {"AUROUS_API_KEY": server.api_key, "AUROUS_BASE_URL": server.base_url}
    command = [sys.executable, "-m", "aurous_embed.cli", "--json", "index", str(folder)]
    command += ["--collection", "bench", "--db", str(db), *extra]
    started = time.perf_counter()
    result = subprocess.run(
        command, env={**_environ(), **env}, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"index failed ({result.returncode}): {result.stderr}")
    return wall, json.loads(result.stdout)


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    n = args.texts + args.images
    limit = n * args.latency / CONCURRENCY
    print(
        f"Machine: {machine()}; {args.texts:,} texts + {args.images} images, L = {args.latency} s\n"
    )
    rows: list[list[object]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(*UNLIMITED, "--latency", str(args.latency)) as server,
    ):
        folder, db = Path(tmp) / "docs", Path(tmp) / "db"
        make_folder(folder, args.texts, args.images)
        scan_wall, dry = index(server, folder, db, "--dry-run")
        wall, first = index(server, folder, db)
        rows.append(
            [
                "first run",
                first["requests"],
                first["added"],
                f"{wall:.1f}",
                f"{wall / (limit + scan_wall):.2f} (N·L/C {limit:.1f} s + scan {scan_wall:.1f} s)",
            ]
        )
        wall, again = index(server, folder, db)
        rows.append(["nothing changed", again["requests"], again["unchanged"], f"{wall:.1f}", "-"])
        edited = max(1, args.texts // 100)
        for i in range(edited):
            (folder / f"note-{i:05d}.txt").write_text(f"Note {i}, edited: now about umbrellas.\n")
        wall, third = index(server, folder, db)
        rows.append(
            [f"{edited} texts edited", third["requests"], third["updated"], f"{wall:.1f}", "-"]
        )
        table(
            f"index: {args.texts:,} texts + {args.images} images",
            ["run", "requests", "files added/unchanged/updated", "wall s", "÷ (N·L/C + scan)"],
            rows,
        )
        assert dry["chunks"] == n
        if args.photos:
            photos = Path(tmp) / "photos"
            make_photos(photos, args.photos)
            size = sum(p.stat().st_size for p in photos.iterdir()) / args.photos
            photo_rows: list[list[object]] = []
            for label, extra in (
                ("as they are", ()),
                ("--max-image-side 1568", ("--max-image-side", "1568")),
            ):
                wall, report = index(server, photos, Path(tmp) / f"db-{len(photo_rows)}", *extra)
                photo_rows.append(
                    [label, report["requests"], f"{report['bytes_sent'] / 1e6:,.1f}", f"{wall:.1f}"]
                )
            table(
                f"{args.photos} photos of 4032 x 3024 px ({size / 1e6:.1f} MB each)",
                ["images sent", "requests", "MB sent", "wall s"],
                photo_rows,
            )


if __name__ == "__main__":
    main()
