"""LlamaIndex adapter: :class:`AurousEmbedding`, a ``MultiModalEmbedding`` backed by the Aurous API.

It maps LlamaIndex's interface onto :class:`~aurous_embed.AurousClient` and
:class:`~aurous_embed.AsyncAurousClient` and does nothing else: batching, concurrency, retries,
rate-limit pacing, image encoding and input checks all happen once, in the core.

Needs the ``llama-index`` extra (``pip install "aurous-embed[llama-index]"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.schema import ImageType

from aurous_embed._async_client import AsyncAurousClient
from aurous_embed._client import AurousClient
from aurous_embed._config import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
)
from aurous_embed._parts import images_from_uris, normalize_inputs
from aurous_embed.types import EmbeddingResult

__all__ = ["AurousEmbedding"]

# One LlamaIndex batch is one core `embed_many` (N requests, `max_concurrency` in flight). Sync
# batches run one after another, each ending in a half-empty tail, and async ones all at once, each
# with its own `max_concurrency`: few large batches keep the pool full without stacking fan-outs.
DEFAULT_EMBED_BATCH_SIZE = 1024  # LlamaIndex allows at most 2048


def _vectors(results: Sequence[EmbeddingResult]) -> list[Embedding]:
    return [result.embedding for result in results]


class AurousEmbedding(MultiModalEmbedding):
    """Aurous multimodal embeddings for LlamaIndex: texts, queries and images in one space.

    One instance serves as both ``embed_model`` and ``image_embed_model``: a text query finds
    images. A batch is embedded with concurrent requests, one per item; the ``a*`` methods are
    natively async. Images are paths, ``BytesIO`` objects or ``https://`` URLs. The API key
    (``api_key=`` or ``$AUROUS_API_KEY``) stays inside the clients, never in a field, so
    ``to_dict()``, ``to_json()``, ``to_payload()`` and ``repr`` never show it. Connection settings
    are read when the clients are built; ``model_name`` and ``dimensions`` on every call.

    Attributes:
        model_name: model slug, sent unchanged.
        embed_batch_size: items per core ``embed_many`` call (default 1024).
        base_url: API base including ``/v1``; defaults to ``$AUROUS_BASE_URL`` or production.
        api_version: ``Aurous-Version`` pin (``YYYY-MM-DD``); defaults to ``$AUROUS_API_VERSION``.
        dimensions: vector length, checked by the API against the model's supported values.
        max_concurrency: most requests in flight for this model (all batches together).
        max_retries: retries (not attempts) of one request on 429, 5xx and timeouts.
        timeout: seconds per attempt.

    Example:
        >>> from llama_index.core import Settings
        >>> from llama_index.core.indices import MultiModalVectorStoreIndex
        >>> from llama_index.core.schema import ImageNode
        >>> from aurous_embed.llama_index import AurousEmbedding
        >>> Settings.embed_model = model = AurousEmbedding()  # doctest: +SKIP
        >>> nodes = [ImageNode(image_path="bag.png", metadata={"sku": "B1"})]  # doctest: +SKIP
        >>> index = MultiModalVectorStoreIndex(nodes, embed_model=model, image_embed_model=model)  # doctest: +SKIP
        >>> index.as_retriever().text_to_image_retrieve("red bag")  # doctest: +SKIP
    """

    model_name: str = DEFAULT_MODEL
    embed_batch_size: int = Field(default=DEFAULT_EMBED_BATCH_SIZE, gt=0, le=2048)
    base_url: str | None = None
    api_version: str | None = None
    dimensions: int | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout: float = DEFAULT_TIMEOUT

    _client: AurousClient = PrivateAttr()
    _async_client: AsyncAurousClient = PrivateAttr()

    def __init__(
        self, model_name: str = DEFAULT_MODEL, *, api_key: str | None = None, **kwargs: Any
    ) -> None:
        """Validate the settings and build the sync and async clients once.

        Raises:
            MissingAPIKeyError: no ``api_key`` and ``AUROUS_API_KEY`` is not set.
            InputValidationError: a setting the core refuses (e.g. plain http to a remote host).
        """
        super().__init__(model_name=model_name, **kwargs)
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "model": self.model_name,
            "api_version": self.api_version,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "max_concurrency": self.max_concurrency,
        }
        self._client = AurousClient(api_key, **options)
        self._async_client = AsyncAurousClient(api_key, **options)

    @classmethod
    def class_name(cls) -> str:
        """The stable serialisation id."""
        return "AurousEmbedding"

    def close(self) -> None:
        """Close the sync client's connection pool."""
        self._client.close()

    async def aclose(self) -> None:
        """Close the async client's connection pool (from the event loop that used it)."""
        await self._async_client.close()

    def _embed(self, value: Any) -> Embedding:
        result = self._client.embed(value, model=self.model_name, dimensions=self.dimensions)
        return result.embedding

    async def _aembed(self, value: Any) -> Embedding:
        client, model, dimensions = self._async_client, self.model_name, self.dimensions
        return (await client.embed(value, model=model, dimensions=dimensions)).embedding

    def _embed_many(self, values: Sequence[Any]) -> list[Embedding]:
        client, model, dimensions = self._client, self.model_name, self.dimensions
        return _vectors(client.embed_many(values, model=model, dimensions=dimensions))

    async def _aembed_many(self, values: Sequence[Any]) -> list[Embedding]:
        client, model, dimensions = self._async_client, self.model_name, self.dimensions
        return _vectors(await client.embed_many(values, model=model, dimensions=dimensions))

    # LlamaIndex sends a batch in chunks of embed_batch_size; every item is checked first, so a bad
    # item anywhere is refused with its real index before any chunk is sent.
    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        normalize_inputs(texts)
        return super().get_text_embedding_batch(texts, show_progress, **kwargs)

    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        normalize_inputs(texts)
        return await super().aget_text_embedding_batch(texts, show_progress, **kwargs)

    def get_image_embedding_batch(
        self, img_file_paths: list[ImageType], show_progress: bool = False
    ) -> list[Embedding]:
        normalize_inputs(images_from_uris(img_file_paths))
        return super().get_image_embedding_batch(img_file_paths, show_progress)

    async def aget_image_embedding_batch(
        self, img_file_paths: list[ImageType], show_progress: bool = False
    ) -> list[Embedding]:
        normalize_inputs(images_from_uris(img_file_paths))
        return await super().aget_image_embedding_batch(img_file_paths, show_progress)

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed(query)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await self._aembed(query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed(text)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await self._aembed(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed_many(texts)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._aembed_many(texts)

    # LlamaIndex passes a path (ImageNode.image_path) or a BytesIO (inline data, downloads); the
    # core's images_from_uris turns each into a part (https URLs stay URLs) and names bad items.
    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._embed(images_from_uris([img_file_path])[0])

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return await self._aembed(images_from_uris([img_file_path])[0])

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return self._embed_many(images_from_uris(img_file_paths))

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return await self._aembed_many(images_from_uris(img_file_paths))
