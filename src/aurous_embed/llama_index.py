"""LlamaIndex adapter: :class:`AurousEmbedding`, a ``MultiModalEmbedding`` that maps LlamaIndex's
interface onto the core clients (batching, concurrency, retries, pacing, image encoding and checks
happen there). Needs the ``llama-index`` extra."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.schema import BaseNode, ImageNode, ImageType, MetadataMode

from aurous_embed import _config as c
from aurous_embed._adapter import (
    AdapterClients,
    FieldsAdapter,
    attach,
    call_options,
    checked,
    clients_from_fields,
    text_with_image,
)
from aurous_embed._parts import images_from_uris

__all__ = ["AurousEmbedding"]

# One batch is one core `embed_many` (`max_concurrency` in flight): few large batches keep the pool
# full without stacking fan-outs (async batches all run at once). LlamaIndex allows at most 2048.
DEFAULT_EMBED_BATCH_SIZE = 1024


def _node_input(node: BaseNode) -> Any:
    """An ImageNode's text and image as ONE input, any other node's text."""
    text = node.get_content(metadata_mode=MetadataMode.EMBED)
    if not isinstance(node, ImageNode):
        return text
    return text_with_image(text, url=node.image_url, path=node.image_path, b64=node.image)


class AurousEmbedding(FieldsAdapter, MultiModalEmbedding):
    """Aurous multimodal embeddings for LlamaIndex: texts, queries and images in one space.

    One instance serves as ``embed_model`` and ``image_embed_model``; images are paths, BytesIO
    or https URLs. Options are ``AurousClient``'s (the key stays in the clients, out of
    ``to_dict()`` and ``repr``), or ``client=``/``async_client=``. With ``multimodal_nodes``, an
    ImageNode passed as a transformation (``model(nodes)``) becomes ONE text+image vector.

    Example:
        >>> index = MultiModalVectorStoreIndex(nodes, image_embed_model=AurousEmbedding())  # doctest: +SKIP
    """

    model_name: str = c.DEFAULT_MODEL
    embed_batch_size: int = Field(default=DEFAULT_EMBED_BATCH_SIZE, gt=0, le=2048)
    base_url: str | None = None
    api_version: str | None = None
    dimensions: int | None = None
    max_concurrency: int = c.DEFAULT_MAX_CONCURRENCY
    max_retries: int = c.DEFAULT_MAX_RETRIES
    timeout: float = c.DEFAULT_TIMEOUT
    cache: Any = None  # a SQLite path (a cache object is kept out of the fields)
    cache_urls: bool = False
    max_credits: float | None = None
    show_progress: bool = False
    on_progress: Callable[[int, int | None, float], None] | None = Field(default=None, exclude=True)
    multimodal_nodes: bool = False

    model_config = ConfigDict(extra="forbid")
    _clients: AdapterClients = PrivateAttr()

    def __init__(
        self,
        model_name: str = c.DEFAULT_MODEL,
        *,
        api_key: str | None = None,
        client: Any = None,
        async_client: Any = None,
        **kwargs: Any,
    ) -> None:
        cache = kwargs.get("cache")
        cache_object = None if isinstance(cache, (str, type(None))) else kwargs.pop("cache")
        super().__init__(model_name=model_name, **kwargs)
        fields, explicit = self.__dict__, self.model_fields_set  # a cache object is not a field:
        options = {"api_key": api_key, "cache": cache_object}
        self._clients = clients_from_fields(fields, explicit, client, async_client, **options)

    @classmethod
    def class_name(cls) -> str:
        return "AurousEmbedding"

    @property
    def _calls(self) -> dict[str, Any]:
        return call_options(self.model_name, self.dimensions, self.show_progress, self.on_progress)

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        if not self.multimodal_nodes:
            return super().__call__(nodes, **kwargs)
        return attach(nodes, self._clients.vectors([_node_input(n) for n in nodes], self._calls))

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        if not self.multimodal_nodes:
            return await super().acall(nodes, **kwargs)
        inputs = [_node_input(n) for n in nodes]
        return attach(nodes, await self._clients.avectors(inputs, self._calls))

    # Every item is checked before LlamaIndex sends the first chunk (an error names its index).
    def get_text_embedding_batch(self, texts: list[str], *args: Any, **kw: Any) -> list[Embedding]:
        return super().get_text_embedding_batch(checked(texts), *args, **kw)

    async def aget_text_embedding_batch(self, texts: list[str], *a: Any, **kw: Any) -> Any:
        return await super().aget_text_embedding_batch(checked(texts), *a, **kw)

    def get_image_embedding_batch(self, img_file_paths: Any, *a: Any, **kw: Any) -> Any:
        return super().get_image_embedding_batch(checked(img_file_paths, images=True), *a, **kw)

    async def aget_image_embedding_batch(self, img_file_paths: Any, *a: Any, **kw: Any) -> Any:
        paths = checked(img_file_paths, images=True)
        return await super().aget_image_embedding_batch(paths, *a, **kw)

    def _get_query_embedding(self, query: Any) -> Embedding:
        return self._clients.vector(query, self._calls)

    async def _aget_query_embedding(self, query: Any) -> Embedding:
        return await self._clients.avector(query, self._calls)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._clients.vector(text, self._calls)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await self._clients.avector(text, self._calls)

    def _get_text_embeddings(self, texts: list[Any]) -> list[Embedding]:
        return self._clients.vectors(texts, self._calls)

    async def _aget_text_embeddings(self, texts: list[Any]) -> list[Embedding]:
        return await self._clients.avectors(texts, self._calls)

    # A path or a BytesIO (inline data, downloads); https URLs stay URLs.
    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return self._get_text_embeddings(images_from_uris(img_file_paths))

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return await self._aget_text_embeddings(images_from_uris(img_file_paths))

    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._get_query_embedding(images_from_uris([img_file_path])[0])

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return await self._aget_query_embedding(images_from_uris([img_file_path])[0])
