"""LangChain adapter: :class:`AurousEmbeddings` maps LangChain's ``Embeddings`` onto the core
clients and does nothing else (batching, retries, image encoding and checks happen in the core).

Needs the ``langchain`` extra: ``pip install "aurous-embed[langchain]"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from aurous_embed import AsyncAurousClient, AurousClient, Text, images_from_uris
from aurous_embed._config import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
    ENV_API_KEY,
    ENV_API_VERSION,
    ENV_BASE_URL,
)
from aurous_embed.types import EmbeddingResult

__all__ = ["AurousEmbeddings"]

_MISSING_KEY = (
    f"no Aurous API key: pass AurousEmbeddings(api_key=...) or set the {ENV_API_KEY} "
    "environment variable (for offline work, start the emulator: aurous-embed serve)"
)


def _vectors(results: Sequence[EmbeddingResult]) -> list[list[float]]:
    return [result.embedding for result in results]


def _document(parts: Any) -> Any:
    # Inside one multimodal document a str is a text part; the core reads a list of plain strs
    # as N separate inputs, so say which one is meant. Anything else goes to the core unchanged.
    if isinstance(parts, (list, tuple)):
        return [Text(part) if isinstance(part, str) else part for part in parts]
    return parts


class AurousEmbeddings(BaseModel, Embeddings):
    """Aurous multimodal embeddings for LangChain: texts, queries, images and mixed documents.

    Texts, queries and images share one vector space, so a text query finds images and an image
    finds texts. ``embed_image(uris=...)`` makes it work with ``langchain_chroma.Chroma.add_images``
    and ``similarity_search_by_image``. Every list is embedded with concurrent requests, one per
    item; the ``a*`` methods are natively async.

    Example:
        >>> from aurous_embed.langchain import AurousEmbeddings
        >>> embeddings = AurousEmbeddings()  # doctest: +SKIP  (reads AUROUS_API_KEY)
        >>> vectors = embeddings.embed_documents(["red leather bag", "blue cotton shirt"])  # doctest: +SKIP
        >>> photos = embeddings.embed_image(uris=["bag.jpg", "https://example.com/shirt.png"])  # doctest: +SKIP
    """

    model: str = DEFAULT_MODEL
    """Model slug, sent unchanged."""
    api_key: SecretStr = Field(
        alias="api_key", default_factory=secret_from_env(ENV_API_KEY, error_message=_MISSING_KEY)
    )
    """The API key; defaults to ``$AUROUS_API_KEY``. Never shown in ``repr`` or serialised."""
    base_url: str | None = Field(default_factory=from_env(ENV_BASE_URL, default=None))
    """API base including ``/v1``; defaults to ``$AUROUS_BASE_URL``, else production."""
    api_version: str | None = Field(default_factory=from_env(ENV_API_VERSION, default=None))
    """``Aurous-Version`` pin (``YYYY-MM-DD``); defaults to ``$AUROUS_API_VERSION``."""
    dimensions: int | None = None
    """Requested vector length, checked by the API against the model's supported values."""
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    """Most requests in flight while embedding a list."""
    max_retries: int = DEFAULT_MAX_RETRIES
    """Retries (not attempts) of one request on 429, 5xx and timeouts."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds per attempt."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    _client: AurousClient = PrivateAttr()
    _async_client: AsyncAurousClient = PrivateAttr()

    @model_validator(mode="after")
    def _build_clients(self) -> AurousEmbeddings:
        options: dict[str, Any] = {
            "api_key": self.api_key.get_secret_value(),
            "base_url": self.base_url,
            "model": self.model,
            "api_version": self.api_version,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "max_concurrency": self.max_concurrency,
        }
        self._client = AurousClient(**options)
        self._async_client = AsyncAurousClient(**options)
        return self

    def close(self) -> None:
        """Close the connections of the sync methods (LangChain never calls this; it is optional)."""
        self._client.close()

    async def aclose(self) -> None:
        """Close the connections of the async methods, on the event loop that used them."""
        await self._async_client.close()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order (concurrent requests)."""
        return _vectors(self._client.embed_many(texts, dimensions=self.dimensions))

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query text."""
        return self._client.embed(text, dimensions=self.dimensions).embedding

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents` (native, no thread pool)."""
        return _vectors(await self._async_client.embed_many(texts, dimensions=self.dimensions))

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query` (native, no thread pool)."""
        return (await self._async_client.embed(text, dimensions=self.dimensions)).embedding

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        """One vector per image, in order, in the same space as texts.

        Args:
            uris: local paths, ``file://`` or ``data:`` URIs (sent inline), or ``https://`` URLs
                (fetched by the API). The name ``uris`` is what ``langchain_chroma`` passes.

        Raises:
            InputValidationError: an unreadable or unsupported URI, naming its index; nothing is
                sent.

        Example:
            >>> store = Chroma(embedding_function=AurousEmbeddings())  # doctest: +SKIP
            >>> store.add_images(uris=["bag.png", "shirt.png"])  # doctest: +SKIP
        """
        parts = images_from_uris(uris)
        return _vectors(self._client.embed_many(parts, dimensions=self.dimensions))

    async def aembed_image(self, uris: list[str]) -> list[list[float]]:
        """Async :meth:`embed_image` (native, no thread pool)."""
        parts = images_from_uris(uris)
        return _vectors(await self._async_client.embed_many(parts, dimensions=self.dimensions))

    def embed_multimodal(self, inputs: Sequence[Any]) -> list[list[float]]:
        """One vector per document, where a document is a list of parts combined in order.

        Args:
            inputs: each item is a list of parts: ``str`` (text), ``Text``, ``Image`` (a path,
                bytes, PIL image or numpy array) or ``ImageURL`` (https). A single part or ``str``
                is a one-part document.

        Example:
            >>> from aurous_embed import Image, Text
            >>> embeddings.embed_multimodal([["Red bag", Image("bag.png")], [Text("A shirt")]])  # doctest: +SKIP
        """
        documents = [_document(parts) for parts in inputs]
        return _vectors(self._client.embed_many(documents, dimensions=self.dimensions))

    async def aembed_multimodal(self, inputs: Sequence[Any]) -> list[list[float]]:
        """Async :meth:`embed_multimodal` (native, no thread pool)."""
        documents = [_document(parts) for parts in inputs]
        return _vectors(await self._async_client.embed_many(documents, dimensions=self.dimensions))
