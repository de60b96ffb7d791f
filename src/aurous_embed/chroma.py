"""Chroma adapter: :class:`AurousEmbeddingFunction`, a Chroma 1.5 embedding function.

It maps Chroma's ``EmbeddingFunction`` protocol onto :class:`~aurous_embed.AurousClient` and does
nothing else: concurrency, retries, image encoding and input checks happen in the core. Importing
this module registers it as ``"aurous"``, so a collection created with it reopens with
``get_collection(name)`` in any process that imports this module.

Needs the ``chroma`` extra (``pip install "aurous-embed[chroma]"``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from chromadb.api.types import Embeddable, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from aurous_embed import _config
from aurous_embed._adapter import changed_options, check_picklable, refuse_client_options
from aurous_embed._async_client import AsyncAurousClient
from aurous_embed._client import AurousClient
from aurous_embed._connections import shared_http_client
from aurous_embed._errors import InputValidationError, MissingAPIKeyError
from aurous_embed._parts import Image, check_batch, images_from_uris
from aurous_embed._secrets import Secret
from aurous_embed._settings import resolve_base_url

__all__ = ["AurousEmbeddingFunction", "aadd", "aquery"]

# What get_config() stores, with the accepted types; None means "the environment or the default".
# A cache path is not a secret: stored, so that a reopened collection keeps its cache.
_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "model_name": (str,),
    "api_key_env_var": (str,),
    "base_url": (str, type(None)),
    "api_version": (str, type(None)),
    "dimensions": (int, type(None)),
    "cache": (str, type(None)),
}
_OPTIONAL_CONFIG = frozenset({"cache"})  # absent from configs stored by earlier versions


@register_embedding_function
class AurousEmbeddingFunction(EmbeddingFunction[Embeddable]):
    """Aurous multimodal embeddings for Chroma: documents (``str``) and images (numpy ``uint8``).

    Texts and images share one vector space, so ``query_texts=["red bag"]`` finds images added
    through ``ImageLoader``. A call embeds its N inputs with N concurrent requests.

    Args:
        model_name: Model slug. Fixed for the life of a collection.
        api_key: A key for this instance only: it is never persisted (see ``api_key_env_var``).
        api_key_env_var: The environment variable holding the key, read on first use. Chroma
            stores this *name* with the collection, so every process that opens it needs it set.
        base_url: API base including ``/v1``; ``None``: ``$AUROUS_BASE_URL`` or production.
        api_version: ``Aurous-Version`` pin; ``None``: ``$AUROUS_API_VERSION`` or the team's.
        dimensions: Requested vector length. Fixed for the life of a collection.
        max_concurrency, timeout, max_retries: As for ``AurousClient``; not persisted.
        cache: A SQLite file path (persisted with the collection, so a reopened collection keeps
            using it) or a cache object (not persisted): an input embedded before costs nothing.
        cache_urls: Also cache inputs with URL parts; not persisted.
        max_credits: A budget for what this function embeds in this process; not persisted.
        show_progress, on_progress: Progress of each call, as for ``embed_many``; not persisted.
        client: An existing ``AurousClient`` to use (its key, settings, cache and budget) instead
            of the connection options; not persisted.

    On reopening, the stored ``base_url`` wins over ``$AUROUS_BASE_URL``: a collection's vectors
    must all come from one endpoint. If the variable names another endpoint, the first call says
    so instead of mixing vectors (make a new collection for the other endpoint).

    Example:
        >>> from aurous_embed.chroma import AurousEmbeddingFunction
        >>> client = chromadb.PersistentClient("db")  # doctest: +SKIP
        >>> docs = client.create_collection("docs", embedding_function=AurousEmbeddingFunction())  # doctest: +SKIP
    """

    def __init__(
        self,
        model_name: str = _config.DEFAULT_MODEL,
        api_key: str | None = None,
        api_key_env_var: str = _config.ENV_API_KEY,
        base_url: str | None = None,
        api_version: str | None = None,
        dimensions: int | None = None,
        max_concurrency: int = _config.DEFAULT_MAX_CONCURRENCY,
        timeout: float = _config.DEFAULT_TIMEOUT,
        max_retries: int = _config.DEFAULT_MAX_RETRIES,
        cache: Any = None,
        cache_urls: bool = False,
        max_credits: float | None = None,
        show_progress: bool = False,
        on_progress: Callable[[int, int | None, float], None] | None = None,
        client: AurousClient | None = None,
    ) -> None:
        self.model_name, self.api_key_env_var = model_name, api_key_env_var
        self.base_url, self.api_version, self.dimensions = base_url, api_version, dimensions
        self.cache = cache if isinstance(cache, (str, os.PathLike)) else None
        self.cache = None if self.cache is None else os.fspath(self.cache)
        self.validate_config(self.get_config())
        self.max_concurrency, self.timeout, self.max_retries = max_concurrency, timeout, max_retries
        self._cache_object = None if self.cache is not None else cache
        self.cache_urls, self.max_credits = cache_urls, max_credits
        self.show_progress, self.on_progress = show_progress, on_progress
        self._api_key = Secret(api_key) if api_key else None
        self._client: AurousClient | None = client
        self._client_given = client is not None
        # Rebuilt from a collection's stored config (build_from_config): its base_url must not
        # differ from AUROUS_BASE_URL. A base_url passed here is the caller's explicit choice.
        self._stored_endpoint = False
        if client is not None and not isinstance(client, AurousClient):
            raise InputValidationError(
                f"client must be an AurousClient, not {type(client).__name__}", param="client"
            )
        if client is not None:  # options next to client= would be ignored: refuse them
            refuse_client_options(changed_options(locals()))
        self._lock = threading.Lock()

    # Pickled for worker processes: the copy carries the key this function uses (or would use:
    # the environment variable is read now) and the same endpoint, never another process's.
    def __getstate__(self) -> dict[str, Any]:
        check_picklable(
            "AurousEmbeddingFunction",
            client_given=self._client_given,
            cache_object=self._cache_object is not None,
            max_credits=self.max_credits,
        )
        key = self._api_key.reveal() if self._api_key else os.environ.get(self.api_key_env_var)
        self._check_endpoint()
        options = {
            "model_name": self.model_name,
            "api_key": key or None,
            "api_key_env_var": self.api_key_env_var,
            "base_url": self.base_url or resolve_base_url(None),
            "api_version": self.api_version,
            "dimensions": self.dimensions,
            "max_concurrency": self.max_concurrency,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "cache": self.cache,
            "cache_urls": self.cache_urls,
            "show_progress": self.show_progress,
        }
        return {"aurous_embedding_function": options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(self, **state["aurous_embedding_function"])

    def __call__(self, input: Embeddable) -> Embeddings:
        """One float32 vector per document or image, in input order."""
        return self._embed(input)

    def embed_query(self, input: Embeddable) -> Embeddings:
        """The same vectors as ``__call__``: the API has no separate query mode."""
        return self._embed(input)

    def _embed(self, input: Embeddable) -> Embeddings:
        vectors = self._get_client().embed_many(
            _inputs(input),
            dimensions=self.dimensions,
            show_progress=self.show_progress,
            on_progress=self.on_progress,
            as_numpy=True,
        )
        return list(vectors)  # float32 rows: Chroma does not re-check embed_query's result

    def _get_client(self) -> AurousClient:
        # Built on first use, so construction (and Chroma's is_legacy() check, which builds a copy
        # from get_config()) never needs a key or the network.
        with self._lock:
            if self._client is None:
                env = self.api_key_env_var
                key = self._api_key.reveal() if self._api_key else os.environ.get(env, "")
                if not key.strip():
                    raise MissingAPIKeyError(
                        f"no Aurous API key: set the {env} environment variable in this process "
                        "(Chroma stores only its name with the collection, never the key; and a "
                        "process that reopens the collection must `import aurous_embed.chroma` "
                        "first, or Chroma reports 'Embedding function aurous not found')"
                    )
                self._check_endpoint()
                # A reopened collection rebuilds its function from the config on every call: share
                # one connection pool across those rebuilds instead of a new one (and a new TLS
                # handshake) per query.
                self._client = AurousClient(
                    key,
                    base_url=self.base_url,
                    model=self.model_name,
                    api_version=self.api_version,
                    timeout=self.timeout,
                    max_retries=self.max_retries,
                    max_concurrency=self.max_concurrency,
                    cache=self.cache if self.cache is not None else self._cache_object,
                    cache_urls=self.cache_urls,
                    max_credits=self.max_credits,
                    http_client=shared_http_client(
                        timeout=self.timeout, max_connections=2 * self.max_concurrency
                    ),
                )
            return self._client

    def _check_endpoint(self) -> None:
        """A stored ``base_url`` wins over ``$AUROUS_BASE_URL``; refuse when they differ."""
        if not self._stored_endpoint:
            return
        env = os.environ.get(_config.ENV_BASE_URL, "").rstrip("/")
        if self.base_url is not None and env and env != self.base_url.rstrip("/"):
            raise InputValidationError(
                f"this collection's vectors come from {self.base_url} (stored with it), but "
                f"{_config.ENV_BASE_URL} names {env}: vectors of two endpoints do not mix in one "
                "collection; unset the variable, or embed into a new collection",
                param="base_url",
            )

    @staticmethod
    def name() -> str:
        return "aurous"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "l2", "ip"]

    def get_config(self) -> dict[str, Any]:
        """What Chroma persists with the collection: the key's variable name, never the key, and
        the cache's path (not a cache object)."""
        return {name: getattr(self, name) for name in _CONFIG_TYPES}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> AurousEmbeddingFunction:
        AurousEmbeddingFunction.validate_config(config)
        function = AurousEmbeddingFunction(**config)
        function._stored_endpoint = True  # a collection's endpoint: AUROUS_BASE_URL may not differ
        return function

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """Raise ``ValueError`` for unknown keys, a missing model or env var name, or a bad type."""
        unknown = sorted(set(config) - set(_CONFIG_TYPES))
        if unknown:
            hint = " (the key is never stored: use api_key_env_var)" if "api_key" in unknown else ""
            raise ValueError(f"unknown aurous embedding function config keys {unknown}{hint}")
        for name, types in _CONFIG_TYPES.items():
            if name in _OPTIONAL_CONFIG and name not in config:
                continue
            value = config.get(name)
            if value in (None, "") and type(None) not in types:
                raise ValueError(f"aurous config {name!r} must be a non-empty str, got {value!r}")
            if not isinstance(value, types) or isinstance(value, bool):
                raise ValueError(f"aurous config {name!r} has the wrong type: {value!r}")

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        """Allow changes that keep vectors comparable (env var, URL, version); refuse the rest."""
        self.validate_config(new_config)
        for name in ("model_name", "dimensions"):  # the stored vectors depend on these
            if new_config.get(name) != old_config.get(name):
                raise ValueError(
                    f"cannot change {name} of an existing collection from {old_config.get(name)!r} "
                    f"to {new_config.get(name)!r}: stored vectors would no longer match; "
                    "create a new collection and re-embed instead"
                )


def _inputs(input: Embeddable | Sequence[Any]) -> list[Any]:
    # Chroma's Documents are str and its Images numpy arrays; the core encodes the arrays.
    check_batch(input, "AurousEmbeddingFunction", param="input")
    return [item if isinstance(item, str) else Image(item) for item in input]


async def _avectors(
    client: AsyncAurousClient, items: Sequence[Any], dimensions: int | None
) -> list[Any]:
    return list(await client.embed_many(items, dimensions=dimensions, as_numpy=True))


async def aadd(
    collection: Any,
    *,
    ids: Sequence[str],
    client: AsyncAurousClient,
    documents: Sequence[str] | None = None,
    images: Sequence[Any] | None = None,
    uris: Sequence[str] | None = None,
    metadatas: Sequence[dict[str, Any]] | None = None,
    dimensions: int | None = None,
) -> None:
    """Add to a collection of a Chroma ``AsyncHttpClient`` with vectors from ``client``.

    Chroma runs a collection's embedding function synchronously on the event loop; this embeds
    with the async client first (concurrent requests, the event loop free) and adds precomputed
    vectors. Give exactly one of ``documents``, ``images`` (numpy arrays, PIL images, bytes,
    paths) or ``uris`` (image paths or https URLs).

    Example:
        >>> collection = await chroma.get_or_create_collection("docs", embedding_function=None)  # doctest: +SKIP
        >>> await aadd(collection, ids=["a"], documents=["red bag"], client=AsyncAurousClient())  # doctest: +SKIP
    """
    given = [x for x in (documents, images, uris) if x is not None]
    if len(given) != 1:
        raise InputValidationError("give exactly one of documents, images or uris", param="input")
    items = (
        list(documents)
        if documents is not None
        else images_from_uris(list(uris))
        if uris is not None
        else _inputs(images or [])
    )
    vectors = await _avectors(client, items, dimensions)
    await collection.add(
        ids=list(ids),
        embeddings=vectors,
        documents=list(documents) if documents is not None else None,
        uris=list(uris) if uris is not None else None,
        metadatas=list(metadatas) if metadatas is not None else None,
    )


async def aquery(
    collection: Any,
    *,
    client: AsyncAurousClient,
    query_texts: Sequence[str] | None = None,
    query_images: Sequence[Any] | None = None,
    query_uris: Sequence[str] | None = None,
    dimensions: int | None = None,
    **kwargs: Any,
) -> Any:
    """Query a collection of a Chroma ``AsyncHttpClient`` with vectors from ``client`` (see
    :func:`aadd`); other keyword arguments (``n_results``, ``where``, ``include``) go to Chroma."""
    given = [x for x in (query_texts, query_images, query_uris) if x is not None]
    if len(given) != 1:
        raise InputValidationError(
            "give exactly one of query_texts, query_images or query_uris", param="query"
        )
    items = (
        list(query_texts)
        if query_texts is not None
        else images_from_uris(list(query_uris))
        if query_uris is not None
        else _inputs(query_images or [])
    )
    vectors = await _avectors(client, items, dimensions)
    return await collection.query(query_embeddings=vectors, **kwargs)
