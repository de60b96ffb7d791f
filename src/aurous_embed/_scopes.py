"""What one call's requests share: stopping them (:class:`CallScope`, and :class:`Scopes` for a
client's close), and whether a failed request may have been charged (:class:`ChargeRisk`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from aurous_embed._connections import abort_in_flight
from aurous_embed._errors import (
    APIConnectionError,
    APIStatusError,
    AurousError,
    ClientClosedError,
    skipped_error,
)
from aurous_embed._retry import Clock, SystemClock


class CallScope:
    """The requests of one call (a batch, or one request): what stopping that call reaches.

    Stopping a call (Ctrl-C, ``break``, an exception in the caller) ends its retries and cuts short
    the requests it has in flight, on the lanes they borrowed, and no other call's: one client may
    serve several calls at once. Closing the client stops every call it runs (``closed``).
    """

    def __init__(self, *, interruptible: bool = True) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._lanes: list[object] = []
        #: stopped because the client was closed (the call's errors say so)
        self.closed = False
        #: waits are cut into slices so that a stop or a halt is noticed (batches); a single
        #: call's wait is too on the real clock (close() may come from another thread), and runs
        #: whole on an injected clock (tests count its sleeps; its next attempt sees the stop)
        self.interruptible = interruptible
        #: the error that stopped the batch (a bad key, no credits): requests not sent yet are
        #: not sent, those in flight finish (see :meth:`halt`)
        self.halted: AurousError | None = None

    def stopped(self) -> bool:
        return self._event.is_set()

    @contextlib.contextmanager
    def using(self, lane: object) -> Iterator[None]:
        """Register ``lane`` as carrying one of this call's requests while the block runs."""
        with self._lock:
            self._lanes.append(lane)
        try:
            if self.stopped():  # stopped between the last check and now: do not send
                raise self.stop_error()
            yield
        finally:
            with self._lock:
                self._lanes.remove(lane)

    def stop(self, *, closed: bool = False) -> None:
        """No more attempts; cut this call's requests in flight short.

        The lock is held while their sockets are shut, so none of these lanes can go back to the
        pool (and to another call) half way; a lane whose socket was shut is then retired.
        """
        with self._lock:
            self.closed = self.closed or closed
            self._event.set()
            abort_in_flight(*self._lanes)

    def halt(self, cause: AurousError) -> None:
        """``cause`` will fail every request of this batch the same way: requests that have not
        been sent yet are not sent (each fails with a skipped copy of it; a request waiting for
        the rate-limit pacer, say), and those in flight finish (their answers may be charged).
        Only the server's answers halt: a budget or a missing extra stops a batch from taking
        more inputs, but an input that already holds its share of the budget is still sent."""
        if isinstance(cause, APIStatusError):
            self.halted = cause

    def halt_error(self) -> AurousError | None:
        """The error of a request not sent because the batch was halted, if it was."""
        return None if self.halted is None else skipped_error(self.halted, None)

    def stop_error(self) -> AurousError:
        """The error of an attempt that was not sent because the call stopped."""
        if self.closed:
            return ClientClosedError("not sent: the client was closed")
        return APIConnectionError(
            "not sent: the batch was cancelled", may_have_reached_server=False
        )

    def _ended(self, halts: bool) -> bool:
        return self.stopped() or (halts and self.halted is not None)

    def sleep(self, clock: Clock, seconds: float, *, halts: bool = False) -> None:
        """A wait that a stop (or, with ``halts``, a halt: a request not yet sent waiting for
        the pacer) cuts short within a quarter of a second (a single call's: see
        ``interruptible``)."""
        if not self.interruptible and not isinstance(clock, SystemClock):
            clock.sleep(seconds)
            return
        end = clock.monotonic() + seconds
        while not self._ended(halts) and (left := end - clock.monotonic()) > 0:
            clock.sleep(min(left, 0.25))

    async def asleep(self, clock: Clock, seconds: float, *, halts: bool = False) -> None:
        """The async twin of :meth:`sleep`."""
        if not self.interruptible and not isinstance(clock, SystemClock):
            await clock.asleep(seconds)
            return
        end = clock.monotonic() + seconds
        while not self._ended(halts) and (left := end - clock.monotonic()) > 0:
            await clock.asleep(min(left, 0.25))


class Scopes:
    """The calls a client is running, so that closing it stops them (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[CallScope, int] = {}
        self.closed = False

    @contextlib.contextmanager
    def enter(self, scope: CallScope) -> Iterator[CallScope]:
        with self._lock:
            if self.closed:
                raise ClientClosedError()
            self._live[scope] = self._live.get(scope, 0) + 1
        try:
            yield scope
        finally:
            with self._lock:
                if self._live[scope] == 1:
                    del self._live[scope]
                else:
                    self._live[scope] -= 1

    def close(self) -> None:
        """Refuse new calls and stop the running ones."""
        with self._lock:
            self.closed = True
            live = list(self._live)
        for scope in live:
            scope.stop(closed=True)


@dataclass
class ChargeRisk:
    """Whether a call may have been charged although no answer says so.

    ``lost``: an attempt may have reached the server and its answer never came (a reset, a
    timeout, a cut answer); ``sending``: an attempt is on the wire now (the call was interrupted
    there). A budget counts such a call as spent (its upper-bound estimate).
    """

    lost: bool = False
    sending: bool = False
    attempts: int = 0  # attempts put on the wire

    @property
    def uncertain(self) -> bool:
        return self.lost or self.sending
