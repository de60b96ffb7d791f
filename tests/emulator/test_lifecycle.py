"""Starting and stopping, ``async with``, stats, reset, keys, the ASGI app, the missing extra."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

import aurous_embed.testing as testing
from aurous_embed.testing import Clock, Emulator
from aurous_embed.testing._emulator import is_loopback, parse_key_spec
from tests.emulator.helpers import MakeEmulator, body, connect, error_of, image_bytes


def test_public_surface() -> None:
    assert testing.__all__ == sorted(testing.__all__)
    for name in testing.__all__:
        assert getattr(testing, name) is not None
    with pytest.raises(AttributeError):
        _ = testing.NotAThing  # type: ignore[attr-defined]


def test_base_url_and_repr(emu: Emulator) -> None:
    assert emu.base_url == f"http://127.0.0.1:{emu.port}/v1"
    assert emu.url + "/v1" == emu.base_url
    assert emu.port > 0
    assert emu.running
    assert emu.api_key not in repr(emu)
    assert "***" in repr(emu)


def test_stats_count_everything(emu: Emulator, client: httpx.Client) -> None:
    client.post("/embeddings", json=body("a"), headers={"Idempotency-Key": "k"})
    client.post("/embeddings", json=body("a"), headers={"Idempotency-Key": "k"})
    client.post("/embeddings", json=body(["a"]))
    client.get("/models")
    stats = emu.stats
    assert stats.requests == 4
    assert stats.by_status == {200: 3, 400: 1}
    assert stats.by_code == {"embeddings_batch_not_supported": 1}
    assert stats.by_route == {"POST /v1/embeddings": 3, "GET /v1/models": 1}
    assert (stats.charges, stats.replays, stats.tokens_charged) == (1, 1, 1)
    assert stats.credits_charged == emu.ledger[0].credits
    assert stats.charges_by_idempotency_key == {"k": 1}
    assert stats.max_concurrency >= 1


def test_reset_clears_state_but_keeps_keys_and_settings(
    make_emulator: MakeEmulator, clock: Clock
) -> None:
    emu = make_emulator(rpm_burst=1, credits=5.0, keys=["k-one", "k-two:read"])
    with connect(emu) as http:
        http.post("/embeddings", json=body("a"), headers={"Idempotency-Key": "k"})
        file_id = http.post(
            "/files",
            files={"file": ("a.png", image_bytes(), "image/png")},
            data={"purpose": "reference"},
        ).json()["id"]
        error_of(http.post("/embeddings", json=body("b")), 429, "too_many_requests")
        emu.reset()
        stats = emu.stats
        assert (stats.requests, stats.charges, emu.ledger, emu.balance) == (0, 0, (), 5.0)
        again = http.post("/embeddings", json=body("a"), headers={"Idempotency-Key": "k"})
        assert again.status_code == 200  # a fresh bucket, and the key is new again
        assert "aurous-idempotent-replayed" not in again.headers
        error_of(http.get(f"/files/{file_id}"), 404, "resource_not_found")
    assert emu.keys == {"k-one": "full", "k-two": "read"}


async def test_async_with() -> None:
    async with Emulator() as emu, httpx.AsyncClient(base_url=emu.base_url) as http:
        response = await http.post(
            "/embeddings", json=body("hi"), headers={"X-Api-Key": emu.api_key}
        )
        assert response.status_code == 200
    assert not emu.running


async def test_the_asgi_app_works_without_a_socket() -> None:
    emu = Emulator(clock=Clock())
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator/v1") as http:
        response = await http.post(
            "/embeddings", json=body("hi"), headers={"X-Api-Key": emu.api_key}
        )
    assert response.status_code == 200
    assert emu.stats.charges == 1


def test_restart_keeps_state(make_emulator: MakeEmulator) -> None:
    emu = make_emulator()
    with connect(emu) as http:
        http.post("/embeddings", json=body("hi"))
    emu.stop()
    emu.stop()  # idempotent
    emu.start()
    with connect(emu) as http:
        assert http.get("/balance").json()["credits"] < 1000
    with pytest.raises(RuntimeError, match="already running"):
        emu.start()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_refuses_non_loopback_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="allow_remote"):
        Emulator(host=host)


def test_allow_remote_binds_any_interface() -> None:
    with Emulator(host="0.0.0.0", allow_remote=True) as emu, connect(emu) as http:
        assert http.get("/models").status_code == 200


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("10.0.0.1", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_localhost_name_works() -> None:
    with Emulator(host="localhost") as emu, connect(emu) as http:
        assert emu.base_url.startswith("http://localhost:")
        assert http.get("/models").status_code == 200


def test_key_specs_and_management(make_emulator: MakeEmulator) -> None:
    assert parse_key_spec("al_live_abc:read") == ("al_live_abc", "read")
    assert parse_key_spec("al_live_abc") == ("al_live_abc", "full")
    assert parse_key_spec("odd:thing") == ("odd:thing", "full")
    emu = make_emulator(keys={"first": "write"})
    added = emu.add_key(scope="read")
    assert added.startswith("al_live_")
    assert emu.keys == {"first": "write", added: "read"}
    with connect(emu, added) as http:
        assert http.get("/models").status_code == 200
        error_of(http.post("/embeddings", json=body("hi")), 403, "missing_scope")
    with pytest.raises(ValueError, match="scope"):
        emu.add_key("x", scope="admin")
    with pytest.raises(ValueError, match="scope"):
        Emulator(keys={"k": "owner"})
    with pytest.raises(ValueError, match="at least one"):
        Emulator(keys=[])


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="latency"):
        Emulator(latency=-1)
    with pytest.raises(ValueError, match="api_version"):
        Emulator(api_version="v2")
    with pytest.raises(ValueError, match="dimension"):
        Emulator(native_dimension=2)


def test_clear_error_without_the_extra() -> None:
    code = (
        "import sys; sys.modules['starlette'] = None\n"
        "import aurous_embed.testing as t\n"
        "try:\n"
        "    from aurous_embed.testing import Emulator\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert 'pip install "aurous-embed[emulator]"' in result.stdout
    assert "starlette" in result.stdout


def test_fast_clock_fast_forwards_waits_for_client_and_emulator() -> None:
    import asyncio

    from aurous_embed.testing import FastClock

    clock = FastClock(speed=10_000)
    start, epoch = clock.monotonic(), clock()
    clock.sleep(20.0)  # 2 ms of real time
    asyncio.run(clock.asleep(30.0))
    assert clock.slept == 50.0
    assert clock.monotonic() - start >= 50.0
    assert clock() - epoch >= 50.0  # the emulator's epoch clock moves with it
    assert clock.time() == pytest.approx(clock(), abs=5.0)
    with pytest.raises(ValueError, match="positive"):
        FastClock(speed=0)
