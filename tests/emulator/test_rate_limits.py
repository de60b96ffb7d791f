"""RPM and TPM buckets on the injected clock: headers, 429s, Retry-After, refill."""

from __future__ import annotations

import math

from aurous_embed.testing import Clock
from aurous_embed.testing._ratelimit import TokenBucket
from tests.emulator.helpers import MakeEmulator, body, connect, error_of, image_bytes


def test_headers_follow_the_buckets(make_emulator: MakeEmulator, clock: Clock) -> None:
    emu = make_emulator()  # 600/min, burst 120; 1,000,000 tokens/min
    now = clock()
    with connect(emu) as http:
        first = http.post("/embeddings", json=body("x" * 400))  # 100 tokens
        second = http.post("/embeddings", json=body("x" * 400))
    assert first.headers["x-ratelimit-limit"] == "120"
    assert first.headers["x-ratelimit-remaining"] == "119"
    assert second.headers["x-ratelimit-remaining"] == "118"
    # full again after 2 requests at 10/s: 0.2 s, rounded up to whole epoch seconds
    assert second.headers["x-ratelimit-reset"] == str(math.ceil(now + 0.2))
    assert first.headers["x-ratelimit-tpm-limit"] == "1000000"
    assert first.headers["x-ratelimit-tpm-remaining"] == "999900"
    assert second.headers["x-ratelimit-tpm-remaining"] == "999800"
    assert second.headers["x-ratelimit-tpm-reset"] == str(math.ceil(now + 200 / (1_000_000 / 60)))


def test_rpm_bucket_empties_into_429_and_refills(make_emulator: MakeEmulator, clock: Clock) -> None:
    emu = make_emulator(rpm=60, rpm_burst=3)
    with connect(emu) as http:
        for _ in range(3):
            assert http.post("/embeddings", json=body("hi")).status_code == 200
        limited = http.post("/embeddings", json=body("hi"))
        error = error_of(limited, 429, "too_many_requests")
        assert error["type"] == "rate_limit"
        assert limited.headers["retry-after"] == "1"  # 1 token at 1/s
        assert limited.headers["x-ratelimit-remaining"] == "0"
        assert limited.headers["x-ratelimit-limit"] == "3"
        # the estimate endpoint shares the embeddings request bucket
        error_of(http.post("/embeddings/estimate", json=body("hi")), 429, "too_many_requests")
        # GETs have their own class
        models = http.get("/models")
        assert models.status_code == 200
        assert models.headers["x-ratelimit-limit"] == "1200"
        clock.advance(1)
        assert http.post("/embeddings", json=body("hi")).status_code == 200
    assert emu.stats.charges == 4


def test_tpm_bucket_gives_tpm_rate_limit_exceeded(
    make_emulator: MakeEmulator, clock: Clock
) -> None:
    emu = make_emulator(tpm=600)  # 10 tokens/s
    key = {"Idempotency-Key": "k"}
    with connect(emu) as http:
        assert http.post("/embeddings", json=body("x" * 1600)).status_code == 200  # 400 tokens
        limited = http.post("/embeddings", json=body("y" * 1600), headers=key)
        error = error_of(limited, 429, "tpm_rate_limit_exceeded")
        assert error["type"] == "rate_limit"
        assert limited.headers["retry-after"] == "20"  # 200 missing tokens at 10/s
        assert limited.headers["x-ratelimit-tpm-remaining"] == "200"
        assert emu.stats.charges == 1
        clock.advance(20)
        retried = http.post("/embeddings", json=body("y" * 1600), headers=key)
        assert retried.status_code == 200  # the 429 was not stored for idempotency
        assert "aurous-idempotent-replayed" not in retried.headers
        # the estimate endpoint takes no TPM tokens
        assert http.post("/embeddings/estimate", json=body("z" * 4000)).status_code == 200


def test_replays_count_against_rpm_but_not_tpm(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(rpm=60, rpm_burst=2)
    key = {"Idempotency-Key": "k"}
    with connect(emu) as http:
        first = http.post("/embeddings", json=body("x" * 40), headers=key)
        replay = http.post("/embeddings", json=body("x" * 40), headers=key)
        assert replay.headers["aurous-idempotent-replayed"] == "true"
        assert replay.headers["x-ratelimit-remaining"] == "0"
        assert (
            replay.headers["x-ratelimit-tpm-remaining"]
            == first.headers["x-ratelimit-tpm-remaining"]
        )
        error_of(
            http.post("/embeddings", json=body("x" * 40), headers=key), 429, "too_many_requests"
        )


def test_files_have_the_documented_class(make_emulator: MakeEmulator) -> None:
    emu = make_emulator()
    files = {"file": ("a.png", image_bytes(), "image/png")}
    with connect(emu) as http:
        response = http.post("/files", files=files, data={"purpose": "reference"})
    assert response.headers["x-ratelimit-limit"] == "60"
    assert response.headers["x-ratelimit-remaining"] == "59"


def test_unauthenticated_requests_take_no_tokens(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(rpm_burst=1)
    with connect(emu, None) as anon, connect(emu) as http:
        for _ in range(3):
            response = anon.post("/embeddings", json=body("hi"))
            assert response.status_code == 401
            assert response.headers["x-ratelimit-remaining"] == "1"
        assert http.post("/embeddings", json=body("hi")).status_code == 200


def test_bucket_math() -> None:
    bucket = TokenBucket(capacity=10, per_minute=60, now=0.0)
    assert bucket.take(10, 0.0)
    assert not bucket.take(1, 0.0)
    assert bucket.retry_after(1, 0.0) == 1
    assert bucket.retry_after(5, 0.5) == 5  # 0.5 refilled, 4.5 missing at 1/s
    assert bucket.reset_at(0.5) == 10
    assert bucket.remaining(100.0) == 10
    assert bucket.retry_after(50, 100.0) == 1  # over capacity: never more than "until full"
    assert bucket.take(1, 50.0)  # a clock jumping back does not drain the bucket
    assert bucket.remaining(50.0) == 9
