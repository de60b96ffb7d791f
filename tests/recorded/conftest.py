"""Recorded HTTP (vcrpy via pytest-recording): replayed offline in CI, re-recordable with one command.

Replay (CI, the default): ``python -m pytest tests/recorded`` (record mode ``none``: no server, no
network; a request missing from its cassette fails the test).

Re-record against the local emulator (how the committed cassettes were made)::

    python -m pytest tests/recorded --record-mode=rewrite

Re-record against the live API with a real key::

    AUROUS_RECORD_LIVE=1 AUROUS_API_KEY=al_live_... python -m pytest tests/recorded --record-mode=rewrite

Cassettes live in top-level ``cassettes/<test module>/<test name>.yaml``. Requests match on method,
path and JSON body; ``X-Api-Key``, ``Authorization`` and ``Idempotency-Key`` are scrubbed; volatile
response headers (dates, rate-limit counters) are dropped. ``test_cassettes.py`` scans them all.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = ROOT / "cassettes"
RECORD_LIVE = os.environ.get("AUROUS_RECORD_LIVE") == "1"
REDACTED = "REDACTED"
SCRUBBED_REQUEST_HEADERS = ("x-api-key", "authorization", "idempotency-key")
# Response headers that change on every call and mean nothing on replay. Dropping the rate-limit
# counters also keeps the client's pacer out of replays.
VOLATILE_RESPONSE_HEADERS = frozenset(
    {
        "date",
        "server",
        "set-cookie",
        "retry-after",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-tpm-limit",
        "x-ratelimit-tpm-remaining",
        "x-ratelimit-tpm-reset",
    }
)
#: A replay key: never sent anywhere (the cassette answers), shaped so secret scans would flag it.
REPLAY_KEY = "replay-key-not-a-secret"
#: Recording against the emulator uses short vectors so cassettes stay small; the live API decides.
EMULATOR_DIMENSION = 64


def _pixels(b64: str) -> object:
    """An inline image by what it shows: PNG bytes differ between Pillow/zlib builds."""
    try:
        from PIL import Image as PILImage

        image = PILImage.open(io.BytesIO(base64.b64decode(b64)))
        return ("pixels", image.mode, image.size, hashlib.sha256(image.tobytes()).hexdigest())
    except Exception:
        return b64


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _pixels(v) if k == "b64_json" and isinstance(v, str) else _canonical(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def json_body(r1: Any, r2: Any) -> None:
    """vcrpy matcher: equal JSON bodies (key order, whitespace and image encoding do not matter)."""

    def parse(body: Any) -> Any:
        if body is None or body == b"":
            return None
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        try:
            return _canonical(json.loads(text))
        except ValueError:
            return text

    assert parse(r1.body) == parse(r2.body)


def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    vcr.register_matcher("json_body", json_body)


# --- a recording replaces a committed cassette only when the test passed ---------------------------

_BACKUP = pytest.StashKey[tuple[Path, "bytes | None"]]()
_PASSED = pytest.StashKey[bool]()


def _cassette_path(item: pytest.Item) -> Path | None:
    if item.get_closest_marker("vcr") is None:
        return None
    if item.config.getoption("--record-mode", default="none") == "none":
        return None  # replaying: nothing is written
    from pytest_recording.plugin import get_default_cassette_name  # type: ignore[import-untyped]

    name = get_default_cassette_name(getattr(item, "cls", None), item.name)
    return CASSETTES / item.module.__name__.rsplit(".", 1)[-1] / f"{name}.yaml"  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    path = _cassette_path(item)
    if path is not None:  # before pytest-recording opens (and, rewriting, empties) it
        item.stash[_BACKUP] = (path, path.read_bytes() if path.exists() else None)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_PASSED] = report.passed


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield  # every fixture is torn down: the recording is written
    backup = item.stash.get(_BACKUP, None)
    if backup is not None and not item.stash.get(_PASSED, False):
        path, old = backup
        if old is not None:  # a failed recording never replaces (or deletes) the committed one
            path.write_bytes(old)


def _only_api_requests(request: Any) -> Any:
    # Other HTTP in a test (a Chroma server on loopback, say) is not the Aurous API: never recorded.
    return request if "/v1/" in request.path else None


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    response["headers"] = {
        name: value
        for name, value in response["headers"].items()
        if name.lower() not in VOLATILE_RESPONSE_HEADERS
    }
    return response


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    return str(CASSETTES / request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture
def vcr_config() -> dict[str, Any]:
    return {
        "match_on": ["method", "path", "json_body"],
        "filter_headers": [(name, REDACTED) for name in SCRUBBED_REQUEST_HEADERS],
        "before_record_request": _only_api_requests,
        "before_record_response": _scrub_response,
        "decode_compressed_response": True,
        "allow_playback_repeats": False,
    }


@dataclass(frozen=True)
class Target:
    """Where recorded tests send requests: the emulator or the live API when recording, nowhere
    real on replay (the cassette answers). Its repr never shows the key (a failing live run
    prints the test's arguments)."""

    base_url: str
    api_key: str = field(repr=False)

    def env(self) -> dict[str, str]:
        return {"AUROUS_BASE_URL": self.base_url, "AUROUS_API_KEY": self.api_key}


@pytest.fixture
def aurous_target(
    record_mode: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Target]:
    """The API for this test; also exported as AUROUS_BASE_URL / AUROUS_API_KEY for adapters."""
    if record_mode == "none":
        target = Target("http://127.0.0.1:9/v1", REPLAY_KEY)  # port 9: nothing listens
        for name, value in target.env().items():
            monkeypatch.setenv(name, value)
        yield target
    elif RECORD_LIVE:
        key = os.environ.get("AUROUS_API_KEY")
        if not key:
            pytest.fail("AUROUS_RECORD_LIVE=1 needs AUROUS_API_KEY")
        yield Target(os.environ.get("AUROUS_BASE_URL", "https://api.aurous-labs.com/v1"), key)
    else:
        make = request.getfixturevalue("aurous_emulator_factory")  # stopped after the test
        emu = make(native_dimension=EMULATOR_DIMENSION, rpm=100_000, rpm_burst=10_000)
        target = Target(emu.base_url, emu.api_key)
        for name, value in target.env().items():
            monkeypatch.setenv(name, value)
        yield target
