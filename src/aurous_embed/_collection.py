"""What an embedding function of a vector collection needs besides the framework's interface: the
settings stored with the collection (which, of what type, which may change) and the inputs of one
add or query. Chroma's adapter maps its protocol onto these.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from aurous_embed._adapter import (
    changed_options,
    check_client,
    check_picklable,
    refuse_client_options,
)
from aurous_embed._batch import ProgressCallback
from aurous_embed._client import AurousClient
from aurous_embed._config import ENV_BASE_URL
from aurous_embed._connections import shared_http_client
from aurous_embed._errors import InputValidationError, MissingAPIKeyError
from aurous_embed._parts import Image, check_batch, images_from_uris
from aurous_embed._secrets import Secret
from aurous_embed._settings import resolve_base_url

# What is stored with a collection, with the accepted types; None means "the environment or the
# default". A cache path is not a secret: stored, so that a reopened collection keeps its cache.
STORED_CONFIG: dict[str, tuple[type, ...]] = {
    "model_name": (str,),
    "api_key_env_var": (str,),
    "base_url": (str, type(None)),
    "api_version": (str, type(None)),
    "dimensions": (int, type(None)),
    "cache": (str, type(None)),
}
#: The refusal when the key's variable is not set (``{}``: its name).
MISSING_KEY = (
    "no Aurous API key: set the {} environment variable in this process (Chroma stores only its "
    "name with the collection, never the key; and a process that reopens the collection must "
    "`import aurous_embed.chroma` first, or Chroma reports 'Embedding function aurous not found')"
)
_OPTIONAL = frozenset({"cache"})  # absent from configs stored by earlier versions
_FIXED = ("model_name", "dimensions")  # the stored vectors depend on these


def check_stored_config(config: dict[str, Any]) -> None:
    """Raise ``ValueError`` for unknown keys, a missing model or env var name, or a bad type."""
    unknown = sorted(set(config) - set(STORED_CONFIG))
    if unknown:
        hint = " (the key is never stored: use api_key_env_var)" if "api_key" in unknown else ""
        raise ValueError(f"unknown aurous embedding function config keys {unknown}{hint}")
    for name, types in STORED_CONFIG.items():
        if name in _OPTIONAL and name not in config:
            continue
        value = config.get(name)
        if value in (None, "") and type(None) not in types:
            raise ValueError(f"aurous config {name!r} must be a non-empty str, got {value!r}")
        if not isinstance(value, types) or isinstance(value, bool):
            raise ValueError(f"aurous config {name!r} has the wrong type: {value!r}")


def check_config_update(old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
    """Allow changes that keep vectors comparable (env var, URL, version); refuse the rest."""
    old, new = old_config, new_config
    check_stored_config(new)
    for name in _FIXED:
        if new.get(name) != old.get(name):
            raise ValueError(
                f"cannot change {name} of an existing collection from {old.get(name)!r} "
                f"to {new.get(name)!r}: stored vectors would no longer match; "
                "create a new collection and re-embed instead"
            )


def documents_and_images(items: Sequence[Any], method: str, param: str = "input") -> list[Any]:
    """A collection's documents (``str``) and images (numpy arrays and other image objects) as
    inputs: an image becomes an ``Image`` part, which the core encodes."""
    check_batch(items, method, param=param)
    return [item if isinstance(item, str) else Image(item) for item in items]


def one_kind(
    texts: Sequence[str] | None,
    images: Sequence[Any] | None,
    uris: Sequence[str] | None,
    *,
    names: str,
    param: str,
) -> list[Any]:
    """The inputs of one add or query, given exactly one of texts, images (image objects) or
    uris (image paths or https URLs); ``names`` says the three in the refusal."""
    if sum(x is not None for x in (texts, images, uris)) != 1:
        raise InputValidationError(f"give exactly one of {names}", param=param)
    if texts is not None:
        return list(texts)
    if uris is not None:
        return images_from_uris(list(uris))
    return documents_and_images(images or [], "AurousEmbeddingFunction")


def cache_path(cache: object) -> str | None:
    """The path of a cache given as a path (stored with a collection); ``None`` for an object."""
    return os.fspath(cache) if isinstance(cache, (str, os.PathLike)) else None


def as_lists(**values: Sequence[Any] | None) -> dict[str, list[Any] | None]:
    """Each given sequence as a list (what Chroma's collection methods take), ``None`` kept."""
    return {name: None if value is None else list(value) for name, value in values.items()}


class LazyClient:
    """An adapter's client made on first use, so that making the adapter needs no key and no
    network (Chroma builds a copy from a collection's stored config to check it).

    The key is the one given, else the environment variable ``key_env_var``, read on first use.
    A stored endpoint (``stored_endpoint``) wins over ``$AUROUS_BASE_URL``: when that names
    another one, the first call refuses instead of mixing vectors of two endpoints. The client
    uses the process's shared connection pool: an adapter rebuilt on every call (a reopened
    collection) makes no new pool, nor TLS handshake, per call.
    """

    adapter = "AurousEmbeddingFunction"

    def __init__(self, client: object, *, key_env_var: str, **options: Any) -> None:
        self.client = check_client(client)
        if client is not None:  # options next to client= would be ignored: refuse them
            refuse_client_options(changed_options(options))
        if isinstance(options.get("cache"), os.PathLike):  # a path: what a pickled copy opens
            options["cache"] = os.fspath(options["cache"])
        api_key = options.pop("api_key", None)
        self._key = Secret(api_key) if api_key else None
        self._options = options  # the other client options, and the model
        self._given = client is not None
        self.key_env_var, self._missing_key = key_env_var, MISSING_KEY.format(key_env_var)
        self.stored_endpoint = False
        self._lock = threading.Lock()

    def key(self) -> str | None:
        """The key given, else the environment variable's (``None``: neither)."""
        return (self._key.reveal() if self._key else os.environ.get(self.key_env_var)) or None

    def check_endpoint(self) -> None:
        """Refuse a stored ``base_url`` that ``$AUROUS_BASE_URL`` contradicts."""
        base_url = self._options.get("base_url")
        env = os.environ.get(ENV_BASE_URL, "").rstrip("/")
        if self.stored_endpoint and base_url is not None and env and env != base_url.rstrip("/"):
            raise InputValidationError(
                f"this collection's vectors come from {base_url} (stored with it), but "
                f"{ENV_BASE_URL} names {env}: vectors of two endpoints do not mix in one "
                "collection; unset the variable, or embed into a new collection",
                param="base_url",
            )

    def get(self) -> AurousClient:
        """The client, made on first use."""
        with self._lock:
            if self.client is None:
                key = self.key() or ""
                if not key.strip():
                    raise MissingAPIKeyError(self._missing_key)
                self.check_endpoint()
                pool = shared_http_client(
                    timeout=self._options["timeout"],
                    max_connections=2 * self._options["max_concurrency"],
                )
                self.client = AurousClient(key, **self._options, http_client=pool)
            return self.client

    def float32_rows(
        self,
        items: Sequence[Any],
        dimensions: int | None,
        show_progress: bool,
        on_progress: ProgressCallback | None,
    ) -> list[Any]:
        """One float32 row per document or image (Chroma does not re-check ``embed_query``'s
        result). The key is checked before the inputs."""
        client = self.get()
        inputs = documents_and_images(items, self.adapter)
        rows = client.embed_many(
            inputs,
            dimensions=dimensions,
            show_progress=show_progress,
            on_progress=on_progress,
            as_numpy=True,
        )
        return list(rows)

    def pickled(self) -> dict[str, Any]:
        """The key and endpoint a pickled copy uses (this one's, never another process's: the
        environment variable is read now), and the client options that travel with it."""
        options = self._options
        check_picklable(
            self.adapter,
            client_given=self._given,
            cache_object=not isinstance(options["cache"], (str, type(None))),
            max_credits=options["max_credits"],
        )
        key = self.key()
        self.check_endpoint()
        travel = ("timeout", "max_retries", "max_concurrency", "cache_urls")
        return {
            "api_key": key,
            "base_url": options["base_url"] or resolve_base_url(None),
            **{name: options[name] for name in travel},
        }
