"""LlamaIndex adapter: :class:`AurousEmbedding`, a ``MultiModalEmbedding`` backed by the Aurous API.

It maps LlamaIndex's interface onto :class:`~aurous_embed.AurousClient` and
:class:`~aurous_embed.AsyncAurousClient` and does nothing else: batching, concurrency, retries,
rate-limit pacing, image encoding and input checks all happen once, in the core.

Needs the ``llama-index`` extra (``pip install "aurous-embed[llama-index]"``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.schema import BaseNode, ImageNode, ImageType, MetadataMode

from aurous_embed._adapter import (
    CLIENT_OPTIONS,
    AdapterClients,
    adapter_clients,
    pickled_connection,
)
from aurous_embed._config import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
)
from aurous_embed._parts import Image, ImageURL, Text, images_from_uris, normalize_inputs
from aurous_embed.types import EmbeddingResult

__all__ = ["AurousEmbedding"]

# One LlamaIndex batch is one core `embed_many` (N requests, `max_concurrency` in flight). Sync
# batches run one after another, each ending in a half-empty tail, and async ones all at once, each
# with its own `max_concurrency`: few large batches keep the pool full without stacking fan-outs.
DEFAULT_EMBED_BATCH_SIZE = 1024  # LlamaIndex allows at most 2048


def _vectors(results: Sequence[EmbeddingResult]) -> list[Embedding]:
    return [result.embedding for result in results]


def _node_input(node: BaseNode) -> Any:
    """What one node embeds as: an ImageNode's text and image together, else its text."""
    text = node.get_content(metadata_mode=MetadataMode.EMBED)
    image: Image | ImageURL | None = None
    if isinstance(node, ImageNode):
        if node.image_url:
            image = images_from_uris([node.image_url])[0]
        elif node.image_path:
            image = Image(node.image_path)
        elif node.image:
            image = Image(base64.b64decode(node.image))
    if image is None:
        return text
    return [Text(text), image] if text.strip() else image


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
        cache: a SQLite file path (kept in ``to_dict()``) or a cache object: an input embedded
            before costs nothing.
        cache_urls: also cache inputs with URL parts.
        max_credits: a budget for everything this model embeds.
        show_progress: draw aurous-embed's progress bar (with credits) for each batch.
        on_progress: ``on_progress(done, total, credits)`` after each item of a batch.
        multimodal_nodes: when nodes go through this model as a transformation (ingestion
            pipelines, ``model(nodes)``), an ``ImageNode`` becomes ONE text+image vector of its
            text and its image (``image_path``, ``image_url`` or ``image``); such nodes keep it in
            a ``MultiModalVectorStoreIndex``. Off: LlamaIndex's own behaviour (their text).

    Instead of the connection options, pass ``client=`` (and ``async_client=``): one client, with
    its cache, budget and rate-limit model, can serve LlamaIndex, LangChain and Chroma at once.
    Unknown options are refused.

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
    cache: Any = None
    cache_urls: bool = False
    max_credits: float | None = None
    show_progress: bool = False
    on_progress: Callable[[int, int | None, float], None] | None = Field(default=None, exclude=True)
    multimodal_nodes: bool = False

    model_config = ConfigDict(extra="forbid")

    _clients: AdapterClients = PrivateAttr()

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        api_key: str | None = None,
        client: Any = None,
        async_client: Any = None,
        **kwargs: Any,
    ) -> None:
        """Validate the settings and build (or adopt) the sync and async clients once.

        Raises:
            MissingAPIKeyError: no ``api_key``, no client and ``AUROUS_API_KEY`` is not set.
            InputValidationError: a setting the core refuses, or client options given with a
                ``client`` (they belong on that client).
            ValidationError: an unknown option.
        """
        if not isinstance(kwargs.get("cache"), (str, type(None))):  # a cache object: not a field
            cache_object, kwargs["cache"] = kwargs["cache"], None
        else:
            cache_object = None
        super().__init__(model_name=model_name, **kwargs)
        options: dict[str, Any] = {
            name: getattr(self, name) for name in CLIENT_OPTIONS if name != "api_key"
        }
        options["cache"] = cache_object if cache_object is not None else self.cache
        if client is not None or async_client is not None:
            options = {k: v for k, v in options.items() if k in self.model_fields_set}
            if cache_object is not None:
                options["cache"] = cache_object
            if api_key is not None:
                options["api_key"] = api_key
        else:
            options["api_key"] = api_key
        self._clients = adapter_clients(client, async_client, **options)

    # Pickled for worker processes (IngestionPipeline(num_workers=N)): the copy is rebuilt with the
    # same key and endpoint (LlamaIndex's own unpickling re-runs __init__ without the key). The
    # progress callback stays in this process.
    def __getstate__(self) -> dict[str, Any]:
        connection = pickled_connection(
            self._clients,
            "AurousEmbedding",
            cache_is_path=isinstance(self.cache, str),
            max_credits=self.max_credits,
        )
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        fields.pop("on_progress", None)
        return {"aurous_embedding": {**fields, **connection}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(self, **state["aurous_embedding"])

    @classmethod
    def class_name(cls) -> str:
        """The stable serialisation id."""
        return "AurousEmbedding"

    def close(self) -> None:
        """Close the sync client's connection pool (if this model made the client)."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close the async client's connection pool (from the event loop that used it)."""
        await self._clients.aclose()

    def _calls(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "dimensions": self.dimensions,
            "show_progress": self.show_progress,
            "on_progress": self.on_progress,
        }

    def _embed(self, value: Any) -> Embedding:
        client = self._clients.sync
        return client.embed(value, model=self.model_name, dimensions=self.dimensions).embedding

    async def _aembed(self, value: Any) -> Embedding:
        client, model, dimensions = self._clients.async_, self.model_name, self.dimensions
        return (await client.embed(value, model=model, dimensions=dimensions)).embedding

    def _embed_many(self, values: Sequence[Any]) -> list[Embedding]:
        return _vectors(self._clients.sync.embed_many(values, **self._calls()))

    async def _aembed_many(self, values: Sequence[Any]) -> list[Embedding]:
        return _vectors(await self._clients.async_.embed_many(values, **self._calls()))

    # As a transformation (ingestion pipelines, model(nodes)): with multimodal_nodes, an ImageNode
    # is ONE text+image input; the rest is LlamaIndex's behaviour (the node's text).
    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        if not self.multimodal_nodes:
            return super().__call__(nodes, **kwargs)
        for node, vector in zip(
            nodes, self._embed_many([_node_input(n) for n in nodes]), strict=True
        ):
            node.embedding = vector
        return nodes

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        if not self.multimodal_nodes:
            return await super().acall(nodes, **kwargs)
        vectors = await self._aembed_many([_node_input(n) for n in nodes])
        for node, vector in zip(nodes, vectors, strict=True):
            node.embedding = vector
        return nodes

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
