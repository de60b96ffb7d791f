"""LangChain adapter: :class:`AurousEmbeddings` maps LangChain's ``Embeddings`` onto the core
clients and does nothing else (batching, retries, caching, budgets, image encoding and checks
happen in the core).

Needs the ``langchain`` extra: ``pip install "aurous-embed[langchain]"``.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from aurous_embed._adapter import AdapterClients, adapter_clients, given, pickled_connection
from aurous_embed._config import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
    ENV_API_KEY,
    ENV_API_VERSION,
    ENV_BASE_URL,
)
from aurous_embed._errors import InputValidationError, MissingAPIKeyError
from aurous_embed._parts import (
    Text,
    check_batch,
    document_parts,
    image_from_uri,
    images_from_uris,
)

__all__ = ["AurousEmbeddings"]

_MISSING_KEY = (
    f"no Aurous API key: pass AurousEmbeddings(api_key=...) or client=..., or set the "
    f"{ENV_API_KEY} environment variable (for offline work, start the emulator: aurous-embed serve)"
)
#: Documents whose images go with the texts being embedded now (see ``AurousEmbeddings.images_of``).
_PENDING: contextvars.ContextVar[tuple[list[str], list[Any]] | None] = contextvars.ContextVar(
    "aurous_pending_images", default=None
)


class AurousEmbeddings(BaseModel, Embeddings):
    """Aurous multimodal embeddings for LangChain: texts, queries, images and mixed documents.

    Texts, queries and images share one vector space, so a text query finds images and an image
    finds texts. ``embed_image(uris=...)`` makes it work with ``langchain_chroma.Chroma.add_images``
    and ``similarity_search_by_image``; ``add_documents(store, docs)`` stores a ``Document`` whose
    ``metadata["image"]`` names a picture as ONE text+image vector in any vector store. Every list
    is embedded with concurrent requests, one per item; the ``a*`` methods are natively async.

    Either give connection options (``api_key`` ... ``max_credits``) or an existing ``client``
    (and/or ``async_client``): one client, with its cache, budget and rate-limit model, can serve
    LangChain, LlamaIndex and Chroma at once.

    Example:
        >>> from aurous_embed.langchain import AurousEmbeddings
        >>> embeddings = AurousEmbeddings(cache="embeddings.sqlite")  # doctest: +SKIP
        >>> vectors = embeddings.embed_documents(["red leather bag", "blue cotton shirt"])  # doctest: +SKIP
        >>> photos = embeddings.embed_image(uris=["bag.jpg", "https://example.com/shirt.png"])  # doctest: +SKIP
    """

    model: str = DEFAULT_MODEL
    """Model slug, sent unchanged."""
    api_key: SecretStr | None = Field(
        alias="api_key", default_factory=secret_from_env(ENV_API_KEY, default=None)
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
    cache: Any = Field(default=None, exclude=True)
    """A SQLite file path or a cache object (``get``/``put``): an input embedded before costs nothing."""
    cache_urls: bool = False
    """Also cache inputs with URL parts (by URL)."""
    max_credits: float | None = None
    """A budget for everything this object embeds (``BudgetExceededError`` instead of overspending)."""
    show_progress: bool = False
    """Draw a progress bar (tqdm or rich) while embedding a list."""
    on_progress: Callable[[int, int | None, float], None] | None = Field(default=None, exclude=True)
    """``on_progress(done, total, credits)`` after each item of a list."""
    client: Any = Field(default=None, exclude=True)
    """An existing ``AurousClient`` to use instead of connection options."""
    async_client: Any = Field(default=None, exclude=True)
    """An existing ``AsyncAurousClient`` for the ``a*`` methods (default: ``client.to_async()``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    _clients: AdapterClients = PrivateAttr()

    @model_validator(mode="after")
    def _build_clients(self) -> AurousEmbeddings:
        options = given(
            {**self.__dict__, "api_key": self.api_key and self.api_key.get_secret_value()},
            self.model_fields_set | {"api_key", "base_url", "api_version"},
        )
        if self.client is None and self.async_client is None:
            if options.get("api_key") is None:
                raise MissingAPIKeyError(_MISSING_KEY)
        else:  # only what the user set explicitly can clash with the client's own settings
            options = {k: v for k, v in options.items() if k in self.model_fields_set}
        self._clients = adapter_clients(self.client, self.async_client, **options)
        return self

    # Pickled for worker processes: the copy is rebuilt with the same key and endpoint (see
    # pickled_connection); the progress callback stays in this process.
    def __getstate__(self) -> dict[str, Any]:
        connection = pickled_connection(
            self._clients,
            "AurousEmbeddings",
            cache_is_path=isinstance(self.cache, (str, os.PathLike)),
            max_credits=self.max_credits,
        )
        skip = {"api_key", "client", "async_client", "on_progress"}
        fields = {name: getattr(self, name) for name in type(self).model_fields if name not in skip}
        return {"aurous_embeddings": {**fields, **connection}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(self, **state["aurous_embeddings"])

    @property
    def _calls(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dimensions": self.dimensions,
            "show_progress": self.show_progress,
            "on_progress": self.on_progress,
        }

    def close(self) -> None:
        """Close the connections of the sync methods (LangChain never calls this; it is optional)."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close the connections of the async methods, on the event loop that used them."""
        await self._clients.aclose()

    def _inputs(self, texts: list[str]) -> list[Any]:
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

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order (concurrent requests)."""
        results = self._clients.sync.embed_many(self._inputs(texts), **self._calls)
        return [r.embedding for r in results]

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query text."""
        return self._clients.sync.embed(
            text, model=self.model, dimensions=self.dimensions
        ).embedding

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents` (native, no thread pool)."""
        results = await self._clients.async_.embed_many(self._inputs(texts), **self._calls)
        return [r.embedding for r in results]

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query` (native, no thread pool)."""
        client = self._clients.async_
        return (await client.embed(text, model=self.model, dimensions=self.dimensions)).embedding

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
        results = self._clients.sync.embed_many(images_from_uris(uris), **self._calls)
        return [r.embedding for r in results]

    async def aembed_image(self, uris: list[str]) -> list[list[float]]:
        """Async :meth:`embed_image` (native, no thread pool)."""
        results = await self._clients.async_.embed_many(images_from_uris(uris), **self._calls)
        return [r.embedding for r in results]

    def embed_multimodal(self, inputs: Sequence[Any]) -> list[list[float]]:
        """One vector per document, where a document is a list of parts combined in order.

        Args:
            inputs: each item is a list of parts: ``str`` (text), ``Text``, ``Image`` (a path,
                bytes, PIL image or numpy array) or ``ImageURL`` (https). A single part or ``str``
                is a one-part document. A ``str`` is text even when it names a file (a warning
                says so when it names an image file: wrap it as ``Image(path)``).

        Example:
            >>> from aurous_embed import Image, Text
            >>> embeddings.embed_multimodal([["Red bag", Image("bag.png")], [Text("A shirt")]])  # doctest: +SKIP
        """
        check_batch(inputs, "embed_multimodal")
        documents = [document_parts(parts) for parts in inputs]
        return [r.embedding for r in self._clients.sync.embed_many(documents, **self._calls)]

    async def aembed_multimodal(self, inputs: Sequence[Any]) -> list[list[float]]:
        """Async :meth:`embed_multimodal` (native, no thread pool)."""
        check_batch(inputs, "embed_multimodal")
        documents = [document_parts(parts) for parts in inputs]
        results = await self._clients.async_.embed_many(documents, **self._calls)
        return [r.embedding for r in results]

    @contextlib.contextmanager
    def images_of(
        self, documents: Sequence[Document], *, image_key: str = "image"
    ) -> Iterator[None]:
        """While the block runs, embedding these documents' texts (in this order) embeds each with
        its image (``metadata[image_key]``: a path or an https URL) as ONE text+image vector.

        Vector stores give an embedding model only texts; this tells it the images that go with
        them. Documents without the key stay text-only.
        """
        images = [
            None
            if d.metadata.get(image_key) in (None, "")
            else image_from_uri(str(d.metadata[image_key]))
            for d in documents
        ]
        token = _PENDING.set(([d.page_content for d in documents], images))
        try:
            yield
        finally:
            _PENDING.reset(token)

    def add_documents(
        self, store: Any, documents: Sequence[Document], *, image_key: str = "image", **kwargs: Any
    ) -> list[str]:
        """``store.add_documents(documents)``, each document with an image as ONE text+image
        vector (see :meth:`images_of`); works with any LangChain vector store using this model.

        Example:
            >>> doc = Document("Red leather bag", metadata={"image": "photos/bag.png"})  # doctest: +SKIP
            >>> embeddings.add_documents(Chroma(embedding_function=embeddings), [doc])  # doctest: +SKIP
        """
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
