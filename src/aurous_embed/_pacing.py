"""Rate-limit pacing: a local model of the server's RPM and TPM buckets, read from the
``X-RateLimit-*`` headers of every answer, that holds a request back until its bucket has a token.

Under a rate limit the client then sends at the refill rate instead of bouncing off 429s. Clients
with the same key and base URL in one process share one :class:`Pacer` (``shared_pacer``): the
server's buckets are per team. Several processes or machines on one key pace cooperatively from the
headers alone: a pacer that sees the bucket drain faster than its own draws explain keeps to its
share of what remains and of the refill. A fresh pacer lets a few probes out before its first
answer. Used by :mod:`aurous_embed._http` (around each attempt) and the clients; below both.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import httpx

from aurous_embed._config import MAX_RETRY_AFTER, RATE_LIMIT_MIN_WAIT
from aurous_embed._retry import parse_reset, parse_retry_after

#: A fresh pacer (no answer seen yet) lets this many requests out, then waits for the first answer's
#: headers before opening up: a bucket another process drained meets a few probes, not a whole wave.
PROBE_REQUESTS = 4
#: How often a request held back by the probe gate looks again (the first answer opens the gate).
PROBE_POLL = 0.01
#: The probe gate opens anyway this long after the first probe left (an answer without headers, a
#: slow probe): the gate is a courtesy, never a stall.
PROBE_TIMEOUT = 2.0
#: Windows over which the pacer compares how fast a bucket drains with what it spent itself: at
#: least this long, and long enough to hold ``SHARE_WINDOW_EVENTS`` of its own draws, or
#: ``SHARE_WINDOW_MAX`` seconds.
SHARE_WINDOW_MIN = 1.0
SHARE_WINDOW_MAX = 4.0
SHARE_WINDOW_EVENTS = 6.0
#: The smallest share of a bucket the pacer assumes is its own (64 workers on one key).
SHARE_MIN = 1.0 / 64
#: The share a process assumes when its first answer shows the bucket empty (others are spending
#: all of the refill; how many does not show yet).
SHARE_JOIN = 0.25
#: A first answer showing the bucket below this fraction of its size counts as "found empty".
SHARE_LOW = 0.25
#: How fast a share grows back towards what the process drew (per window), and how many requests'
#: worth of slack the bucket must show for it to grow at all.
SHARE_UP = 0.2
SHARE_SLACK = 4.0
#: Foreign draws below this fraction of a window's total (or 2 requests) are noise: whole-number
#: ``Remaining``, reset times in whole seconds, latency jitter. A lone worker keeps all of the bucket.
SHARE_NOISE = 0.1


@dataclass
class _Bucket:
    """A local model of one server token bucket, fed by the rate-limit headers.

    The server's bucket may be drawn on by other processes or machines with the same key: the model
    holds this process's ``share`` of it (1.0 until other draws are seen). Every window it compares
    how much the bucket drained (the refill it learnt, minus the change in ``Remaining``) with what
    this process drew itself; the difference is what the others drew. The process then counts only
    its share of ``Remaining`` and of the refill as its own, so N workers together send at the
    refill rate instead of N times it. Shares follow what each worker actually drew, so when one
    leaves the bucket drains more slowly and the others' shares grow within a window or two; one
    that joins takes its share from the start (see ``first_share``).
    """

    capacity: float = 0.0
    rate: float = 0.0  # tokens per second; 0 until learnt (leans low: for pacing)
    refill: float = 0.0  # the same, unbiased (for weighing what others drew); 0 until learnt
    level: float = 0.0
    at: float = 0.0  # monotonic time of `level`
    known: bool = False
    share: float = 1.0  # of the server's bucket that this process may spend
    #: the window's start: when, the bucket's ``Remaining`` then, and this process's draws by then
    anchor: tuple[float, float, float] | None = None

    def level_at(self, now: float) -> float:
        top = self.capacity * self.share
        return min(top, self.level + self.share * self.rate * max(0.0, now - self.at))

    def wait_for(self, cost: float, now: float) -> float:
        if not self.known or cost <= 0:
            return 0.0
        level = self.level_at(now)
        if level >= min(cost, self.capacity * self.share) - 1e-6:
            # (tolerance: a wait computed from this formula must end it; a cost above this
            # process's share of the whole bucket goes when its share is full)
            return 0.0
        if self.rate <= 0:
            return 0.0  # cannot model the refill: let the server decide (429 + Retry-After)
        return max((min(cost, self.capacity * self.share) - level) / (self.share * self.rate), 1e-3)

    def take(self, cost: float, now: float) -> None:
        if self.known:
            self.level = self.level_at(now) - cost
            self.at = now

    def observe(
        self,
        limit: float,
        remaining: float,
        reset_in: float | None,
        now: float,
        spent_since: float,
        drawn: float | None = None,
        unit: float = 1.0,
        *,
        rejected: bool = False,
    ) -> None:
        """Learn from one answer: ``drawn`` is everything this process has drawn from the bucket so
        far (``None``: do not weigh it against the others); ``unit`` is one request's worth of it
        (1 request, or an average request's tokens). A ``rejected`` answer (429) can set the first
        share (the bucket was found empty), but its Remaining may be forced to zero (the other
        bucket was the empty one): it is never a window's end."""
        if limit <= 0:
            return
        self.capacity = limit
        # A reset more than an hour away is not a per-minute bucket refilling: do not learn from it.
        if reset_in is not None and 0 < reset_in <= 3600 and remaining < limit:
            rate = (limit - remaining) / reset_in
            # Reset is whole seconds: smooth, and lean low so rounding does not cause 429s.
            self.rate = rate if self.rate <= 0 else 0.8 * self.rate + 0.2 * rate
            if reset_in >= 2:
                # For weighing draws, the refill without the lean: Remaining is rounded down
                # and the reset up, each by half a unit on average.
                fair = (limit - remaining - 0.5) / (reset_in - 0.5)
                self.refill = fair if self.refill <= 0 else 0.9 * self.refill + 0.1 * fair
        if drawn is not None and (self.anchor is None or not rejected):
            self.learn_share(remaining, now, drawn, unit)
        # The answer shows the bucket when the server took this request; requests sent since then
        # have taken their tokens too.
        self.level = self.share * remaining - spent_since
        self.at = now
        self.known = True

    def learn_share(self, remaining: float, now: float, drawn: float, unit: float = 1.0) -> None:
        """Compare the bucket's drain over the window with this process's own draws."""
        if self.anchor is None:
            self.share = self.first_share(remaining, drawn, unit)
            self.anchor = (now, remaining, drawn)
            return
        since, before, drawn_before = self.anchor
        elapsed, mine = now - since, drawn - drawn_before
        if elapsed < SHARE_WINDOW_MIN:
            return
        full = self.capacity - unit
        if self.rate > 0 and mine > 0 and remaining >= full and self.share < 1.0:
            # It drew, and the bucket is full all the same: nobody is short of the refill. Grow
            # as when alone (a small share held back by a full bucket would never learn more).
            self.anchor = (now, remaining, drawn)
            share = 0.5 * self.share + 0.5
            self.share = 1.0 if share > 1 - SHARE_NOISE / 2 else share
            return
        if self.rate <= 0 or mine <= 0 or remaining >= full or before >= full:
            # The refill is unknown, this process drew nothing (its share says nothing), or the
            # bucket was full (what refilled may have overflowed): nothing to learn.
            self.anchor = (now, remaining, drawn)
            return
        refill = self.refill if self.refill > 0 else self.rate
        total = refill * elapsed - (remaining - before)  # what everyone drew
        if mine < SHARE_WINDOW_EVENTS * unit and elapsed < SHARE_WINDOW_MAX:
            return  # too few of its own draws yet to weigh them against the others'
        self.anchor = (now, remaining, drawn)
        # (nobody else drew, within the noise: 1)
        sample = 1.0 if total - mine <= max(2 * unit, SHARE_NOISE * total) else mine / total
        if sample < self.share:
            # Down at once: the others draw more than this process left them.
            share = sample
        elif sample >= 1.0:
            share = 0.5 * self.share + 0.5  # alone again: back to the whole bucket in a few windows
        elif min(remaining, before) < SHARE_SLACK * unit:
            # Up only when the bucket has room: while it is empty, a worker that drew more than
            # its share took it from the others (who saw less refill than they were due).
            return
        else:
            share = (1 - SHARE_UP) * self.share + SHARE_UP * sample
        self.share = 1.0 if share > 1 - SHARE_NOISE / 2 else max(SHARE_MIN, share)

    def first_share(self, remaining: float, drawn: float, unit: float = 1.0) -> float:
        """The share to start from, from the first answer: if the bucket is lower than this
        process's own draws explain, others drew from it (or did shortly before)."""
        missing = self.capacity - remaining
        if missing <= max(0.0, drawn) + 2 * unit:
            return 1.0
        share = drawn / missing
        if remaining < SHARE_LOW * self.capacity:
            # Found empty: others are spending all of the refill, and how many of them there are
            # does not show. Start as one of a few; the first window puts it right (shares follow
            # what each draws, so a newcomer that started at its own few draws would stay there).
            share = max(share, SHARE_JOIN)
        return min(1.0, max(SHARE_MIN, share))


@dataclass(frozen=True, slots=True)
class Ticket:
    """Proof of a reservation: what was spent up to and including this request, and its cost."""

    requests_spent: float
    tokens_spent: float
    tokens: float = 0.0


class Pacer:
    """Holds requests back so they go out at the rate the server's buckets refill (thread-safe).

    It learns from headers alone: each bucket's size, refill rate and level, and (see
    :class:`_Bucket`) how much of it this process may spend when other processes or machines draw
    on the same key. Until the first answer arrives, at most ``probe`` requests go out.
    """

    def __init__(self, *, probe: int = PROBE_REQUESTS) -> None:
        self._lock = threading.Lock()
        self._requests = _Bucket()
        self._tokens = _Bucket()
        self._requests_spent = 0.0
        self._tokens_spent = 0.0
        # what the server turned away (a 429 takes nothing from the buckets)
        self._requests_refunded = 0.0
        self._tokens_refunded = 0.0
        self._blocked_until = 0.0
        self._probe = probe
        self._answered = probe <= 0  # an answer (any) was seen: the probe gate is open
        self._probe_started: float | None = None
        self._last_grant: float | None = None  # when a request was last let out

    @property
    def shares(self) -> tuple[float, float]:
        """This process's share of the request and token buckets (1.0: nobody else seen)."""
        with self._lock:
            return self._requests.share, self._tokens.share

    def reserve(
        self, tokens: float, now: float, *, waited: float = 0.0
    ) -> tuple[float, Ticket | None]:
        """``(0, ticket)`` when the request may go now, else ``(seconds to wait, None)``.

        ``waited`` is how long this attempt has already been held back: the local model is a guess,
        so after ``MAX_RETRY_AFTER`` the request goes anyway and the server has the last word,
        unless other requests were let out meanwhile (it is waiting its turn, not stuck).
        """
        with self._lock:
            wait = max(
                self._blocked_until - now,
                self._requests.wait_for(1.0, now),
                self._tokens.wait_for(tokens, now),
                self._probe_wait(now),
            )
            if wait > 0:
                if waited < MAX_RETRY_AFTER:
                    return min(wait, MAX_RETRY_AFTER - waited), None
                # Waiting its turn while others go is the model working (a small share of a
                # bucket, many requests queued); no request let out for that long is the model
                # stuck: then this one goes.
                if self._last_grant is not None and now - self._last_grant < MAX_RETRY_AFTER:
                    return min(wait, MAX_RETRY_AFTER), None
            self._last_grant = now
            self._requests.take(1.0, now)
            self._tokens.take(tokens, now)
            self._requests_spent += 1.0
            self._tokens_spent += tokens
            return 0.0, Ticket(self._requests_spent, self._tokens_spent, tokens)

    def _probe_wait(self, now: float) -> float:
        """Before the first answer: ``probe`` requests may go, the others poll until it comes."""
        if self._answered:
            return 0.0
        if self._probe_started is None:
            self._probe_started = now
        if self._requests_spent < self._probe or now - self._probe_started >= PROBE_TIMEOUT:
            return 0.0
        # Every waiter wakes on the same beat, so the wave leaves together once the gate opens.
        elapsed = now - self._probe_started
        return max(1e-3, min(PROBE_POLL - elapsed % PROBE_POLL, PROBE_TIMEOUT - elapsed))

    def observe(
        self,
        status: int,
        headers: Mapping[str, str],
        ticket: Ticket | None,
        now: float,
        epoch: float,
    ) -> None:
        """Learn from one answer's headers (every answer carries them, errors included)."""
        with self._lock:
            self._answered = True
            rejected = status == 429
            if rejected and ticket is not None:
                self._requests_refunded += 1.0
                self._tokens_refunded += ticket.tokens
            requests_drawn = max(0.0, self._requests_spent - self._requests_refunded)
            tokens_drawn = max(0.0, self._tokens_spent - self._tokens_refunded)
            token_unit = max(1.0, tokens_drawn / max(1.0, requests_drawn))
            for bucket, prefix, spent, mine, drawn, unit in (
                (
                    self._requests,
                    "x-ratelimit-",
                    self._requests_spent,
                    ticket and ticket.requests_spent,
                    requests_drawn,
                    1.0,
                ),
                (
                    self._tokens,
                    "x-ratelimit-tpm-",
                    self._tokens_spent,
                    ticket and ticket.tokens_spent,
                    tokens_drawn,
                    token_unit,
                ),
            ):
                limit = _number(headers.get(prefix + "limit"))
                remaining = _number(headers.get(prefix + "remaining"))
                if limit is None or remaining is None:
                    continue
                reset_in = parse_reset(headers, epoch, tpm=bucket is self._tokens)
                bucket.observe(
                    limit,
                    remaining,
                    reset_in,
                    now,
                    spent - (mine or spent),
                    drawn,
                    unit,
                    rejected=rejected,
                )
            if status == 429 or (status == 503 and headers.get("retry-after") is not None):
                # Everyone holds back at least RATE_LIMIT_MIN_WAIT (a `Retry-After: 0` is not
                # "now"), and at most MAX_RETRY_AFTER: a longer block is not remembered (the call
                # that met it gives up; a later call asks the server again).
                wait = max(parse_retry_after(headers, epoch) or 0.0, RATE_LIMIT_MIN_WAIT)
                self._blocked_until = max(self._blocked_until, now + min(wait, MAX_RETRY_AFTER))
                if status == 429:
                    # Nothing refills for this process while the server holds it back: it starts
                    # again from an empty bucket, not with a burst saved up during the wait (every
                    # worker told to wait would otherwise come back at the same moment, at once).
                    for bucket in (self._requests, self._tokens):
                        if bucket.known:
                            bucket.level = min(bucket.level, 0.0)
                            bucket.at = max(bucket.at, self._blocked_until)


#: The process's models of the servers' buckets, one per (base URL, API key): see shared_pacer.
_SHARED_PACERS: dict[tuple[str, Hashable], Pacer] = {}
_SHARED_PACERS_LOCK = threading.Lock()


def shared_pacer(base_url: str, api_key: Hashable) -> Pacer:
    """The process's one model of the rate-limit buckets behind ``api_key`` at ``base_url``.

    The server keeps one RPM and one TPM bucket per team, fed by every request the team makes, so
    every client in this process with the same key and base URL (sync or async, adapters included)
    paces against the same model: a job that starts after another drained the bucket waits for
    the refill instead of bouncing off 429s, and two jobs at once share the refill instead of each
    spending all of it. A stale model does no harm: it refills at the rate it learnt.
    """
    with _SHARED_PACERS_LOCK:
        return _SHARED_PACERS.setdefault((bucket_address(base_url), api_key), Pacer())


def bucket_address(base_url: str) -> str:
    """``base_url`` spelt one way for every spelling of the same server (scheme and host case, a
    default port, a trailing dot or slash, doubled slashes): each spelling would otherwise keep a
    model of its own and spend the team's bucket again."""
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError):
        return base_url
    default = {"https": 443, "http": 80}.get(url.scheme)
    port = "" if url.port in (None, default) else f":{url.port}"
    path = "/".join(part for part in url.path.split("/") if part)
    return f"{url.scheme}://{url.host.rstrip('.')}{port}/{path}"


def forget_shared_pacers() -> None:
    """Forget every shared model (the test suite starts each test from nothing)."""
    with _SHARED_PACERS_LOCK:
        _SHARED_PACERS.clear()


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None
