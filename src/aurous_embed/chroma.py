"""Chroma adapter: :class:`AurousEmbeddingFunction` maps Chroma 1.5's ``EmbeddingFunction`` onto
:class:`~aurous_embed.AurousClient`. Importing it registers ``"aurous"`` (a collection reopens with
``get_collection(name)`` where it is imported). Needs the ``chroma`` extra."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from chromadb.api.types import Embeddable, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from aurous_embed import _config
from aurous_embed._adapter import CLIENT_OPTIONS
from aurous_embed._async_client import AsyncAurousClient
from aurous_embed._client import AurousClient
from aurous_embed._collection import (
    STORED_CONFIG,
    LazyClient,
    as_lists,
    cache_path,
    check_config_update,
    check_stored_config,
    one_kind,
)

__all__ = ["AurousEmbeddingFunction", "aadd", "aquery"]


@register_embedding_function
class AurousEmbeddingFunction(EmbeddingFunction[Embeddable]):
    """Aurous multimodal embeddings for Chroma: documents (``str``) and images (numpy ``uint8``)
    in one vector space; a call embeds its N inputs with N concurrent requests.

    Stored with the collection: ``model_name``, ``dimensions`` (both fixed), ``api_key_env_var``
    (the key's variable, read on first use), ``api_version``, a ``cache`` path, ``base_url`` (it
    wins over ``$AUROUS_BASE_URL``; a call refuses when they differ); not ``api_key`` or the rest.

    Example:
        >>> docs = chroma.create_collection("docs", embedding_function=AurousEmbeddingFunction())  # doctest: +SKIP
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
        self.cache = cache_path(cache)
        self.validate_config(self.get_config())
        self.show_progress, self.on_progress = show_progress, on_progress
        self.max_concurrency, self.timeout, self.max_retries = max_concurrency, timeout, max_retries
        self.cache_urls, self.max_credits = cache_urls, max_credits
        options = {k: v for k, v in locals().items() if k in CLIENT_OPTIONS}
        self._lazy = LazyClient(client, key_env_var=api_key_env_var, model=model_name, **options)

    def __getstate__(self) -> dict[str, Any]:  # for worker processes: this key and endpoint
        state = {**self.get_config(), **self._lazy.pickled(), "show_progress": self.show_progress}
        return {"aurous_embedding_function": state}

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(self, **state["aurous_embedding_function"])

    def __call__(self, input: Embeddable) -> Embeddings:
        """One float32 vector per document or image, in input order."""
        return self.embed_query(input)

    def embed_query(self, input: Embeddable) -> Embeddings:
        """The same vectors as ``__call__``: the API has no separate query mode."""
        return self._lazy.float32_rows(input, self.dimensions, self.show_progress, self.on_progress)

    @staticmethod
    def name() -> str:
        return "aurous"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "l2", "ip"]

    def get_config(self) -> dict[str, Any]:
        """What Chroma stores with the collection: the key's variable name, never the key."""
        return {name: getattr(self, name) for name in STORED_CONFIG}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> AurousEmbeddingFunction:
        check_stored_config(config)
        function = AurousEmbeddingFunction(**config)
        function._lazy.stored_endpoint = True  # AUROUS_BASE_URL may not differ from it
        return function

    validate_config = staticmethod(check_stored_config)

    validate_config_update = staticmethod(check_config_update)


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
    """Add to an ``AsyncHttpClient`` collection with vectors from ``client`` (the event loop stays
    free); exactly one of ``documents``, ``images`` (image objects) or ``uris`` (paths, https)."""
    items = one_kind(documents, images, uris, names="documents, images or uris", param="input")
    vectors = list(await client.embed_many(items, dimensions=dimensions, as_numpy=True))
    lists = as_lists(ids=ids, documents=documents, uris=uris, metadatas=metadatas)
    await collection.add(embeddings=vectors, **lists)


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
    """Query like :func:`aadd` adds; other keyword arguments (``n_results``...) go to Chroma."""
    names = "query_texts, query_images or query_uris"
    items = one_kind(query_texts, query_images, query_uris, names=names, param="query")
    vectors = list(await client.embed_many(items, dimensions=dimensions, as_numpy=True))
    return await collection.query(query_embeddings=vectors, **kwargs)
