"""Processes on one machine share one rate-limit model through a locked file
(``$AUROUS_RATE_LIMIT_DIR``): the machine paces as one process would, so equal demand gets equal
shares. Everything runs on an injected clock (the simulation of ``test_cooperative_pacing``), and
one test uses a second real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aurous_embed import AurousClient, InputValidationError
from aurous_embed._machine_pacer import (
    RATE_LIMIT_DIR_ENV,
    STALE_AFTER,
    MachinePacer,
    forget_machine_pacers,
    process_pacer,
)
from aurous_embed._pacing import Pacer, shared_pacer
from tests.unit.test_cooperative_pacing import (
    EPOCH,
    Bucket,
    Worker,
    headers,
    rate_limited_share,
    simulate,
)

KEY = "al_live_" + "mp" * 32


@pytest.fixture(autouse=True)
def _no_machine_pacers() -> Iterator[None]:
    forget_machine_pacers()
    yield
    forget_machine_pacers()


def machine_workers(path: Path, count: int, **options: float) -> list[Worker]:
    return [Worker(MachinePacer(path / "pacer.json"), **options) for _ in range(count)]  # type: ignore[arg-type]


def test_four_processes_on_one_file_share_the_refill_equally(tmp_path: Path) -> None:
    rpm = Bucket(120, 20)
    workers = machine_workers(tmp_path, 4)
    simulate(workers, rpm, 25.0, step=0.02)
    accepted = [w.accepted(10, 25) for w in workers]
    assert sum(accepted) == pytest.approx(20 * 15, rel=0.05)
    # one model for the machine: the burst, then the refill, and no 429 at all
    assert rate_limited_share(workers) == 0.0
    for count in accepted:
        assert count == pytest.approx(sum(accepted) / 4, rel=0.15), accepted


def test_cooperative_pacing_alone_does_not_equalise(tmp_path: Path) -> None:
    """What the file adds: without it, shares follow what each process drew."""
    rpm = Bucket(120, 20)
    workers = [Worker(Pacer()) for _ in range(4)]
    simulate(workers, rpm, 40.0)
    accepted = [w.accepted(10, 40) for w in workers]
    assert max(accepted) > 1.3 * min(accepted), accepted


def test_a_joining_process_gets_its_share_at_once(tmp_path: Path) -> None:
    rpm = Bucket(120, 20)
    first = machine_workers(tmp_path, 2)
    joins = Worker(MachinePacer(tmp_path / "pacer.json"), start=20.0)
    simulate([*first, joins], rpm, 32.0, step=0.02)
    assert joins.accepted(21, 32) == pytest.approx(20 * 11 / 3, rel=0.2)
    assert rate_limited_share([*first, joins]) == 0.0


def test_the_token_bucket_is_shared_the_same_way(tmp_path: Path) -> None:
    rpm = Bucket(1e4, 1e4 / 60)
    tpm = Bucket(60_000, 2_000)
    workers = machine_workers(tmp_path, 4, tokens=500)
    simulate(workers, rpm, 45.0, tpm=tpm, step=0.02)
    accepted = [w.accepted(15, 45) for w in workers]
    assert sum(accepted) == pytest.approx(4 * 30, rel=0.1)
    assert rate_limited_share(workers) <= 0.02
    for count in accepted:
        assert count == pytest.approx(30, rel=0.25), accepted


def test_another_process_sees_what_this_one_spent(tmp_path: Path) -> None:
    """A real second process draws the bucket this one learnt: this one then waits."""
    path = tmp_path / "pacer.json"
    pacer = MachinePacer(path, probe=0)
    _, ticket = pacer.reserve(0, 100.0)
    pacer.observe(200, headers(10, 9, 1, now=100.0), ticket, 100.0, EPOCH + 100)  # 1 a second
    child = (
        "import sys; from aurous_embed._machine_pacer import MachinePacer\n"
        "pacer = MachinePacer(sys.argv[1], probe=0)\n"
        "granted = sum(pacer.reserve(0, 100.0)[1] is not None for _ in range(20))\n"
        "print(granted)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", child, str(path)], capture_output=True, text=True, check=True
    )
    assert int(result.stdout) == 9  # what was left of the bucket, and no more
    wait, ticket = pacer.reserve(0, 100.0)
    assert ticket is None and wait == pytest.approx(1.0, rel=0.1)


def test_the_file_holds_no_key_and_is_named_by_a_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RATE_LIMIT_DIR_ENV, str(tmp_path))
    with AurousClient(KEY, base_url="http://127.0.0.1:9/v1") as client:
        pacer = client._pacer
        assert isinstance(pacer, MachinePacer)
        _, ticket = pacer.reserve(0, time.monotonic())
        with AurousClient(KEY, base_url="http://127.0.0.1:9/v1") as other:
            assert other._pacer is pacer  # one per process, as without the file
        with AurousClient(KEY, base_url="http://127.0.0.1:10/v1") as elsewhere:
            assert elsewhere._pacer is not pacer
    (written,) = [p for p in tmp_path.iterdir() if p.read_bytes()]
    assert KEY not in written.name and KEY not in written.read_text()
    assert written.name.startswith("pacer-") and ticket is not None
    if os.name == "posix":
        assert written.stat().st_mode & 0o077 == 0


def test_without_the_variable_each_process_paces_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RATE_LIMIT_DIR_ENV, raising=False)
    assert process_pacer("http://x/v1", "k") is shared_pacer("http://x/v1", "k")
    monkeypatch.setenv(RATE_LIMIT_DIR_ENV, "  ")
    assert not isinstance(process_pacer("http://x/v1", "k"), MachinePacer)


@pytest.mark.parametrize(
    "damage",
    [
        b"{not json",
        b'{"written": 1}',
        b"[]",
        b"",
    ],
)
def test_a_damaged_file_starts_a_fresh_model(tmp_path: Path, damage: bytes) -> None:
    path = tmp_path / "pacer.json"
    path.write_bytes(damage)
    pacer = MachinePacer(path, probe=0)
    wait, ticket = pacer.reserve(0, 5.0)
    assert (wait, ticket is not None) == (0.0, True)
    assert json.loads(path.read_bytes())["_requests_spent"] == 1.0


def test_a_stale_state_or_one_from_before_a_reboot_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "pacer.json"
    pacer = MachinePacer(path, probe=0)
    for _ in range(10):
        _, ticket = pacer.reserve(0, 50.0)
    pacer.observe(200, headers(10, 0, 3600, now=50.0), ticket, 50.0, EPOCH + 50)  # empty
    assert pacer.reserve(0, 50.0)[1] is None
    # written in another boot (its monotonic clock started at another time): dropped
    state = json.loads(path.read_bytes())
    state["boot"] -= 3600
    path.write_text(json.dumps(state))
    assert MachinePacer(path, probe=0).reserve(0, 50.0)[1] is not None
    # a 429's wait puts the buckets' times in the future: that is not another boot
    pacer = MachinePacer(path, probe=0)
    for _ in range(10):
        _, ticket = pacer.reserve(0, 50.0)
    pacer.observe(429, headers(10, 0, 3600, now=50.0) | {"retry-after": "30"}, ticket, 50.0, EPOCH)
    assert MachinePacer(path, probe=0).reserve(0, 51.0)[1] is None
    # written more than STALE_AFTER ago (wall clock)
    for _ in range(10):
        pacer.reserve(0, 60.0)
    pacer.observe(200, headers(10, 0, 3600, now=60.0), ticket, 60.0, EPOCH + 60)
    state = json.loads(path.read_bytes())
    state["written"] -= STALE_AFTER + 1
    path.write_text(json.dumps(state))
    assert MachinePacer(path, probe=0).reserve(0, 60.0)[1] is not None


def test_one_request_of_a_process_asks_the_file_the_others_wait_their_time(tmp_path: Path) -> None:
    path = tmp_path / "pacer.json"
    pacer = MachinePacer(path, probe=0)
    for _ in range(10):  # it drew the whole bucket itself: nobody else draws
        _, ticket = pacer.reserve(0, 0.0)
    pacer.observe(200, headers(10, 0, 10, now=0.0), ticket, 0.0, EPOCH)  # empty, 1 a second
    wait, ticket = pacer.reserve(0, 0.0)
    assert ticket is None and wait == pytest.approx(1.0, rel=0.1)
    path.write_bytes(b"")  # were the file read, this fresh state would grant at once
    assert pacer.reserve(0, 0.5) == (pytest.approx(wait - 0.5), None)
    assert pacer.reserve(0, wait)[1] is not None  # its time: it reads the file again


def test_a_token_beyond_what_the_waiting_are_owed_goes_to_whoever_asks(tmp_path: Path) -> None:
    """One process waits at the head of the queue, asleep; the bucket refills past what it is owed:
    another process takes the surplus instead of leaving it unused."""
    path = tmp_path / "pacer.json"
    head, other = MachinePacer(path, probe=0), MachinePacer(path, probe=0)
    for _ in range(10):  # the machine drew the whole bucket itself
        _, ticket = head.reserve(0, 0.0)
    head.observe(200, headers(10, 0, 10, now=0.0), ticket, 0.0, EPOCH)  # empty, 1 a second
    assert head.reserve(0, 0.0)[1] is None  # queued first
    assert other.reserve(0, 0.1)[1] is None  # queued behind it
    assert other.reserve(0, 1.05)[1] is None  # one token: the head's
    assert other.reserve(0, 2.1)[1] is not None  # two: one is the head's, one is free
    assert head.reserve(0, 2.2)[1] is not None  # and the head's is still there


def test_a_forked_child_opens_its_own_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """flock belongs to the open file: a child sharing the parent's descriptor would share its lock."""
    pacer = MachinePacer(tmp_path / "pacer.json", probe=0)
    pacer.reserve(0, 1.0)
    parent_fd = pacer._fd
    monkeypatch.setattr(os, "getpid", lambda: -12345)
    pacer.reserve(0, 1.0)
    assert pacer._fd is not None and pacer._fd != parent_fd
    monkeypatch.undo()
    assert parent_fd is not None
    os.close(parent_fd)


@pytest.mark.parametrize("problem", ["a file", "below a file"])
def test_a_directory_that_cannot_hold_the_file_is_refused_at_construction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problem: str
) -> None:
    (tmp_path / "file").write_text("not a directory")
    target = tmp_path / "file" if problem == "a file" else tmp_path / "file" / "sub"
    monkeypatch.setenv(RATE_LIMIT_DIR_ENV, str(target))
    with pytest.raises(InputValidationError, match=RATE_LIMIT_DIR_ENV) as caught:
        AurousClient(KEY, base_url="http://127.0.0.1:9/v1")
    assert KEY not in str(caught.value)


def spent(path: Path) -> float:
    return float(json.loads(path.read_bytes())["_requests_spent"])


@pytest.mark.parametrize("how", ["deleted", "replaced", "folder deleted"])
def test_a_file_deleted_or_replaced_mid_run_is_followed_to_the_path(
    tmp_path: Path, how: str
) -> None:
    """Processes that start later use the file at the path: one that kept the old one would pace
    on a model of its own (measured before: two halves of a machine, and 429s)."""
    folder = tmp_path / "shared"
    path = folder / "pacer.json"
    early = MachinePacer(path, probe=0)
    early.reserve(0, 1.0)
    if how == "replaced":
        (folder / "new.json").write_bytes(b"")
        os.replace(folder / "new.json", path)
    else:
        path.unlink()
        if how == "folder deleted":
            folder.rmdir()
    late = MachinePacer(path, probe=0)
    late.reserve(0, 1.0)
    early.reserve(0, 1.0)
    assert spent(path) == 2.0  # both drew on the one file at the path


def test_a_stopped_lock_holder_stops_no_one(tmp_path: Path) -> None:
    """A process stopped while it holds the lock (Ctrl-Z, a debugger): the others pace on their
    own model for a while instead of waiting for it (measured before: 0 requests in 8 s, and an
    event loop blocked as long)."""
    import fcntl

    path = tmp_path / "pacer.json"
    pacer = MachinePacer(path, probe=0)
    pacer.reserve(0, 1.0)
    holder = os.open(path, os.O_RDWR)  # another open file description: flock sees another owner
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        started = time.monotonic()
        wait, ticket = pacer.reserve(0, 1.0)
        assert ticket is not None and wait == 0.0  # granted from this process's model
        assert time.monotonic() - started < 5.0  # a bound on LOCK_WAIT, never near it
        assert spent(path) == 1.0  # the file was left alone
        pacer.reserve(0, 1.0)  # and is not asked again at once
        fcntl.flock(holder, fcntl.LOCK_UN)
    finally:
        os.close(holder)


def test_a_file_that_cannot_be_written_fails_no_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk or a read-only remount under the file: this process paces on its own model
    (measured before: 125 of 150 items failed with a bare PermissionError)."""
    pacer = MachinePacer(tmp_path / "pacer.json", probe=0)
    pacer.reserve(0, 1.0)

    def refused(*_: object) -> int:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "pwrite", refused)
    for _ in range(3):
        assert pacer.reserve(0, 1.0)[1] is not None
    pacer.observe(200, headers(10, 5, 1, now=1.0), None, 1.0, EPOCH + 1)


def test_spellings_of_one_base_url_share_one_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RATE_LIMIT_DIR_ENV, str(tmp_path))
    same = [
        "https://api.aurous.example/v1",
        "https://API.Aurous.Example/v1/",
        "HTTPS://api.aurous.example:443/v1",
        "https://api.aurous.example.//v1",
    ]
    assert len({id(process_pacer(url, KEY)) for url in same}) == 1
    assert len({id(shared_pacer(url, KEY)) for url in same}) == 1
    assert process_pacer("https://api.aurous.example:8443/v1", KEY) is not process_pacer(
        same[0], KEY
    )


def test_a_relative_directory_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolved against each process's working directory, it would split the machine."""
    monkeypatch.setenv(RATE_LIMIT_DIR_ENV, "aurous-pacer")
    with pytest.raises(InputValidationError, match="absolute") as caught:
        AurousClient(KEY, base_url="http://127.0.0.1:9/v1")
    assert caught.value.param == RATE_LIMIT_DIR_ENV
