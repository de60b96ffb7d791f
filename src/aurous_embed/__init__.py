"""aurous-embed: the Aurous Labs multimodal embeddings API as a first-class embedder.

>>> from aurous_embed import AurousClient, Text, Image
>>> client = AurousClient()  # doctest: +SKIP  (reads AUROUS_API_KEY)
>>> client.embed([Text("red leather bag"), Image("bag.jpg")]).embedding  # doctest: +SKIP

Framework adapters live in ``aurous_embed.langchain``, ``aurous_embed.llama_index`` and
``aurous_embed.chroma``; importing this package never imports a framework.
"""

from aurous_embed._async_client import AsyncAurousClient
from aurous_embed._batch import ProgressCallback
from aurous_embed._cache import CacheStats, EmbeddingCache, SQLiteCache
from aurous_embed._client import AurousClient
from aurous_embed._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AurousError,
    AuthenticationError,
    BadRequestError,
    BatchEmbeddingError,
    BatchInputNotSupportedError,
    BatchStoppedError,
    BudgetExceededError,
    ClientClosedError,
    IdempotencyConflictError,
    InputTooLargeError,
    InputValidationError,
    InsufficientCreditsError,
    InternalServerError,
    MissingAPIKeyError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TooManyInputItemsError,
    UnsupportedDimensionsError,
    VideoUnsupportedError,
    WrongModelKindError,
)
from aurous_embed._parts import (
    EmbedInput,
    Image,
    ImageURL,
    Part,
    Text,
    VideoURL,
    image_from_uri,
    images_from_uris,
)
from aurous_embed._retry import Clock, SystemClock
from aurous_embed._version import __version__
from aurous_embed.types import (
    Balance,
    EmbeddingResult,
    Estimate,
    EstimateTokens,
    FileObject,
    ModelInfo,
    Usage,
    UsageBreakdown,
    UsageTotals,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncAurousClient",
    "AurousClient",
    "AurousError",
    "AuthenticationError",
    "BadRequestError",
    "Balance",
    "BatchEmbeddingError",
    "BatchInputNotSupportedError",
    "BatchStoppedError",
    "BudgetExceededError",
    "CacheStats",
    "ClientClosedError",
    "Clock",
    "EmbedInput",
    "EmbeddingCache",
    "EmbeddingResult",
    "Estimate",
    "EstimateTokens",
    "FileObject",
    "IdempotencyConflictError",
    "Image",
    "ImageURL",
    "InputTooLargeError",
    "InputValidationError",
    "InsufficientCreditsError",
    "InternalServerError",
    "MissingAPIKeyError",
    "MissingDependencyError",
    "ModelInfo",
    "NotFoundError",
    "Part",
    "PermissionDeniedError",
    "ProgressCallback",
    "RateLimitError",
    "SQLiteCache",
    "SystemClock",
    "Text",
    "TooManyInputItemsError",
    "UnsupportedDimensionsError",
    "Usage",
    "UsageBreakdown",
    "UsageTotals",
    "VideoURL",
    "VideoUnsupportedError",
    "WrongModelKindError",
    "__version__",
    "image_from_uri",
    "images_from_uris",
]
