"""Peak memory of ``embed_iter`` streaming a generator of 100,000 inputs (emulator at zero latency),
and of ``embed_many`` converting huge images.

Run: ``python -m benchmarks.memory [--n 100000]``, or ``python -m benchmarks.memory --images 6``
(six PNGs of 12,000 x 12,000 px, about 420 KB each, made in another process first; ``--side`` to
change the size). Peak RSS is the client process's high-water mark (``getrusage``); the emulator
runs in its own process. Memory is measured, not time.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from aurous_embed import AurousClient, Image
from benchmarks._harness import UNLIMITED, machine, serve, table

#: Draws one big PNG with few colours (so the file is small and the pixels are many).
MAKE_PNG = """
import sys
from PIL import Image, ImageDraw
side, shade, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
image = Image.new("RGB", (side, side), (shade, 90, 160))
draw = ImageDraw.Draw(image)
for i in range(0, side, side // 12):
    draw.rectangle((i // 2, i, side - i // 2, i + side // 50), fill=(250 - shade, i % 255, 40))
image.save(path, format="PNG", optimize=False)
"""


def rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 1024 / 1024


def generated(n: int) -> Iterator[str]:
    for i in range(n):
        yield f"streamed chunk {i}: generated on the fly, never held in a list"


def huge_images(count: int, side: int) -> None:
    """Peak RSS of one ``embed_many`` (default concurrency) over ``count`` huge PNGs."""
    print(f"Machine: {machine()}; {count} PNGs of {side:,} x {side:,} px\n")
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"huge-{n}.png" for n in range(count)]
        for n, path in enumerate(paths):  # drawn in another process: not in this one's RSS
            subprocess.run(
                [sys.executable, "-c", MAKE_PNG, str(side), str(40 + 30 * n), str(path)],
                check=True,
            )
        sizes = [path.stat().st_size for path in paths]
        with (
            serve(*UNLIMITED) as server,
            AurousClient(server.api_key, base_url=server.base_url) as client,
        ):
            client.embed("warm up")
            before = rss_mb()
            results = client.embed_many([Image(path) for path in paths])
            after = rss_mb()
    table(
        f"embed_many over {count} PNGs of {side:,} x {side:,} px",
        ["images", "file KB (each, about)", "vectors", "peak RSS before MB", "peak RSS after MB"],
        [[count, sum(sizes) // len(sizes) // 1024, len(results), before, after]],
    )
    print(f"PEAK_RSS_MB={after:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--images", type=int, default=0, help="measure N huge images instead")
    parser.add_argument("--side", type=int, default=12_000, help="side of each image, px")
    args = parser.parse_args()
    if args.images:
        huge_images(args.images, args.side)
        return
    print(f"Machine: {machine()}; N = {args.n}\n")
    with (
        serve(*UNLIMITED) as server,
        AurousClient(server.api_key, base_url=server.base_url) as client,
    ):
        client.embed("warm up")
        before = rss_mb()
        started = time.perf_counter()
        count, checksum = 0, 0.0
        for result in client.embed_iter(generated(args.n)):
            count += 1
            checksum += result.embedding[0]
            if count % 20_000 == 0:
                print(f"  {count:,} done, peak RSS {rss_mb():.0f} MB", flush=True)
        wall = time.perf_counter() - started
    table(
        f"Scenario 4: embed_iter over {args.n:,} generated inputs",
        [
            "results",
            "vector length",
            "wall s",
            "requests/s",
            "peak RSS before MB",
            "peak RSS after MB",
        ],
        [[f"{count:,}", len(result.embedding), wall, count / wall, before, rss_mb()]],
    )


if __name__ == "__main__":
    main()
