"""``Emulator``: the emulator app served by uvicorn on a loopback port, in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aurous_embed._config import (
    CURRENT_API_VERSION,
    EMULATOR_CREDITS,
    EMULATOR_NATIVE_DIMENSION,
    EMULATOR_RPM,
    EMULATOR_RPM_BURST,
    EMULATOR_TOKENS_PER_IMAGE,
    EMULATOR_TPM,
)
from aurous_embed.testing._app import EmulatorApp, ResetFault, Settings
from aurous_embed.testing._checks import SCOPES
from aurous_embed.testing._faults import Faults
from aurous_embed.testing._ids import new_api_key
from aurous_embed.testing._stats import Charge, EmulatorStats

if TYPE_CHECKING:
    import uvicorn

    from aurous_embed.testing._clock import ClockFn

SHUTDOWN_GRACE = 5.0  # seconds stop() lets in-flight requests finish before cancelling them


class _HideResetFaults(logging.Filter):
    """uvicorn logs an app exception as an error; an injected reset is not one."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ResetFault)


_uvicorn_logger = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _HideResetFaults) for f in _uvicorn_logger.filters):
    _uvicorn_logger.addFilter(_HideResetFaults())


def parse_key_spec(spec: str) -> tuple[str, str]:
    """Split ``KEY[:scope]`` into (key, scope); the scope defaults to ``full``."""
    key, sep, scope = spec.rpartition(":")
    if sep and scope in SCOPES and key:
        return key, scope
    return spec, "full"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Emulator:
    """A local Aurous API server for tests and offline development.

    Use it as a context manager (``with`` or ``async with``), or call :meth:`start` and
    :meth:`stop`. It serves on a loopback port in a daemon thread; the vectors are a
    deterministic stand-in, not the real model (see ``aurous_embed.testing._vectors``).

    Args:
        host: Interface to bind. Only loopback unless ``allow_remote``.
        port: TCP port; 0 picks a free one.
        latency: Seconds added to every request's "model call".
        jitter: Uniform +/- seconds around ``latency``.
        rpm: Requests per minute of the embeddings bucket (refill rate).
        rpm_burst: Capacity of the embeddings request bucket.
        tpm: Tokens per minute (capacity and refill of the TPM bucket).
        credits: Starting team balance in credits.
        keys: API keys: a mapping ``{key: scope}`` or strings ``"KEY[:scope]"`` (scope ``read``,
            ``write`` or ``full``; default ``full``). Default: one generated ``full`` key.
        faults: Random fault settings; see :class:`Faults` and the ``Aurous-Emulator-Fault``
            header.
        native_dimension: Length of every returned vector.
        accept_video: Accept ``video_url`` parts instead of ``embeddings_video_unsupported``.
        tokens_per_image: Billable tokens per image.
        clock: Epoch-seconds callable for windows, buckets and expiry (e.g. a :class:`Clock`).
        seed: Seed for latency jitter and (unless ``faults.seed`` is set) fault draws.
        api_version: The team's default ``Aurous-Version``.
        allow_remote: Allow binding a non-loopback ``host``.

    Raises:
        ValueError: On a non-loopback host without ``allow_remote``, or a bad setting.

    Example:
        >>> with Emulator(latency=0.05) as emu:  # doctest: +SKIP
        ...     httpx.post(f"{emu.base_url}/embeddings", headers={"X-Api-Key": emu.api_key},
        ...                json={"model": "aurous-embed-vision-1.0", "input": "hello"})
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        jitter: float = 0.0,
        rpm: float = EMULATOR_RPM,
        rpm_burst: float = EMULATOR_RPM_BURST,
        tpm: float = EMULATOR_TPM,
        credits: float = EMULATOR_CREDITS,
        keys: Mapping[str, str] | Iterable[str] | None = None,
        faults: Faults | None = None,
        native_dimension: int = EMULATOR_NATIVE_DIMENSION,
        accept_video: bool = False,
        tokens_per_image: int = EMULATOR_TOKENS_PER_IMAGE,
        clock: ClockFn | None = None,
        seed: int | None = None,
        api_version: str = CURRENT_API_VERSION,
        allow_remote: bool = False,
    ) -> None:
        if not allow_remote and not is_loopback(host):
            raise ValueError(
                f"refusing to bind {host!r}: the emulator has no real security; bind a loopback "
                "address, or pass allow_remote=True (--allow-remote) if you mean it"
            )
        if latency < 0 or jitter < 0:
            raise ValueError("latency and jitter must not be negative")
        if isinstance(keys, Mapping):
            key_scopes = {str(k): str(v) for k, v in keys.items()}
        elif keys is not None:
            key_scopes = dict(parse_key_spec(spec) for spec in keys)
        else:
            key_scopes = {new_api_key(): "full"}
        if not key_scopes:
            raise ValueError("keys must name at least one key")
        settings = Settings(
            latency=latency,
            jitter=jitter,
            rpm=rpm,
            rpm_burst=rpm_burst,
            tpm=tpm,
            credits=credits,
            native_dimension=native_dimension,
            accept_video=accept_video,
            api_version=api_version,
            tokens_per_image=tokens_per_image,
            faults=faults or Faults(),
            seed=seed,
        )
        self._host = host
        self._requested_port = port
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 to 65535 (0: any free port), got {port!r}")
        self._port = port
        self._api_key = next(iter(key_scopes))
        self._app = EmulatorApp(settings, clock if clock is not None else time.time, key_scopes)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._startup_errors: list[BaseException] = []

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> Emulator:
        """Bind the port and serve in a background thread; return once it accepts requests.

        Raises:
            RuntimeError: If it is already running or the server failed to start.
        """
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        import uvicorn

        sock = _bind(self._host, self._requested_port)
        self._port = int(sock.getsockname()[1])
        from aurous_embed.testing._protocol import EnvelopeHttpToolsProtocol

        config = uvicorn.Config(
            self._app,
            http=EnvelopeHttpToolsProtocol,
            lifespan="off",
            log_config=None,  # never reconfigure the host application's logging
            access_log=False,
            server_header=False,
            date_header=False,
            backlog=2048,
            loop="asyncio",
        )
        ready = threading.Event()
        self._startup_errors.clear()
        self._thread = threading.Thread(
            target=self._run,
            args=(config, sock, ready),
            name=f"aurous-emulator-{self._port}",
            daemon=True,
        )
        self._thread.start()
        ready.wait()
        if self._startup_errors:
            self._thread.join()
            self._thread = None
            raise RuntimeError("the emulator failed to start") from self._startup_errors[0]
        return self

    def stop(self) -> None:
        """Stop serving: in-flight requests get a few seconds, slow faults end at once."""
        thread, loop, event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)
        thread.join()
        self._thread = self._loop = self._stop_event = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Emulator:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def _run(self, config: uvicorn.Config, sock: socket.socket, ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve(config, sock, ready))
        except BaseException as exc:  # reported to start() if it happened before readiness
            if not ready.is_set():
                self._startup_errors.append(exc)
            else:
                logging.getLogger("aurous_embed.testing").exception("emulator server crashed")
        finally:
            sock.close()
            ready.set()

    async def _serve(
        self, config: uvicorn.Config, sock: socket.socket, ready: threading.Event
    ) -> None:
        import uvicorn

        # uvicorn's own serve() polls for shutdown every 0.1 s and sleeps 0.1 s more while
        # stopping; driving startup and shutdown here makes stop() immediate, which matters
        # for a function-scoped fixture used by hundreds of tests.
        if not config.loaded:
            config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        ready.set()
        await self._stop_event.wait()
        from aurous_embed.testing._protocol import STOPPING

        setattr(server.server_state, STOPPING, True)  # connections made from now on close at once
        # A connection accepted in the same loop turn as the stop has its transport made by a task
        # that has not run yet; run after the listener closed, that task fails (asyncio.Server
        # refuses to attach it) and drops the accepted socket unclosed. One turn lets it run.
        await asyncio.sleep(0)
        for listener in server.servers:
            listener.close()
        for connection in list(server.server_state.connections):
            connection.shutdown()  # idle keep-alive connections close now, busy ones after
        self._app.release_slow()
        tasks = [t for t in server.server_state.tasks if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
            for task in pending:
                task.cancel()
        for listener in server.servers:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(listener.wait_closed(), SHUTDOWN_GRACE)

    # --- addresses and keys ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._thread is not None

    @property
    def host(self) -> str:
        """The bound host."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port (known after :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:54321``."""
        host = (
            f"[{self._host}]"
            if ":" in self._host and not self._host.startswith("[")
            else self._host
        )
        return f"http://{host}:{self._port}"

    @property
    def base_url(self) -> str:
        """The API base including ``/v1``, for ``AurousClient`` or ``openai.OpenAI``."""
        return self.url + "/v1"

    @property
    def api_key(self) -> str:
        """The first configured key (a generated ``full`` key by default)."""
        return self._api_key

    @property
    def keys(self) -> dict[str, str]:
        """All keys and their scopes (a copy)."""
        with self._app.cond:
            return dict(self._app.keys)

    def add_key(self, key: str | None = None, scope: str = "full") -> str:
        """Add (or re-scope) a key; return it. A fresh ``al_live_`` key if ``key`` is None."""
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}")
        key = key or new_api_key()
        with self._app.cond:
            self._app.keys[key] = scope
            self._app.revoked.discard(key)
        return key

    def revoke_key(self, key: str) -> None:
        """Revoke a key: it then gets 401 ``revoked_api_key``."""
        with self._app.cond:
            self._app.revoked.add(key)

    # --- observation and control --------------------------------------------------------------
    @property
    def app(self) -> Callable[..., Any]:
        """The ASGI app (e.g. for ``httpx.ASGITransport``, without a socket)."""
        return self._app

    @property
    def clock(self) -> ClockFn:
        """The clock driving windows, buckets and expiry."""
        return self._app.clock

    @property
    def stats(self) -> EmulatorStats:
        """A snapshot of the counters since start or the last :meth:`reset`."""
        return self._app.snapshot()

    @property
    def ledger(self) -> tuple[Charge, ...]:
        """Every charge since start or the last :meth:`reset`, oldest first."""
        return self._app.ledger()

    @property
    def balance(self) -> float:
        """The team's credits (``credits`` of ``GET /v1/balance``); settable."""
        with self._app.cond:
            return self._app.credits

    @balance.setter
    def balance(self, credits: float) -> None:
        with self._app.cond:
            self._app.credits = float(credits)

    def reset(self) -> None:
        """Forget requests, charges, idempotency records, files, buckets, queued faults and the
        balance (back to ``credits``); keep keys and settings. Call it between requests."""
        self._app.reset()

    def queue_faults(self, *specs: str, path: str = "/v1/embeddings") -> None:
        """Queue faults for the next requests to ``path``, one spec per request, in order.

        Specs use the ``Aurous-Emulator-Fault`` syntax, e.g.
        ``emu.queue_faults("status=503", "status=503")`` fails the next two embedding requests
        and lets the third through (handy for testing a client's retries).

        Raises:
            ValueError: If a spec is malformed.
        """
        self._app.injector.queue(specs, path)

    def rate_limit_storm(self, seconds: float, *, retry_after: int = 0) -> None:
        """Answer every ``/v1/embeddings`` and ``/estimate`` request with 429
        ``too_many_requests`` and ``Retry-After: retry_after`` for the next ``seconds`` (on the
        emulator's clock), as a server under a burst of load might, ``Retry-After: 0`` included.

        Example:
            >>> emu.rate_limit_storm(2.0, retry_after=0)  # doctest: +SKIP
        """
        if not seconds >= 0 or retry_after < 0:
            raise ValueError("seconds and retry_after must not be negative")
        self._app.storm(seconds, retry_after)

    def release_slow(self) -> None:
        """End every slow-fault wait now; those requests then commit and answer."""
        self._app.release_slow()

    def wait_until(
        self, predicate: Callable[[EmulatorStats], bool], timeout: float = 10.0
    ) -> EmulatorStats:
        """Block until ``predicate(stats)`` is true (no polling; woken on each change).

        Example:
            >>> emu.wait_until(lambda s: s.slow_in_flight == 1)  # doctest: +SKIP

        Raises:
            TimeoutError: If it does not become true within ``timeout`` seconds.
        """
        return self._app.wait_until(predicate, timeout)

    def __repr__(self) -> str:
        state = self.base_url if self.running else "stopped"
        return f"Emulator({state}, api_key='***')"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it every response (headers and body are two writes) stalls ~40 ms
    # on Nagle + delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock
