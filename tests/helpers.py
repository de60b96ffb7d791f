"""Helpers every test directory shares: one ``cosine``, one ``png``, one client factory.

``make_client(flavour, ...)`` builds the sync or the async client with the same options, so a
test parametrised over ``flavour`` (the ``flavour`` fixture in ``tests/conftest.py``) runs one
body against both; ``settle`` awaits what the async client returns and passes the sync
client's answers through; ``each``, ``collect``, ``next_of`` and ``close_stream`` do the same for
the streams ``embed_iter`` returns (an iterator from one, an async iterator from the other).
"""

from __future__ import annotations

import inspect
import io
import math
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal

import httpx

from aurous_embed import AsyncAurousClient, AurousClient

Flavour = Literal["sync", "async"]
FLAVOURS: tuple[Flavour, ...] = ("sync", "async")


def cosine(a: Sequence[float] | Any, b: Sequence[float] | Any) -> float:
    """The cosine similarity of two vectors (lists or numpy arrays)."""
    a, b = [float(x) for x in a], [float(y) for y in b]
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(math.fsum(x * x for x in a) * math.fsum(y * y for y in b))


def png(
    size: tuple[int, int] = (8, 8),
    colour: tuple[int, ...] | str | int | None = None,
    *,
    mode: str = "RGB",
    fmt: str = "PNG",
) -> bytes:
    """A solid-colour image, PNG unless ``fmt`` says otherwise (needs Pillow).

    The colour defaults to a dark red in RGB and to mid-grey (128) in other modes.
    """
    from PIL import Image

    if colour is None:
        colour = (200, 30, 30) if mode == "RGB" else 128
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def make_client(
    flavour: Flavour,
    api_key: str,
    *,
    handler: Callable[[httpx.Request], httpx.Response] | None = None,
    **options: Any,
) -> Any:
    """``AurousClient`` or ``AsyncAurousClient`` with these options.

    ``handler`` answers every request in-process (``httpx.MockTransport``), over the httpx
    client of the matching flavour; without it the client sends for real (to a base_url that
    a test started).
    """
    if flavour == "sync":
        if handler is not None:
            options["http_client"] = httpx.Client(transport=httpx.MockTransport(handler))
        return AurousClient(api_key, **options)
    if handler is not None:
        options["http_client"] = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return AsyncAurousClient(api_key, **options)


async def settle(value: Any) -> Any:
    """What a client call returned: awaited for the async client, as is for the sync one."""
    return await value if inspect.isawaitable(value) else value


async def close(client: AurousClient | AsyncAurousClient) -> None:
    """Close a client of either flavour."""
    await settle(client.close())


async def each(stream: Iterator[Any] | AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The items of an ``embed_iter`` stream of either client, one at a time, as it yields them."""
    if isinstance(stream, AsyncIterator):
        async for item in stream:
            yield item
    else:
        for item in stream:
            yield item


async def collect(stream: Iterator[Any] | AsyncIterator[Any]) -> list[Any]:
    """Every item of an ``embed_iter`` stream of either client."""
    return [item async for item in each(stream)]


async def next_of(stream: Iterator[Any] | AsyncIterator[Any]) -> Any:
    """The next item of an ``embed_iter`` stream of either client."""
    return await anext(stream) if isinstance(stream, AsyncIterator) else next(stream)


async def close_stream(stream: Iterator[Any] | AsyncIterator[Any]) -> None:
    """Stop an ``embed_iter`` stream of either client early, as ``break`` would."""
    if isinstance(stream, AsyncIterator):
        await stream.aclose()  # type: ignore[attr-defined]
    else:
        stream.close()  # type: ignore[attr-defined]
