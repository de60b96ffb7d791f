"""Budgets at their edges: money held by requests in flight, the estimate's arithmetic, max_credits=0.

The estimate is an upper bound built from the documented rates: text ``ceil(UTF-8 bytes / 4)``
tokens (at least 1) at 18.75 credits per million, every image 1,500 tokens at 48.75 per million.
"""

from __future__ import annotations

import math
import threading

import httpx
import pytest

from aurous_embed import (
    AurousClient,
    BudgetExceededError,
    Image,
    ImageURL,
    InputValidationError,
    Text,
    VideoURL,
)
from aurous_embed._budget import Budget, LocalEstimate, check_max_credits, local_estimate
from tests.unit.conftest import API_KEY, BASE_URL, FakeAPI, FakeClock

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32  # never decoded: the estimate only counts images

TEXT_RATE = 18.75 / 1e6  # credits per text token
IMAGE_CREDITS = 1500 * 48.75 / 1e6  # one image at the top of the documented token range


# --- two requests in flight -------------------------------------------------------------------


def test_money_held_by_a_request_in_flight_counts_against_the_limit() -> None:
    budget = Budget(1.0, scope="call")
    budget.reserve(0.6)  # the first request is in flight
    with pytest.raises(BudgetExceededError) as info:
        budget.reserve(0.6)  # a second one could take spending to 1.2
    assert budget.reserved == 0.6
    assert budget.spent == 0.0
    error = info.value
    assert error.max_credits == 1.0
    assert error.credits_spent == 0.0
    assert error.results == []
    assert str(error) == (
        "call max_credits=1 would be exceeded: 0.000000 spent, 0.600000 held by requests in "
        "flight, and the next input is estimated at up to 0.600000 credits; nothing over budget "
        "was sent"
    )
    budget.reserve(0.4)  # what is left still fits
    assert budget.reserved == 1.0


def test_settling_releases_the_hold_and_records_the_charge() -> None:
    budget = Budget(1.0, scope="client")
    budget.reserve(0.6)
    budget.reserve(0.3)
    budget.settle(0.6, 0.5)  # the first one cost less than its upper bound
    assert budget.reserved == pytest.approx(0.3)
    assert budget.spent == 0.5
    budget.settle(0.3, 0.3)
    assert budget.reserved == pytest.approx(0.0)
    assert budget.spent == pytest.approx(0.8)
    budget.reserve(0.2)  # 0.8 spent + 0.2 = the limit exactly: allowed
    with pytest.raises(BudgetExceededError, match=r"0\.800000 spent, 0\.200000 held"):
        budget.reserve(1e-6)


def test_spent_money_counts_against_the_limit() -> None:
    budget = Budget(1.0, scope="call")
    budget.reserve(0.6)
    budget.settle(0.6, 0.6)
    with pytest.raises(BudgetExceededError):
        budget.reserve(0.6)


def test_the_limit_is_inclusive_and_tolerates_float_rounding() -> None:
    budget = Budget(0.3, scope="call")
    budget.reserve(0.1)
    budget.reserve(0.2)  # 0.1 + 0.2 is 0.30000000000000004 in floats: still within 0.3
    with pytest.raises(BudgetExceededError):
        Budget(1.0, scope="call").reserve(1.0 + 1e-9)
    Budget(1.0, scope="call").reserve(1.0)


def test_no_limit_never_refuses() -> None:
    budget = Budget(None, scope="client")
    budget.reserve(1e12)
    budget.reserve(1e12)
    assert budget.reserved == 2e12


def test_two_threads_cannot_both_take_the_last_credits() -> None:
    budget = Budget(1.0, scope="call")
    barrier = threading.Barrier(8)
    outcomes: list[bool] = []

    def take() -> None:
        barrier.wait()
        try:
            budget.reserve(0.6)
            outcomes.append(True)
        except BudgetExceededError:
            outcomes.append(False)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 7 + [True]
    assert budget.reserved == 0.6


# --- the estimate ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("a", 1),
        ("abcd", 1),  # 4 bytes
        ("abcde", 2),  # 5 bytes: rounded up
        ("abcdefgh", 2),
        ("é", 1),  # 2 bytes
        ("ééé", 2),  # 6 bytes, not 3 characters
        ("日本語", 3),  # 9 bytes
        ("x" * 4000, 1000),
    ],
)
def test_text_tokens_are_utf8_bytes_over_four_rounded_up(text: str, tokens: int) -> None:
    estimate = local_estimate(text)
    assert estimate == LocalEstimate(tokens, tokens * TEXT_RATE)
    # The same text as a part costs the same.
    assert local_estimate((Text(text),)) == estimate


def test_an_empty_text_part_still_counts_one_token() -> None:
    assert local_estimate("").tokens == 1
    assert local_estimate((Text(""),)).tokens == 1


def test_images_count_1500_tokens_each_at_the_visual_rate() -> None:
    value = (Text("abcdefgh"), Image(PNG), ImageURL("https://example.com/a.png"))
    estimate = local_estimate(value)
    assert estimate.tokens == 2 + 3000
    assert estimate.credits == pytest.approx(2 * TEXT_RATE + 2 * IMAGE_CREDITS, rel=1e-12)
    assert local_estimate((Image(PNG),)) == LocalEstimate(1500, 1500 * 48.75 / 1e6)
    # A video part is not an image (the API refuses video): no visual tokens.
    assert local_estimate((Text("abcd"), VideoURL("https://example.com/v.mp4"))).tokens == 1


@pytest.mark.parametrize(
    "value",
    [
        "a",
        "x" * 10_000,
        (Image(PNG),),
        (Image(PNG),) * 8,
        (ImageURL("https://example.com/a.png"), Text("t")),
        (Text("a"), Text("b")),
    ],
)
def test_the_estimate_is_never_negative_nor_zero(value: object) -> None:
    estimate = local_estimate(value)  # type: ignore[arg-type]
    assert estimate.tokens >= 1
    assert estimate.credits > 0
    assert math.isfinite(estimate.credits)


# --- max_credits values -----------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [(None, None), (0, 0.0), (2, 2.0), (0.5, 0.5)])
def test_max_credits_accepted(value: object, expected: float | None) -> None:
    result = check_max_credits(value)
    assert result == expected
    assert result is None or type(result) is float


@pytest.mark.parametrize("value", [-1, -0.001, float("nan"), True, False, "10", [1]])
def test_max_credits_refused(value: object) -> None:
    with pytest.raises(InputValidationError) as info:
        check_max_credits(value)
    assert info.value.param == "max_credits"
    assert str(info.value).startswith("max_credits: max_credits must be a number >= 0, got ")
    with pytest.raises(InputValidationError) as info:
        check_max_credits(value, param="budget")
    assert info.value.param == "budget"


def test_max_credits_zero_sends_nothing_but_still_answers_from_the_cache(
    api: FakeAPI, clock: FakeClock
) -> None:
    """``max_credits=0`` is a budget of nothing, not "no budget": every input that needs a request
    is refused before it is sent, while cache hits (which cost nothing) are still answered."""
    cache: dict[str, list[float]] = {}

    class DictCache:
        def get(self, key: str) -> list[float] | None:
            return cache.get(key)

        def put(self, key: str, embedding: list[float]) -> None:
            cache[key] = list(embedding)

    with AurousClient(
        API_KEY,
        base_url=BASE_URL,
        clock=clock,
        cache=DictCache(),
        http_client=httpx.Client(transport=httpx.MockTransport(api)),
    ) as client:
        first = client.embed("already paid for")
        assert len(api.requests) == 1
        again = client.embed("already paid for", max_credits=0)
        assert again.embedding == first.embedding
        with pytest.raises(BudgetExceededError) as info:
            client.embed("new text", max_credits=0)
        assert info.value.max_credits == 0.0
        assert len(api.requests) == 1  # nothing was sent
