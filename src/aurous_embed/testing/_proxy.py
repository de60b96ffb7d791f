"""``CuttingProxy``: a loopback HTTP/1.1 proxy that cuts successful answers short.

The emulator's ``reset`` fault closes the connection with a ``Content-Length`` announced, which
every HTTP client reports as a broken connection. A broken proxy or load balancer can do worse:
send a success with no ``Content-Length`` and close the connection half way through the body.
HTTP/1.1 then reads "until the connection closes", so the client sees a complete-looking 200
whose body is simply short. The emulator cannot answer that way itself (its server frames every
answer), so this proxy sits in front of it (or any plain-http server) and does it on purpose.

Stdlib only (threads and blocking sockets): ``aurous_embed.testing`` imports it without extras.

Example:
    >>> with Emulator() as emu, CuttingProxy(emu.base_url, cut_rate=0.5, seed=1) as proxy:  # doctest: +SKIP
    ...     client = AurousClient(emu.api_key, base_url=proxy.base_url)
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from urllib.parse import urlsplit

_MAX_HEADERS = 64 * 1024


class CuttingProxy:
    """Forwards HTTP/1.1 requests to ``upstream`` and cuts a share of its 2xx answers short.

    A cut answer is the upstream's status line and headers without ``Content-Length`` (and with
    ``Connection: close``), then the first half of the body, then the connection closes. The
    upstream handled the request in full (the emulator charged it and stored it for idempotency).

    Args:
        upstream: a plain-http base URL on loopback, e.g. an emulator's ``base_url``.
        cut_rate: probability that a 2xx answer is cut, in ``[0, 1]``.
        seed: seed of the draws (reproducible for one connection's request order).

    Attributes:
        base_url: the proxy's base URL (the upstream's path on the proxy's port).
        cuts: how many answers were cut so far.
        answers: how many answers went through (cut or not).
    """

    def __init__(self, upstream: str, *, cut_rate: float = 0.0, seed: int | None = None) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("CuttingProxy needs a plain-http upstream URL")
        if not 0.0 <= cut_rate <= 1.0:
            raise ValueError(f"cut_rate must be within [0, 1], got {cut_rate!r}")
        self._upstream = (parts.hostname, parts.port or 80)
        self._path = parts.path.rstrip("/")
        self.cut_rate = cut_rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._queued = 0
        self.cuts = 0
        self.answers = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self._closing = False
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        port = self._server.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}{self._path}"
        self._accepter = threading.Thread(target=self._accept, name="cutting-proxy", daemon=True)
        self._accepter.start()

    def cut_next(self, count: int = 1) -> None:
        """Cut the next ``count`` 2xx answers, whatever ``cut_rate`` draws."""
        with self._lock:
            self._queued += count

    def _should_cut(self, status: int) -> bool:
        with self._lock:
            self.answers += 1
            if not 200 <= status < 300:
                return False
            if self._queued > 0:
                self._queued -= 1
                cut = True
            else:
                cut = self._rng.random() < self.cut_rate
            self.cuts += cut
            return cut

    def _accept(self) -> None:
        while not self._closing:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self._sockets.add(conn)
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        upstream: socket.socket | None = None
        client, server = _Reader(conn), None
        try:
            while True:
                request = client.message(request=True)
                if request is None:
                    return
                if upstream is None:
                    upstream = socket.create_connection(self._upstream)
                    with self._lock:
                        self._sockets.add(upstream)
                    server = _Reader(upstream)
                upstream.sendall(request[0] + request[1])
                assert server is not None
                answer = server.message(request=False)
                if answer is None:
                    return
                head, body = answer
                status = int(head.split(b" ", 2)[1])
                if self._should_cut(status):
                    lines = [
                        line
                        for line in head.split(b"\r\n")
                        if not line.lower().startswith((b"content-length:", b"connection:"))
                    ]
                    lines = [line for line in lines if line]
                    conn.sendall(b"\r\n".join([*lines, b"connection: close"]) + b"\r\n\r\n")
                    conn.sendall(body[: len(body) // 2])
                    return
                conn.sendall(head + body)
        except OSError:
            return
        finally:
            for sock in (conn, upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()
                    with self._lock:
                        self._sockets.discard(sock)

    def close(self) -> None:
        """Stop accepting and drop every connection."""
        self._closing = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close does not)
        with contextlib.suppress(OSError):
            self._server.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._accepter.join()
        for thread in threads:
            thread.join()

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CuttingProxy({self.base_url}, cut_rate={self.cut_rate}, cuts={self.cuts})"


class _Reader:
    """Reads whole HTTP/1.1 messages with a ``Content-Length`` (or none) from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def _fill(self) -> bool:
        chunk = self._sock.recv(65536)
        self._buffer += chunk
        return bool(chunk)

    def message(self, *, request: bool) -> tuple[bytes, bytes] | None:
        """``(head including the blank line, body)``, or ``None`` when the peer closed."""
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > _MAX_HEADERS or not self._fill():
                return None
        end = self._buffer.index(b"\r\n\r\n") + 4
        head, self._buffer = self._buffer[:end], self._buffer[end:]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
            elif name.strip().lower() == b"transfer-encoding" and not request:
                raise OSError("CuttingProxy does not forward chunked answers")
        while len(self._buffer) < length:
            if not self._fill():
                return None
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return head, body
