"""One rate-limit model for every process on a machine, kept in a small locked file.

Without it each process paces from the server's headers alone (see :mod:`aurous_embed._pacing`):
that keeps the team's total at the limit, but shares follow what each process drew, so whoever
started first keeps more. When the user names a directory (``$AUROUS_RATE_LIMIT_DIR``), every
process on the machine with the same key and base URL keeps the *whole* :class:`Pacer` state in one
file there: each reservation and each answer reads it, applies the same logic as a single process
would, and writes it back under an exclusive lock. The machine then behaves as one process: requests
are granted as tokens refill, first to the process that has waited longest, so equal demand gets
about equal shares, and
the cooperative inference still works against other machines on the key.

Why a file and ``fcntl``/``msvcrt`` rather than a library (``filelock``, SQLite): the core depends on
httpx only, the state is a few hundred bytes, and the lock is held for microseconds. The file holds
no key: its name is a digest of the base URL and key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any

from aurous_embed._errors import InputValidationError
from aurous_embed._pacing import (
    PROBE_POLL,
    PROBE_REQUESTS,
    Pacer,
    Ticket,
    _Bucket,
    bucket_address,
    shared_pacer,
)
from aurous_embed._secrets import Secret

#: Names the directory where processes on this machine share their rate-limit model (unset: each
#: process paces on its own, cooperatively from the headers). [Project decision: opt-in, by
#: environment, so worker processes started by any framework inherit it.]
RATE_LIMIT_DIR_ENV = "AUROUS_RATE_LIMIT_DIR"
#: A state last written longer ago than this (wall clock) is stale: start from nothing.
STALE_AFTER = 3600.0
#: Two boots are told apart by when their monotonic clocks started (wall clock): closer than this
#: (NTP steps the wall clock) is the same boot.
BOOT_TOLERANCE = 30.0

#: A queued process that has not asked again this long after its wait ended has left the queue
#: (it got its token elsewhere, gave up, or was killed).
QUEUE_GRACE = 1.0

#: How long a request waits for the file's lock before pacing on this process's own model (the lock
#: is held for microseconds; a holder that is stopped, e.g. Ctrl-Z or a debugger, must not stop
#: every process on the machine, nor an event loop that asks), and how long the file is then left
#: alone before it is tried again. A file that cannot be read or written is left alone as long.
LOCK_WAIT = 0.05
BYPASS_FOR = 1.0
LOCK_POLL = 0.0005

#: The Pacer's own fields that the machine shares (its buckets and counters; not its thread lock).
_FIELDS = (
    "_requests_spent",
    "_tokens_spent",
    "_requests_refunded",
    "_tokens_refunded",
    "_blocked_until",
    "_answered",
    "_probe_started",
    "_last_grant",
)


class MachinePacer(Pacer):
    """A :class:`Pacer` whose state lives in ``path``, shared by every process that opens it.

    Times are the callers' monotonic clock, which is system-wide (Linux ``CLOCK_MONOTONIC``, macOS
    and Windows alike); a state written before a reboot, or more than ``STALE_AFTER`` ago, is
    dropped. A process that forks reopens the file (the child must not share the parent's lock).
    """

    def __init__(self, path: str | os.PathLike[str], *, probe: int = PROBE_REQUESTS) -> None:
        super().__init__(probe=probe)
        self.path = Path(path)
        self._file_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = -1
        #: processes waiting for a token: who -> (waiting since, gone unless it asks again by)
        self._queue: dict[str, tuple[float, float]] = {}
        self._retry_at = 0.0  # this process's next look at the file, when it was refused
        self._bypass_until = -1.0  # (monotonic) the file could not be used: this process's model

    def _identity(self) -> str:
        return f"{os.getpid()}-{id(self):x}"

    def reserve(
        self, tokens: float, now: float, *, waited: float = 0.0
    ) -> tuple[float, Ticket | None]:
        """As :meth:`Pacer.reserve`, but processes take turns: a process refused a token joins
        the machine's queue, and the tokens that refill go first to the processes that have waited
        longest, so equal demand gets about equal shares (whoever hears an answer first would otherwise
        take the token the answer shows, and the busiest process would get busier). A token beyond
        what the processes ahead are owed goes to whoever asks (one asleep at the head of the
        queue wastes nothing). Within a process, one request asks the file at a time: the others
        wait for the time it was told, without reading the file."""
        with self._file_lock:
            if now < self._retry_at:
                return self._retry_at - now, None
        with self._shared(now):
            me = self._identity()
            queue = {k: v for k, v in self._queue.items() if v[1] >= now}
            since = queue.get(me, (now, now))[0]
            ahead = sum(1 for k, v in queue.items() if k != me and v[0] < since)
            owed = ahead + 1 - self._requests.level_at(now) if self._requests.known else 0.0
            if ahead and owed > 0:
                spacing = 1.0 / self._requests.rate if self._requests.rate > 0 else PROBE_POLL
                wait, ticket = max(PROBE_POLL, owed * spacing), None
            else:
                wait, ticket = super().reserve(tokens, now, waited=waited)
            if ticket is None:
                queue[me] = (since, now + wait + QUEUE_GRACE)
                self._retry_at = now + wait
            else:
                queue.pop(me, None)
                self._retry_at = 0.0
            self._queue = queue
            return wait, ticket

    def observe(
        self,
        status: int,
        headers: Mapping[str, str],
        ticket: Ticket | None,
        now: float,
        epoch: float,
    ) -> None:
        with self._shared(now):
            super().observe(status, headers, ticket, now, epoch)

    @property
    def shares(self) -> tuple[float, float]:
        with self._shared(None):
            return super().shares

    def close(self) -> None:
        with self._file_lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None

    @contextlib.contextmanager
    def _shared(self, now: float | None) -> Iterator[None]:
        """Hold the machine's lock, with the machine's state loaded; write it back after.

        When the file cannot be used (its lock not had within ``LOCK_WAIT``, a read or write that
        fails), this process paces on its own model, the machine's as last read, for
        ``BYPASS_FOR`` seconds: a pacer file is never a reason for a request to fail or hang."""
        with self._file_lock:
            fd = self._locked()
            try:
                if fd is not None:
                    try:
                        raw = os.pread(fd, 1 << 16, 0)
                    except OSError:
                        fd = self._bypass(fd)
                    else:
                        self._load(raw, now)
                yield
                if fd is not None and now is not None:
                    data = self._dump()
                    try:
                        os.pwrite(fd, data, 0)
                        os.ftruncate(fd, len(data))
                    except OSError:
                        fd = self._bypass(fd)
            finally:
                if fd is not None:
                    _unlock(fd)

    def _locked(self) -> int | None:
        """The file's descriptor, locked; ``None``: pace on this process's model for now."""
        if time.monotonic() < self._bypass_until:
            return None
        deadline = time.monotonic() + LOCK_WAIT
        for _ in range(3):
            try:
                fd = self._open()
            except OSError:
                return self._bypass()
            if not _lock(fd, deadline):
                return self._bypass()
            # The file deleted or replaced since it was opened (a cleaner, rm -rf): the processes
            # that opened it later use the one at the path, so this one must too.
            if _same_file(fd, self.path):
                return fd
            _unlock(fd)
            os.close(fd)
            self._fd = None
        return self._bypass()

    def _bypass(self, fd: int | None = None) -> int | None:
        """Leave the file alone for ``BYPASS_FOR`` (unlocking ``fd``); ``None``, to assign."""
        if fd is not None:
            _unlock(fd)
        self._bypass_until = time.monotonic() + BYPASS_FOR
        return None

    def _open(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    def _load(self, raw: bytes, now: float | None) -> None:
        try:
            state = json.loads(raw) if raw else None
        except ValueError:
            state = None  # a writer killed mid-write: the model is a guess, start again
        if not isinstance(state, dict) or not self._fresh(state, now):
            self._reset()
            return
        try:
            for name in _FIELDS:
                setattr(self, name, state[name])
            self._requests = _bucket(state["requests"])
            self._tokens = _bucket(state["tokens"])
            self._queue = {str(k): (float(v[0]), float(v[1])) for k, v in state["queue"].items()}
        except (KeyError, TypeError, ValueError):
            self._reset()

    def _fresh(self, state: dict[str, Any], now: float | None) -> bool:
        written, boot = state.get("written"), state.get("boot")
        if not isinstance(written, (int, float)) or not isinstance(boot, (int, float)):
            return False
        if time.time() - written > STALE_AFTER:
            return False
        # The wall-clock time the monotonic clock started: another value means another boot,
        # whose monotonic times mean nothing now. (Not the state's own times: a 429 sets a
        # bucket's time to when its wait ends, in the future.)
        return abs(boot - _boot()) < BOOT_TOLERANCE

    def _reset(self) -> None:
        fresh = Pacer(probe=self._probe)
        for name in _FIELDS:
            setattr(self, name, getattr(fresh, name))
        self._requests, self._tokens = _Bucket(), _Bucket()
        self._queue = {}

    def _dump(self) -> bytes:
        state: dict[str, Any] = {name: getattr(self, name) for name in _FIELDS}
        state["requests"] = _fields(self._requests)
        state["tokens"] = _fields(self._tokens)
        state["queue"] = self._queue
        state["written"] = time.time()
        state["boot"] = _boot()
        return json.dumps(state, separators=(",", ":")).encode()


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _boot() -> float:
    return time.time() - time.monotonic()


def _fields(bucket: _Bucket) -> dict[str, Any]:
    # (not dataclasses.asdict: it deep-copies, and this runs on every request)
    return {f.name: getattr(bucket, f.name) for f in _BUCKET_FIELDS}


_BUCKET_FIELDS = dataclasses.fields(_Bucket)


def _bucket(fields: dict[str, Any]) -> _Bucket:
    bucket = _Bucket(**fields)
    if bucket.anchor is not None:
        bucket.anchor = tuple(bucket.anchor)  # type: ignore[assignment]  # JSON gives a list
    return bucket


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int, deadline: float) -> bool:
        while True:
            try:
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1 << 16)
                return True
            except OSError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(LOCK_POLL)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1 << 16)

else:
    import fcntl

    def _lock(fd: int, deadline: float) -> bool:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(LOCK_POLL)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


_MACHINE_PACERS: dict[tuple[Path, str], MachinePacer] = {}
_MACHINE_PACERS_LOCK = threading.Lock()


def process_pacer(base_url: str, api_key: Hashable) -> Pacer:
    """The model of the buckets behind ``api_key`` at ``base_url`` that this process paces with:
    shared by the machine's processes when ``$AUROUS_RATE_LIMIT_DIR`` names a directory, else this
    process's own (:func:`~aurous_embed._pacing.shared_pacer`)."""
    directory = os.environ.get(RATE_LIMIT_DIR_ENV, "").strip()
    if not directory:
        return shared_pacer(base_url, api_key)
    folder = Path(directory).expanduser()
    if not folder.is_absolute():  # resolved against each process's own working directory, the
        # processes of one machine would not meet in one file
        raise InputValidationError(
            f"{RATE_LIMIT_DIR_ENV} must be an absolute path, got {directory!r}",
            param=RATE_LIMIT_DIR_ENV,
        )
    key = api_key.reveal() if isinstance(api_key, Secret) else str(api_key)
    digest = hashlib.sha256(f"{bucket_address(base_url)}\n{key}".encode()).hexdigest()[:32]
    where = (folder.resolve(), digest)
    with _MACHINE_PACERS_LOCK:
        pacer = _MACHINE_PACERS.get(where)
        if pacer is None:
            pacer = MachinePacer(where[0] / f"pacer-{digest}.json")
            try:  # a directory that cannot hold the file is said now, not at the first request
                with pacer._file_lock:
                    pacer._open()
            except OSError as exc:
                raise InputValidationError(
                    f"cannot keep the shared rate-limit file in {str(where[0])!r}: "
                    f"{exc.strerror or exc}",
                    param=RATE_LIMIT_DIR_ENV,
                ) from None
            _MACHINE_PACERS[where] = pacer
        return pacer


def forget_machine_pacers() -> None:
    """Close and forget every machine-shared model of this process (the files stay)."""
    with _MACHINE_PACERS_LOCK:
        for pacer in _MACHINE_PACERS.values():
            pacer.close()
        _MACHINE_PACERS.clear()
