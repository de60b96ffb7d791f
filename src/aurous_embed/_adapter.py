"""What the framework adapters share: their clients (made from options, given, or made on first
use), the options of every call, plain float vectors out, pickling for worker processes, and
images that go with texts. Whatever an option does (a cache, a budget, progress, pacing) lives in
the clients; an adapter only hands it over.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from aurous_embed._async_client import AsyncAurousClient
from aurous_embed._batch import ProgressCallback
from aurous_embed._client import AurousClient
from aurous_embed._config import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
)
from aurous_embed._errors import InputValidationError
from aurous_embed._parts import (
    Image,
    Text,
    check_batch,
    document_parts,
    image_from_uri,
    images_from_uris,
    normalize_inputs,
)

#: Adapter options that configure the clients (not single calls).
CLIENT_OPTIONS = (
    "api_key",
    "base_url",
    "api_version",
    "timeout",
    "max_retries",
    "max_concurrency",
    "cache",
    "cache_urls",
    "max_credits",
)


@dataclass
class AdapterClients:
    """The sync and async clients of one adapter, and which of them it made (and so closes)."""

    sync: AurousClient
    async_: AsyncAurousClient
    owns_sync: bool
    owns_async: bool

    def close(self) -> None:
        if self.owns_sync:
            self.sync.close()

    async def aclose(self) -> None:
        if self.owns_async:
            await self.async_.close()

    def vectors(self, values: Sequence[Any], calls: Mapping[str, Any]) -> list[list[float]]:
        """One plain float vector per input (``embed_many`` with the adapter's call options)."""
        return [result.embedding for result in self.sync.embed_many(values, **calls)]

    async def avectors(self, values: Sequence[Any], calls: Mapping[str, Any]) -> list[list[float]]:
        """Async :meth:`vectors` (native, no thread pool)."""
        return [result.embedding for result in await self.async_.embed_many(values, **calls)]

    def vector(self, value: Any, calls: Mapping[str, Any]) -> list[float]:
        """The vector of one input (``embed``: the progress options do not apply)."""
        return self.sync.embed(
            value, model=calls["model"], dimensions=calls["dimensions"]
        ).embedding

    async def avector(self, value: Any, calls: Mapping[str, Any]) -> list[float]:
        """Async :meth:`vector` (native, no thread pool)."""
        client, model, dimensions = self.async_, calls["model"], calls["dimensions"]
        return (await client.embed(value, model=model, dimensions=dimensions)).embedding


#: What each client option is when it is not given.
CLIENT_DEFAULTS: dict[str, Any] = {
    "api_key": None,
    "base_url": None,
    "api_version": None,
    "timeout": DEFAULT_TIMEOUT,
    "max_retries": DEFAULT_MAX_RETRIES,
    "max_concurrency": DEFAULT_MAX_CONCURRENCY,
    "cache": None,
    "cache_urls": False,
    "max_credits": None,
}


def changed_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The client options among ``values`` (e.g. an adapter's arguments) that are not defaults."""
    return {n: values[n] for n in CLIENT_OPTIONS if n in values and values[n] != CLIENT_DEFAULTS[n]}


def refuse_client_options(options: Mapping[str, Any]) -> None:
    """Refuse client options given next to ``client=``: they belong on that client (it carries its
    key, connection settings, cache and budget), and ignoring them would be silent."""
    clash = sorted(name for name in options if name in CLIENT_OPTIONS)
    if clash:
        raise InputValidationError(
            f"client= is given, so {', '.join(clash)} must be set on that client (a client "
            "carries its key, connection settings, cache and budget), not here",
            param=clash[0],
        )


def adapter_clients(
    client: object = None, async_client: object = None, **options: Any
) -> AdapterClients:
    """The clients an adapter uses.

    Given a ``client`` (and/or ``async_client``), they are used as they are, and a missing twin is
    made with :meth:`AurousClient.to_async` (or ``to_sync``): one cache, one budget, one set of
    totals for the sync and async paths. Otherwise both are made from ``options`` (only the ones
    the user set; see :data:`CLIENT_OPTIONS`). Setting client options *and* passing a client is
    refused: the options belong on the client.
    """
    if client is None and async_client is None:
        unknown = sorted(set(options) - set(CLIENT_OPTIONS))
        if unknown:  # pragma: no cover - adapters pass only known options
            raise InputValidationError(f"unknown client options {unknown}", param=unknown[0])
        sync = AurousClient(**options)
        return AdapterClients(sync, sync.to_async(), True, True)
    refuse_client_options(options)
    given_client = check_client(client)
    if async_client is not None and not isinstance(async_client, AsyncAurousClient):
        raise InputValidationError(
            f"async_client must be an AsyncAurousClient, not {type(async_client).__name__}",
            param="async_client",
        )
    if given_client is None:
        assert isinstance(async_client, AsyncAurousClient)
        return AdapterClients(async_client.to_sync(), async_client, True, False)
    if async_client is None:
        return AdapterClients(given_client, given_client.to_async(), False, True)
    return AdapterClients(given_client, async_client, False, False)


def clients_from_fields(
    values: Mapping[str, Any],
    explicit: set[str],
    client: object,
    async_client: object,
    **given: Any,
) -> AdapterClients:
    """The clients of an adapter whose client options are its fields (``values``), and ``given``
    options that are not fields (``None``: not given).

    Without ``client``/``async_client`` every option is used; with one, only the options the user
    set (``explicit``, and ``given``) are passed on, so that they are refused (they belong on that
    client).
    """
    given = {name: value for name, value in given.items() if value is not None}
    values, explicit = {**values, **given}, explicit | set(given)
    options = {name: values[name] for name in CLIENT_OPTIONS if name in values}
    if client is not None or async_client is not None:
        options = {name: value for name, value in options.items() if name in explicit}
    return adapter_clients(client, async_client, **options)


def check_client(client: object) -> AurousClient | None:
    """``client``; refused unless it is ``None`` or an :class:`AurousClient`."""
    if client is not None and not isinstance(client, AurousClient):
        raise InputValidationError(
            f"client must be an AurousClient, not {type(client).__name__}", param="client"
        )
    return client


def call_options(
    model: str | None,
    dimensions: int | None,
    show_progress: bool,
    on_progress: ProgressCallback | None,
) -> dict[str, Any]:
    """The keyword arguments of every ``embed_many`` an adapter makes."""
    return {
        "model": model,
        "dimensions": dimensions,
        "show_progress": show_progress,
        "on_progress": on_progress,
    }


def given(values: Mapping[str, Any], names: set[str] | frozenset[str]) -> dict[str, Any]:
    """The options among ``values`` that the user set (``names``), for :func:`adapter_clients`."""
    return {name: values[name] for name in CLIENT_OPTIONS if name in names}


def check_picklable(
    adapter: str, *, client_given: bool, cache_object: bool, max_credits: float | None
) -> None:
    """Refuse to pickle an adapter holding what cannot be copied to another process, with a
    message saying what to do instead: a ``client=`` (its connections, cache and budget belong to
    this process), a cache object (pass a path), a ``max_credits`` budget (each copy would get a
    budget of its own, so together they could spend it several times).

    Raises:
        TypeError: as :mod:`pickle` expects of an object it cannot pickle.
    """
    if client_given:
        raise TypeError(
            f"an {adapter} made with client= cannot be pickled (the client's connections, cache "
            f"and budget belong to this process): to use it in worker processes, make the "
            f"{adapter} with api_key=... and the connection options instead"
        )
    if cache_object:
        raise TypeError(
            f"an {adapter} with a cache object cannot be pickled: pass cache='file.sqlite' (a "
            "path every worker process opens)"
        )
    if max_credits is not None:
        raise TypeError(
            f"an {adapter} with max_credits cannot be pickled: each worker process would get a "
            "budget of its own and together they could spend it several times (give each worker "
            "its own share explicitly)"
        )


def pickled_connection(
    clients: AdapterClients, adapter: str, *, cache_is_path: bool, max_credits: float | None
) -> dict[str, Any]:
    """The key and endpoint a pickled adapter carries, so that its copy in a worker process
    (``IngestionPipeline(num_workers=N)``, ``ProcessPoolExecutor``) uses exactly the same ones and
    never picks up another key from that process's environment.

    The key travels inside the pickle (never in ``to_dict()``, ``to_json()`` or a repr): pickles
    are for handing work to your own processes, not for storing.
    """
    core = clients.sync
    check_picklable(
        adapter,
        client_given=not (clients.owns_sync and clients.owns_async),
        cache_object=core._cache is not None and not cache_is_path,
        max_credits=max_credits,
    )
    return {"api_key": core._settings.api_key.reveal(), "base_url": core.base_url}


class FieldsAdapter:
    """What the adapters whose options are pydantic fields (LangChain's, LlamaIndex's) share:
    closing the clients they made, and pickling for worker processes (the copy is rebuilt from
    the fields with this key and endpoint; the progress callback stays in this process)."""

    _clients: AdapterClients
    model_fields: ClassVar[dict[str, Any]]

    def close(self) -> None:
        """Close the sync methods' connection pool (if this adapter made the client)."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close the async methods' connection pool, on the event loop that used it."""
        await self._clients.aclose()

    def __getstate__(self) -> dict[str, Any]:
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        return {"aurous_adapter": pickled_fields(self._clients, type(self).__name__, fields)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(self, **state["aurous_adapter"])


def pickled_fields(
    clients: AdapterClients,
    adapter: str,
    fields: Mapping[str, Any],
    skip: frozenset[str] = frozenset({"api_key", "client", "async_client", "on_progress"}),
) -> dict[str, Any]:
    """What a pickled adapter whose options are its fields carries: the fields but ``skip`` (the
    progress callback stays in this process), with the key and endpoint of
    :func:`pickled_connection`."""
    cache_is_path = isinstance(fields.get("cache"), (str, os.PathLike))
    connection = pickled_connection(
        clients, adapter, cache_is_path=cache_is_path, max_credits=fields.get("max_credits")
    )
    return {**{k: v for k, v in fields.items() if k not in skip}, **connection}


# Documents whose images go with the texts embedded now (see ``images_with_texts``).
_PENDING: contextvars.ContextVar[tuple[list[str], list[Any]] | None] = contextvars.ContextVar(
    "aurous_pending_images", default=None
)


@contextlib.contextmanager
def images_with_texts(texts: list[str], images: Sequence[object]) -> Iterator[None]:
    """While the block runs, :func:`with_images` embeds these texts (in this order) each with its
    image (a path or an https URL; ``None`` or ``""``: text only) as ONE text+image input."""
    parts = [None if image in (None, "") else image_from_uri(str(image)) for image in images]
    token = _PENDING.set((texts, parts))
    try:
        yield
    finally:
        _PENDING.reset(token)


def with_images(texts: list[str]) -> list[Any]:
    """The inputs for ``texts``: with their images inside :func:`images_with_texts`, else as they
    are. Texts other than the ones given there (a vector store changed them) are refused."""
    pending = _PENDING.get()
    if pending is None:
        return texts
    expected, images = pending
    if texts != expected:
        raise InputValidationError(
            "the texts to embed are not the documents given to images_of()/add_documents() "
            "(in order): a vector store changed them before embedding",
            param="texts",
        )
    return [
        text if image is None else [Text(text), image]
        for text, image in zip(texts, images, strict=True)
    ]


def text_with_image(text: str, *, url: str | None, path: str | None, b64: str | None) -> Any:
    """One input of a text and its image (an https URL, a path or base64 bytes; the first given):
    ONE text+image input, the image alone when the text is blank, the text when there is none."""
    image: Image | Any = None
    if url:
        image = images_from_uris([url])[0]
    elif path:
        image = Image(path)
    elif b64:
        image = Image(base64.b64decode(b64))
    if image is None:
        return text
    return [Text(text), image] if text.strip() else image


def multimodal_documents(inputs: Sequence[Any], method: str = "embed_multimodal") -> list[Any]:
    """Documents of parts as a framework user writes them (see ``document_parts``), one input each."""
    check_batch(inputs, method)
    return [document_parts(parts) for parts in inputs]


def checked(values: Sequence[Any], *, images: bool = False) -> Any:
    """``values`` unchanged, once every item (as an image, with ``images``) passed the core's
    checks: a bad item is refused with its index before a framework sends any chunk of them."""
    normalize_inputs(images_from_uris(values) if images else values)
    return values


def attach(items: Sequence[Any], vectors: Sequence[list[float]]) -> Sequence[Any]:
    """``items`` with each one's ``embedding`` set to its vector (a framework's nodes)."""
    for item, vector in zip(items, vectors, strict=True):
        item.embedding = vector
    return items
