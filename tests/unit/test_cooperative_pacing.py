"""Cooperative pacing: workers on one key share the server's buckets through its headers alone.

Everything here runs on an injected clock: the pacers see synthetic header sequences, or the
answers of a simulated server bucket stepped in time (no sleeping, no timing).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import pytest

from aurous_embed._config import MAX_RETRY_AFTER
from aurous_embed._pacing import PROBE_REQUESTS, PROBE_TIMEOUT, SHARE_JOIN, SHARE_MIN, Pacer, Ticket

EPOCH = 1_800_000_000.0  # wall-clock epoch at monotonic 0


def headers(
    limit: float, remaining: float, reset_in: float, *, now: float = 0.0, tpm: bool = False
) -> dict[str, str]:
    """The rate-limit headers of an answer at monotonic ``now``: whole tokens, reset in whole
    epoch seconds."""
    prefix = "x-ratelimit-tpm-" if tpm else "x-ratelimit-"
    return {
        prefix + "limit": str(int(limit)),
        prefix + "remaining": str(int(remaining)),
        prefix + "reset": str(math.ceil(EPOCH + now + reset_in)),
    }


# --- the server, simulated -------------------------------------------------------------------------


@dataclass
class Bucket:
    """The emulator's token bucket: whole tokens in the headers, reset in whole epoch seconds."""

    capacity: float
    rate: float  # per second
    level: float = -1.0
    at: float = 0.0

    def __post_init__(self) -> None:
        self.level = self.capacity

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + self.rate * (now - self.at))
        self.at = now

    def take(self, cost: float, now: float) -> bool:
        self.refill(now)
        if self.level >= cost:
            self.level -= cost
            return True
        return False

    def headers(self, now: float, *, tpm: bool = False) -> dict[str, str]:
        self.refill(now)
        reset_in = (self.capacity - self.level) / self.rate
        return headers(self.capacity, self.level, reset_in, now=now, tpm=tpm)


@dataclass
class Worker:
    """One process: its own pacer, ``concurrency`` requests in flight at most, endless demand."""

    pacer: Pacer
    concurrency: int = 8
    tokens: float = 0.0  # TPM cost of each request
    start: float = 0.0
    stop: float = math.inf
    in_flight: list[tuple[float, Ticket, int]] = field(
        default_factory=list
    )  # (due, ticket, status)
    sent: list[tuple[float, int]] = field(default_factory=list)  # (when, status)

    def accepted(self, lo: float, hi: float) -> int:
        return sum(1 for t, status in self.sent if lo <= t < hi and status == 200)


def simulate(
    workers: list[Worker],
    rpm: Bucket,
    until: float,
    *,
    tpm: Bucket | None = None,
    latency: float = 0.1,
    step: float = 0.01,
    foreign: float = 0.0,
) -> None:
    """Step every worker and the server bucket(s) in time; headers are computed when the answer
    leaves (as the emulator does), the tokens taken when the request arrives. ``foreign``: requests
    per second someone else sends on the same key, paced or not."""
    owed = 0.0
    order = random.Random(7)  # who comes first within a step: shuffled, but the same every run
    for tick in range(round(until / step)):
        now = tick * step
        owed += foreign * step
        while owed >= 1:
            owed -= 1
            rpm.take(1, now)
        for worker in order.sample(workers, len(workers)):
            for item in [i for i in worker.in_flight if i[0] <= now]:
                worker.in_flight.remove(item)
                _, ticket, status = item
                answer = rpm.headers(now)
                if tpm is not None:
                    answer |= tpm.headers(now, tpm=True)
                if status == 429:
                    answer["retry-after"] = "1"
                worker.pacer.observe(status, answer, ticket, now, EPOCH + now)
            if not worker.start <= now < worker.stop:
                continue
            while len(worker.in_flight) < worker.concurrency:
                _, ticket = worker.pacer.reserve(worker.tokens, now)
                if ticket is None:
                    break
                ok = rpm.take(1, now) and (tpm is None or tpm.take(worker.tokens, now))
                status = 200 if ok else 429
                worker.in_flight.append((now + latency, ticket, status))
                worker.sent.append((now, status))


def rate_limited_share(workers: list[Worker]) -> float:
    sent = [status for w in workers for _, status in w.sent]
    return sum(status == 429 for status in sent) / len(sent)


# --- inference from synthetic header sequences ------------------------------------------------------


def test_a_lone_worker_keeps_the_whole_bucket() -> None:
    pacer = Pacer(probe=0)
    rpm = Bucket(120, 20)
    worker = Worker(pacer, concurrency=32)
    simulate([worker], rpm, 30.0)
    assert pacer.shares == (1.0, 1.0)
    # the burst, then the refill rate
    assert worker.accepted(10, 30) == pytest.approx(20 * 20, rel=0.1)
    assert rate_limited_share([worker]) < 0.01


def test_remaining_falling_faster_than_its_own_draws_shows_the_others_share() -> None:
    """Someone else draws 15 of the 20 requests a second the bucket refills: the pacer sees the
    bucket drain faster than its own draws explain, and keeps to the quarter left."""
    pacer = Pacer()
    rpm = Bucket(120, 20)
    worker = Worker(pacer, concurrency=32)
    simulate([worker], rpm, 40.0, foreign=15.0)
    assert pacer.shares[0] == pytest.approx(0.25, abs=0.08)
    assert worker.accepted(10, 40) == pytest.approx(5 * 30, rel=0.15)
    # (the 429s are the first few seconds, before the first windows: the other client does not
    # pace at all, and this one starts alone on a full bucket)
    assert not [t for t, status in worker.sent if t >= 6 and status == 429]


def test_a_429_teaches_no_share_and_gives_its_token_back() -> None:
    pacer = Pacer(probe=0)
    _, ticket = pacer.reserve(0, 0.0)
    pacer.observe(200, headers(120, 119, 1), ticket, 0.0, EPOCH)
    _, ticket = pacer.reserve(0, 0.1)
    # a 429 reports Remaining 0 whatever the cause: not evidence of other workers
    pacer.observe(429, headers(120, 0, 6) | {"retry-after": "1"}, ticket, 2.0, EPOCH + 2)
    assert pacer.shares[0] == 1.0


@pytest.mark.parametrize(
    ("remaining", "drawn", "share"),
    [
        (116, 4, 1.0),  # what it drew itself: alone
        (56, 4, 4 / 64),  # 64 missing, 4 of them its own: one of about 16
        (0, 4, SHARE_JOIN),  # found empty: one of a few, until the first window says more
    ],
)
def test_the_first_answer_sets_the_first_share(remaining: int, drawn: int, share: float) -> None:
    pacer = Pacer()
    tickets = [pacer.reserve(0, 0.0)[1] for _ in range(drawn)]
    pacer.observe(200, headers(120, remaining, 3), tickets[-1], 0.1, EPOCH + 0.1)
    assert pacer.shares[0] == pytest.approx(share)


# --- several workers on one simulated server ---------------------------------------------------------


def test_four_workers_share_the_refill_rate_instead_of_each_spending_it() -> None:
    rpm = Bucket(120, 20)
    workers = [Worker(Pacer()) for _ in range(4)]
    simulate(workers, rpm, 40.0)
    total = sum(w.accepted(10, 40) for w in workers)
    assert total == pytest.approx(20 * 30, rel=0.05)
    assert rate_limited_share(workers) <= 0.05
    for worker in workers:
        assert SHARE_MIN <= worker.pacer.shares[0] < 0.7


def test_sixteen_workers_share_it_too() -> None:
    rpm = Bucket(120, 20)
    workers = [Worker(Pacer()) for _ in range(16)]
    simulate(workers, rpm, 60.0)
    total = sum(w.accepted(10, 60) for w in workers)
    assert total == pytest.approx(20 * 50, rel=0.05)
    assert rate_limited_share(workers) <= 0.05


def test_the_others_take_up_a_leaving_workers_share_and_make_room_for_a_joining_one() -> None:
    rpm = Bucket(120, 20)
    stays = [Worker(Pacer()), Worker(Pacer())]
    leaves = Worker(Pacer(), stop=20.0)
    joins = Worker(Pacer(), start=40.0)
    everyone = [*stays, leaves, joins]
    simulate(everyone, rpm, 70.0)
    # before the leave, after it (a few seconds to adjust), after the join
    for lo, hi in ((10, 20), (25, 40), (45, 70)):
        total = sum(w.accepted(lo, hi) for w in everyone)
        assert total == pytest.approx(20 * (hi - lo), rel=0.1), (lo, hi)
    assert sum(w.accepted(25, 40) for w in stays) == pytest.approx(20 * 15, rel=0.1)
    # the newcomer is not starved (shares follow what each drew: they are not equalised)
    assert joins.accepted(45, 70) >= 0.05 * 20 * 25
    assert rate_limited_share(everyone) <= 0.05


def test_workers_share_the_token_bucket_the_same_way() -> None:
    """Requests are plentiful (10,000 RPM); tokens are not: 2,000 per second, 500 per request."""
    rpm = Bucket(1e4, 1e4 / 60)
    tpm = Bucket(60_000, 2_000)
    workers = [Worker(Pacer(), tokens=500) for _ in range(4)]
    simulate(workers, rpm, 60.0, tpm=tpm)
    accepted = sum(w.accepted(20, 60) for w in workers)
    assert accepted == pytest.approx(4 * 40, rel=0.1)  # 2,000 tokens/s at 500 a request
    assert rate_limited_share(workers) <= 0.05
    assert all(w.pacer.shares[1] < 0.7 for w in workers)


# --- the first wave ------------------------------------------------------------------------------------


def test_a_fresh_pacer_sends_a_few_probes_then_waits_for_the_first_answer() -> None:
    pacer = Pacer()
    tickets = [pacer.reserve(0, 0.0) for _ in range(PROBE_REQUESTS)]
    assert all(ticket is not None for _, ticket in tickets)
    wait, ticket = pacer.reserve(0, 0.0)
    assert ticket is None and 0 < wait <= 0.01
    # the first answer opens the gate, headers or not
    pacer.observe(200, {}, tickets[0][1], 0.05, EPOCH)
    for _ in range(32):
        wait, ticket = pacer.reserve(0, 0.05)
        assert (wait, ticket is not None) == (0.0, True)


def test_the_probe_gate_opens_anyway_when_no_answer_comes() -> None:
    pacer = Pacer()
    for _ in range(PROBE_REQUESTS):
        pacer.reserve(0, 0.0)
    assert pacer.reserve(0, PROBE_TIMEOUT - 0.001)[1] is None
    assert pacer.reserve(0, PROBE_TIMEOUT)[1] is not None


@pytest.mark.parametrize(("probe", "most"), [(PROBE_REQUESTS, PROBE_REQUESTS + 2), (0, None)])
def test_a_drained_bucket_meets_the_probes_not_a_wave(probe: int, most: int | None) -> None:
    """Another process emptied the bucket: the first answers say so, and the rest wait (without
    the gate, 32 requests go out blind)."""
    rpm = Bucket(10, 2)
    rpm.level = 0.0
    worker = Worker(Pacer(probe=probe), concurrency=32)
    simulate([worker], rpm, 2.0)
    limited = sum(status == 429 for _, status in worker.sent)
    if most is None:
        assert limited >= 30
    else:
        assert limited <= most


def test_waiting_its_turn_is_not_being_stuck() -> None:
    """A request held back past MAX_RETRY_AFTER goes anyway only when nothing else went either."""
    pacer = Pacer(probe=0)
    for _ in range(10):
        _, ticket = pacer.reserve(1, 0.0)
    pacer.observe(200, headers(10, 0, 3600), ticket, 0.0, EPOCH)  # 1 every 6 minutes
    wait, ticket = pacer.reserve(1, 30.0, waited=MAX_RETRY_AFTER)
    assert ticket is None and wait > 0  # one went 30 s ago: it is waiting its turn
    wait, ticket = pacer.reserve(1, MAX_RETRY_AFTER + 1, waited=MAX_RETRY_AFTER + 1)
    assert ticket is not None  # nothing went for a minute: the model is stuck, the server decides


def test_sixteen_workers_starting_a_moment_apart() -> None:
    """Processes never start at once: the first ones find the bucket full, the later ones find it
    drained (a share of a few, then what the windows say)."""
    starts = random.Random(1)
    workers = [Worker(Pacer(), start=round(starts.uniform(0, 0.6), 2)) for _ in range(16)]
    simulate(workers, Bucket(120, 20), 60.0)
    assert sum(w.accepted(10, 60) for w in workers) == pytest.approx(20 * 50, rel=0.05)
    assert rate_limited_share(workers) <= 0.05


def test_a_429_wait_saves_up_no_burst() -> None:
    """Told to wait, a process comes back to an empty bucket of its own: every worker told to wait
    would otherwise return at the same moment with a burst saved up during the wait."""
    pacer = Pacer(probe=0)
    for _ in range(120):
        _, ticket = pacer.reserve(1, 0.0)
    pacer.observe(200, headers(120, 0, 6), ticket, 0.0, EPOCH)  # 20 per second
    _, ticket = pacer.reserve(1, 1.0)
    pacer.observe(429, headers(120, 0, 6) | {"retry-after": "2"}, ticket, 1.0, EPOCH + 1)
    wait, ticket = pacer.reserve(1, 3.0)  # the wait is over: one refill's time to the next token
    assert ticket is None and wait == pytest.approx(1 / 20, rel=0.3)


@pytest.mark.parametrize(
    ("rpm", "rate"),
    [(Bucket(120, 20), 20.0), (Bucket(5, 1), 1.0)],
    ids=["1200 RPM", "60 RPM, burst 5"],
)
def test_the_last_worker_left_gets_the_whole_bucket_back(rpm: Bucket, rate: float) -> None:
    """Its share was small while the others drew; once they leave the bucket fills up, which is
    the sign to grow (a full bucket held it back from learning anything: it crawled at its old
    share)."""
    leave = 30.0
    workers = [Worker(Pacer()) for _ in range(3)]
    for worker in workers:
        worker.stop = leave
    survivor = Worker(Pacer())
    simulate([*workers, survivor], rpm, leave + 40.0)
    assert survivor.accepted(leave + 15, leave + 40) == pytest.approx(rate * 25, rel=0.1)
    assert survivor.pacer.shares[0] == 1.0


def test_refunds_beyond_what_was_spent_are_not_a_division_by_zero() -> None:
    """A 429 for a request the model does not know of (a shared state started again meanwhile):
    more given back than spent. Nothing drawn is nothing drawn."""
    pacer = Pacer(probe=0)
    ticket = Ticket(requests_spent=1.0, tokens_spent=5000.0, tokens=5000.0)
    answer = headers(120, 120, 1) | headers(60_000, 60_000, 1, tpm=True) | {"retry-after": "1"}
    pacer.observe(429, answer, ticket, 0.0, EPOCH)
    pacer.observe(200, answer, None, 0.5, EPOCH + 0.5)
    assert pacer.shares == (1.0, 1.0)
