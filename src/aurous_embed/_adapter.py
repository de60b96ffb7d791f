"""What the framework adapters share: their clients, made from options or given, and the options
of every call. Whatever an option does (a cache, a budget, progress, pacing) lives in the clients;
an adapter only hands it over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aurous_embed._async_client import AsyncAurousClient
from aurous_embed._batch import ProgressCallback
from aurous_embed._client import AurousClient
from aurous_embed._config import DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
from aurous_embed._errors import InputValidationError

#: Adapter options that configure the clients (not single calls).
CLIENT_OPTIONS = (
    "api_key",
    "base_url",
    "api_version",
    "timeout",
    "max_retries",
    "max_concurrency",
    "cache",
    "cache_urls",
    "max_credits",
)


@dataclass
class AdapterClients:
    """The sync and async clients of one adapter, and which of them it made (and so closes)."""

    sync: AurousClient
    async_: AsyncAurousClient
    owns_sync: bool
    owns_async: bool

    def close(self) -> None:
        if self.owns_sync:
            self.sync.close()

    async def aclose(self) -> None:
        if self.owns_async:
            await self.async_.close()


#: What each client option is when it is not given.
CLIENT_DEFAULTS: dict[str, Any] = {
    "api_key": None,
    "base_url": None,
    "api_version": None,
    "timeout": DEFAULT_TIMEOUT,
    "max_retries": DEFAULT_MAX_RETRIES,
    "max_concurrency": DEFAULT_MAX_CONCURRENCY,
    "cache": None,
    "cache_urls": False,
    "max_credits": None,
}


def changed_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The client options among ``values`` (e.g. an adapter's arguments) that are not defaults."""
    return {n: values[n] for n in CLIENT_OPTIONS if n in values and values[n] != CLIENT_DEFAULTS[n]}


def refuse_client_options(options: Mapping[str, Any]) -> None:
    """Refuse client options given next to ``client=``: they belong on that client (it carries its
    key, connection settings, cache and budget), and ignoring them would be silent."""
    clash = sorted(name for name in options if name in CLIENT_OPTIONS)
    if clash:
        raise InputValidationError(
            f"client= is given, so {', '.join(clash)} must be set on that client (a client "
            "carries its key, connection settings, cache and budget), not here",
            param=clash[0],
        )


def adapter_clients(
    client: object = None, async_client: object = None, **options: Any
) -> AdapterClients:
    """The clients an adapter uses.

    Given a ``client`` (and/or ``async_client``), they are used as they are, and a missing twin is
    made with :meth:`AurousClient.to_async` (or ``to_sync``): one cache, one budget, one set of
    totals for the sync and async paths. Otherwise both are made from ``options`` (only the ones
    the user set; see :data:`CLIENT_OPTIONS`). Setting client options *and* passing a client is
    refused: the options belong on the client.
    """
    if client is None and async_client is None:
        unknown = sorted(set(options) - set(CLIENT_OPTIONS))
        if unknown:  # pragma: no cover - adapters pass only known options
            raise InputValidationError(f"unknown client options {unknown}", param=unknown[0])
        sync = AurousClient(**options)
        return AdapterClients(sync, sync.to_async(), True, True)
    refuse_client_options(options)
    if client is not None and not isinstance(client, AurousClient):
        raise InputValidationError(
            f"client must be an AurousClient, not {type(client).__name__}", param="client"
        )
    if async_client is not None and not isinstance(async_client, AsyncAurousClient):
        raise InputValidationError(
            f"async_client must be an AsyncAurousClient, not {type(async_client).__name__}",
            param="async_client",
        )
    if client is None:
        assert isinstance(async_client, AsyncAurousClient)
        return AdapterClients(async_client.to_sync(), async_client, True, False)
    if async_client is None:
        return AdapterClients(client, client.to_async(), False, True)
    return AdapterClients(client, async_client, False, False)


def call_options(
    *,
    model: str | None,
    dimensions: int | None,
    show_progress: bool,
    on_progress: ProgressCallback | None,
) -> dict[str, Any]:
    """The keyword arguments of every ``embed_many`` an adapter makes."""
    return {
        "model": model,
        "dimensions": dimensions,
        "show_progress": show_progress,
        "on_progress": on_progress,
    }


def given(values: Mapping[str, Any], names: set[str] | frozenset[str]) -> dict[str, Any]:
    """The options among ``values`` that the user set (``names``), for :func:`adapter_clients`."""
    return {name: values[name] for name in CLIENT_OPTIONS if name in names}


def check_picklable(
    adapter: str, *, client_given: bool, cache_object: bool, max_credits: float | None
) -> None:
    """Refuse to pickle an adapter holding what cannot be copied to another process, with a
    message saying what to do instead: a ``client=`` (its connections, cache and budget belong to
    this process), a cache object (pass a path), a ``max_credits`` budget (each copy would get a
    budget of its own, so together they could spend it several times).

    Raises:
        TypeError: as :mod:`pickle` expects of an object it cannot pickle.
    """
    if client_given:
        raise TypeError(
            f"an {adapter} made with client= cannot be pickled (the client's connections, cache "
            f"and budget belong to this process): to use it in worker processes, make the "
            f"{adapter} with api_key=... and the connection options instead"
        )
    if cache_object:
        raise TypeError(
            f"an {adapter} with a cache object cannot be pickled: pass cache='file.sqlite' (a "
            "path every worker process opens)"
        )
    if max_credits is not None:
        raise TypeError(
            f"an {adapter} with max_credits cannot be pickled: each worker process would get a "
            "budget of its own and together they could spend it several times (give each worker "
            "its own share explicitly)"
        )


def pickled_connection(
    clients: AdapterClients, adapter: str, *, cache_is_path: bool, max_credits: float | None
) -> dict[str, Any]:
    """The key and endpoint a pickled adapter carries, so that its copy in a worker process
    (``IngestionPipeline(num_workers=N)``, ``ProcessPoolExecutor``) uses exactly the same ones and
    never picks up another key from that process's environment.

    The key travels inside the pickle (never in ``to_dict()``, ``to_json()`` or a repr): pickles
    are for handing work to your own processes, not for storing.
    """
    core = clients.sync
    check_picklable(
        adapter,
        client_given=not (clients.owns_sync and clients.owns_async),
        cache_object=core._cache is not None and not cache_is_path,
        max_credits=max_credits,
    )
    return {"api_key": core._settings.api_key.reveal(), "base_url": core.base_url}
