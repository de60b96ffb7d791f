"""The key never crosses a plain-http proxy: a loopback http base URL goes direct, whatever the
environment's proxy variables say."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from aurous_embed import AsyncAurousClient, AurousClient
from aurous_embed.testing import Emulator

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])


class ListeningProxy:
    """A loopback port that records what reaches it (and answers nothing useful)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.received = b""
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    self.received += conn.recv(65536)

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self.thread.join()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ListeningProxy]:
    listener = ListeningProxy()
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, listener.url)
    yield listener
    listener.close()


def test_a_plain_http_loopback_base_url_never_goes_through_a_proxy(
    proxy: ListeningProxy,
) -> None:
    with Emulator() as emu, AurousClient(emu.api_key, base_url=emu.base_url) as client:
        client.embed("hello")
        key = emu.api_key
    # Measured before: the proxy received the request, X-Api-Key in the clear.
    assert proxy.received == b""
    assert key.encode() not in proxy.received


async def test_the_async_client_does_not_either(proxy: ListeningProxy, http_backend: str) -> None:
    with Emulator() as emu:
        async with AsyncAurousClient(
            emu.api_key,
            base_url=emu.base_url,
            http_backend=http_backend,  # type: ignore[arg-type]
        ) as client:
            await client.embed("hello")
    assert proxy.received == b""
