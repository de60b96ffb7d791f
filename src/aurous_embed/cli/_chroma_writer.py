"""Chroma writes of ``index`` in a process of their own, so they do not stop the embedding.

Chroma's local store (``PersistentClient``, Rust bindings) holds the GIL for the whole of an
``upsert``: about 2.5 ms of HNSW work per 2,048-float entry, during which no other thread of the
process runs. Measured while indexing 2,100 files: the worker threads that send the requests and
read the answers stood still for about a third of the run. A child process that owns the writes
takes that time off the embedding process's GIL.

:class:`WriterProcess` looks like the collection to :func:`aurous_embed._indexing.index_folder`:
``get`` and ``metadata`` are read in this process (before any write), ``upsert``, ``delete`` and
``modify`` are sent to the child, in order, each answered before the next is sent (an error in the
child, including one opening the collection, is raised here as one line: the child prints no
traceback). The child ignores Ctrl-C and runs in its own session: an interrupted run
still has every write it sent applied. Closing (or losing) its standard input ends the child once
it has written what it was sent. Run as ``python -m aurous_embed.cli._chroma_writer DB COLLECTION``.
"""

from __future__ import annotations

import contextlib
import pickle
import signal
import struct
import subprocess
import sys
import threading
from typing import IO, Any

from aurous_embed.cli._base import StoreError

_LENGTH = struct.Struct("!Q")


def _send(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """The next message; ``EOFError`` when the other side is gone (or sent half a message)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class WriterError(StoreError):
    """A write the child could not do or a collection it could not open (Chroma's error, by type
    and first line), or a child that ended before answering."""


def _describe(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class WriterProcess:
    """A Chroma collection whose writes go to a child process (see the module docstring)."""

    def __init__(self, collection: Any, db: str) -> None:
        self._collection = collection
        self._db = db
        self._lock = threading.Lock()
        # Started at the first write: a run with nothing to write (an unchanged folder) does not
        # pay for a second interpreter importing Chroma (about 1.5 s).
        self._process: subprocess.Popen[bytes] | None = None

    def _child(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aurous_embed.cli._chroma_writer",
                    self._db,
                    self._collection.name,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,  # Ctrl-C at a terminal goes to the parent only
            )
        return self._process

    # --- reads, in this process --------------------------------------------------------------

    @property
    def metadata(self) -> Any:
        return self._collection.metadata

    def get(self, **options: Any) -> Any:
        return self._collection.get(**options)

    # --- writes, in the child ----------------------------------------------------------------

    def upsert(self, **options: Any) -> None:
        self._call("upsert", options)

    def delete(self, **options: Any) -> None:
        self._call("delete", options)

    def modify(self, **options: Any) -> None:
        self._call("modify", options)

    def _call(self, method: str, options: dict[str, Any]) -> None:
        with self._lock:
            process = self._child()
            assert process.stdin is not None and process.stdout is not None
            try:
                _send(process.stdin, (method, options))
                answer = _receive(process.stdout)
            except (EOFError, OSError):
                code = process.poll()
                raise WriterError(f"the Chroma writer process ended (exit status {code})") from None
        if answer is not None:
            raise WriterError(answer)

    def close(self) -> None:
        """Let the child finish what it was sent, and wait for it."""
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> WriterProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(db: str, name: str, requests: IO[bytes], answers: IO[bytes]) -> None:
    """Apply each write read from ``requests`` to the collection and answer ``None`` or the error
    as one line, until ``requests`` ends. A collection that cannot be opened (a full disk, a
    collection deleted meanwhile) is the answer to every write: no exception leaves this."""
    try:
        import chromadb

        import aurous_embed.chroma  # noqa: F401  # registers the collection's embedding function

        collection: Any = chromadb.PersistentClient(path=db).get_collection(name)
        failure = None
    except Exception as exc:
        collection = None
        failure = f"the Chroma writer cannot open collection {name!r} at {db}: {_describe(exc)}"
    while True:
        try:
            method, options = _receive(requests)
        except (EOFError, OSError):  # the parent is done (or gone)
            return
        except Exception as exc:  # a message that cannot be read: answered, the next may be
            answer: str | None = f"the Chroma writer cannot read a request: {_describe(exc)}"
        else:
            answer = failure or _apply(collection, method, options)
        with contextlib.suppress(OSError):  # a parent that is gone: keep writing what came
            _send(answers, answer)


def _apply(collection: Any, method: str, options: dict[str, Any]) -> str | None:
    try:
        getattr(collection, method)(**options)
    except Exception as exc:  # reported to the parent, which raises it
        return _describe(exc)
    return None


def main() -> None:  # pragma: no cover - run in the child, tested through the CLI
    import os

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when writing ends
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever Chroma prints goes to standard error, not into the answers
    db, name = sys.argv[1], sys.argv[2]
    serve(db, name, sys.stdin.buffer, answers)


if __name__ == "__main__":  # pragma: no cover
    main()
