"""The emulator as a server: every read bounded in size and time, refusals in the envelope, and a
client that hangs up is not an emulator bug. Raw sockets, so the client can misbehave."""

from __future__ import annotations

import json
import logging
import select
import socket

import pytest

from aurous_embed.testing import Emulator, _endpoints, _protocol
from tests.emulator.helpers import ENVELOPE_KEYS, REQUEST_ID, body

#: A hang guard only: every answer here comes within a second of the bound that triggers it.
DEADLINE = 30.0


@pytest.fixture
def emu(aurous_emulator: Emulator) -> Emulator:
    return aurous_emulator


def raw(emu: Emulator) -> socket.socket:
    host, port = emu.base_url.split("//")[1].split("/")[0].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=DEADLINE)
    return sock


def answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one whole answer (the server closes or sends Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without an answer: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


def envelope(status: int, expected: int, content: bytes, code: str) -> dict[str, str]:
    assert status == expected, content
    error = json.loads(content)["error"]
    assert set(error) == ENVELOPE_KEYS
    assert error["code"] == code and REQUEST_ID.match(error["request_id"])
    return error


def post_head(emu: Emulator, path: str = "/v1/embeddings", **headers: str) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: emulator",
        f"X-Api-Key: {emu.api_key}",
        "Content-Type: application/json",
        *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_chunked_body_over_the_limit_is_refused_without_reading_it_all(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_endpoints, "MAX_BODY_BYTES", 1024 * 1024)
    with raw(emu) as sock:
        sock.sendall(post_head(emu, Transfer_Encoding="chunked"))
        chunk = b"x" * 65536
        sent = 0
        # Measured before: a chunked body was read whole (600 MB read, 1.7 GB peak). Send until
        # the answer comes: it must come long before the body ends.
        while not select.select([sock], [], [], 0)[0]:
            assert sent < 64 * 1024 * 1024, "no answer: the body is being read whole"
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        status, _headers, content = answer(sock)
    envelope(status, 413, content, "request_too_large")
    assert sent < 8 * 1024 * 1024


def test_a_body_trickled_slowly_is_cut_off(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_endpoints, "BODY_TIMEOUT", 0.3)
    with raw(emu) as sock:
        sock.sendall(post_head(emu, Content_Length="1000") + b'{"model":')  # and nothing more
        status, _, content = answer(sock)
    envelope(status, 408, content, "request_timeout")


def test_headers_trickled_slowly_are_cut_off(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_protocol.EnvelopeHttpToolsProtocol, "header_timeout", 0.3)
    with raw(emu) as sock:
        sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: emulator\r\n")  # never finished
        status, headers, content = answer(sock)
        assert headers["connection"] == "close"
        assert sock.recv(1) == b""  # and the connection is closed
    envelope(status, 408, content, "request_timeout")
    with raw(emu) as idle:  # a connection that never sends a byte
        status, _, content = answer(idle)
    envelope(status, 408, content, "request_timeout")


def test_a_kept_alive_connection_gets_a_fresh_header_deadline(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_protocol.EnvelopeHttpToolsProtocol, "header_timeout", 0.5)
    payload = json.dumps(body("hello")).encode()
    with raw(emu) as sock:
        for _ in range(3):
            sock.sendall(post_head(emu, Content_Length=str(len(payload))) + payload)
            status, _, _ = answer(sock)
            assert status == 200


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /v1/embeddings HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"POST /v1/embeddings HTTP/1.1\r\nBad Header Line\r\n\r\n",
    ],
)
def test_protocol_errors_carry_the_envelope(emu: Emulator, request_bytes: bytes) -> None:
    with raw(emu) as sock:
        sock.sendall(request_bytes)
        status, headers, content = answer(sock)
    envelope(status, 400, content, "malformed_request")
    assert headers["content-type"] == "application/json"


def test_a_client_that_hangs_up_mid_body_is_not_an_emulator_bug(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aurous_embed.testing")
    with raw(emu) as sock:
        sock.sendall(post_head(emu, Content_Length="100000") + b'{"model": "aurous-emb')
    emu.wait_until(lambda s: s.max_concurrency == 1 and s.in_flight == 0, timeout=DEADLINE)
    messages = [r.getMessage() for r in caplog.records]
    assert not any(
        "bug" in m.lower() or r.levelno >= logging.ERROR
        for m, r in zip(messages, caplog.records, strict=True)
    )
    assert any("disconnected" in m for m in messages)
