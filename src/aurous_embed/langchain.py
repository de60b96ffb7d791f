"""LangChain adapter: :class:`AurousEmbeddings` maps LangChain's ``Embeddings`` onto the core
clients, which batch, retry, cache, budget and encode images. Needs the ``langchain`` extra."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from aurous_embed import _config as c
from aurous_embed._adapter import (
    AdapterClients,
    FieldsAdapter,
    call_options,
    clients_from_fields,
    images_with_texts,
    multimodal_documents,
    with_images,
)
from aurous_embed._errors import MissingAPIKeyError
from aurous_embed._parts import images_from_uris

__all__ = ["AurousEmbeddings"]

_MISSING_KEY = (
    f"no Aurous API key: pass AurousEmbeddings(api_key=...) or client=..., or set the "
    f"{c.ENV_API_KEY} environment variable (for offline work, start the emulator: aurous-embed serve)"
)


class AurousEmbeddings(FieldsAdapter, BaseModel, Embeddings):
    """Aurous multimodal embeddings for LangChain: texts, queries, images and mixed documents.

    Texts, queries and images share one vector space. ``embed_image(uris=...)`` serves
    ``langchain_chroma.Chroma.add_images``; ``add_documents(store, docs)`` stores a ``Document``
    whose ``metadata["image"]`` names a picture as ONE text+image vector; ``a*`` methods are
    natively async. Options are ``AurousClient``'s (the key from ``$AUROUS_API_KEY``, never shown
    or serialised), or an existing ``client``/``async_client`` shared with other frameworks.

    Example:
        >>> vectors = AurousEmbeddings(cache="e.sqlite").embed_documents(["red bag"])  # doctest: +SKIP
    """

    model: str = c.DEFAULT_MODEL
    api_key: SecretStr | None = Field(default_factory=secret_from_env(c.ENV_API_KEY, default=None))
    base_url: str | None = Field(default_factory=from_env(c.ENV_BASE_URL, default=None))
    api_version: str | None = Field(default_factory=from_env(c.ENV_API_VERSION, default=None))
    dimensions: int | None = None
    max_concurrency: int = c.DEFAULT_MAX_CONCURRENCY
    max_retries: int = c.DEFAULT_MAX_RETRIES
    timeout: float = c.DEFAULT_TIMEOUT
    cache: Any = Field(default=None, exclude=True)  # a SQLite path or a cache object
    cache_urls: bool = False
    max_credits: float | None = None
    show_progress: bool = False
    on_progress: Callable[[int, int | None, float], None] | None = Field(default=None, exclude=True)
    client: Any = Field(default=None, exclude=True)
    async_client: Any = Field(default=None, exclude=True)

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)
    _clients: AdapterClients = PrivateAttr()

    @model_validator(mode="after")
    def _build_clients(self) -> AurousEmbeddings:
        key = self.api_key and self.api_key.get_secret_value()
        if self.client is None and self.async_client is None and key is None:
            raise MissingAPIKeyError(_MISSING_KEY)
        fields = {**self.__dict__, "api_key": key}  # only a key the user set is explicit
        explicit, clients = self.model_fields_set, (self.client, self.async_client)
        self._clients = clients_from_fields(fields, explicit, *clients)
        return self

    @property
    def _calls(self) -> dict[str, Any]:
        return call_options(self.model, self.dimensions, self.show_progress, self.on_progress)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._clients.vectors(with_images(texts), self._calls)

    def embed_query(self, text: str) -> list[float]:
        return self._clients.vector(text, self._calls)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await self._clients.avectors(with_images(texts), self._calls)

    async def aembed_query(self, text: str) -> list[float]:
        return await self._clients.avector(text, self._calls)

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        """One vector per image (local paths, ``file://``/``data:`` URIs or https URLs); the
        name ``uris`` is what ``langchain_chroma`` passes."""
        return self._clients.vectors(images_from_uris(uris), self._calls)

    async def aembed_image(self, uris: list[str]) -> list[list[float]]:
        return await self._clients.avectors(images_from_uris(uris), self._calls)

    def embed_multimodal(self, inputs: Sequence[Any]) -> list[list[float]]:
        """One vector per document, a list of parts (``str``, ``Text``, ``Image``, ``ImageURL``)
        combined in order. A ``str`` is text even when it names a file (wrap it as ``Image``)."""
        return self._clients.vectors(multimodal_documents(inputs), self._calls)

    async def aembed_multimodal(self, inputs: Sequence[Any]) -> list[list[float]]:
        return await self._clients.avectors(multimodal_documents(inputs), self._calls)

    @contextlib.contextmanager
    def images_of(
        self, documents: Sequence[Document], *, image_key: str = "image"
    ) -> Iterator[None]:
        """While the block runs, these documents' texts embed with their images
        (``metadata[image_key]``: a path or an https URL) as ONE text+image vector each."""
        texts = [d.page_content for d in documents]
        with images_with_texts(texts, [d.metadata.get(image_key) for d in documents]):
            yield

    def add_documents(
        self, store: Any, documents: Sequence[Document], *, image_key: str = "image", **kwargs: Any
    ) -> list[str]:
        """``store.add_documents(documents)`` with their images (see :meth:`images_of`)."""
        with self.images_of(documents, image_key=image_key):
            ids: list[str] = store.add_documents(list(documents), **kwargs)
        return ids

    async def aadd_documents(
        self, store: Any, documents: Sequence[Document], *, image_key: str = "image", **kwargs: Any
    ) -> list[str]:
        """Async :meth:`add_documents` (``store.aadd_documents``)."""
        with self.images_of(documents, image_key=image_key):
            ids: list[str] = await store.aadd_documents(list(documents), **kwargs)
        return ids
