"""The prediction a gunicorn worker is inside, on disk, for when it dies there.

A model can end its process where no exception reaches Python (os._exit, a
segfault) or hold the interpreter in native code where no signal does (the
time limit is SIGALRM). So before a model predicts, the worker writes which
version and request it is serving, and its deadline, into its own small file
(``<pid>.json``), and empties it after. The file is mapped into the worker's
memory once: a note is a memory write, no system call (writing the file
each time cost a prediction measurably under load), and what is written
stays readable by other processes after the worker dies. Its layout: the
length of the JSON as 4 bytes, then the JSON; length 0 = not inside.

The watchdog (``python -m registry.inflight DIR MASTER_PID``, started by the
gunicorn master) SIGKILLs a worker still inside a prediction GRACE_SECONDS
past its limit; the master's child_exit hook reads the file of every worker
that exits (``take``), writes the request's log row and counts the crash
against the version. Only the dead worker held the client's socket: that
client gets its connection closed, without a response.
"""

from __future__ import annotations

import json
import mmap
import os
import signal
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypedDict

GRACE_SECONDS = 1.0
_POLL_SECONDS = 0.1

_SIZE = 4096
_LENGTH = struct.Struct("<I")
_file: tuple[int, mmap.mmap] | None = None  # (pid, mapping): a fork maps its own
_creating = threading.Lock()


class InFlight(TypedDict):
    request_id: str
    version_id: int
    slug: str
    number: int
    started: float  # time.time()
    deadline: float | None  # time.monotonic(), the same clock in every process


def _mapping(directory: str) -> mmap.mmap:
    global _file
    pid = os.getpid()
    mapped = _file
    if mapped is not None and mapped[0] == pid:
        return mapped[1]
    with _creating:
        # Threads of one worker (gthread) share the file: it is made once,
        # and never shortened while mapped (a write past its end is SIGBUS).
        if _file is None or _file[0] != pid:
            path = os.path.join(directory, f"{pid}.json")
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < _SIZE:
                    os.ftruncate(fd, _SIZE)
                note = mmap.mmap(fd, _SIZE)
            finally:
                os.close(fd)
            note[: _LENGTH.size] = _LENGTH.pack(0)
            _file = (pid, note)
        return _file[1]


def _parsed(raw: bytes) -> InFlight | None:
    if len(raw) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack_from(raw)
    if not 0 < length <= len(raw) - _LENGTH.size:
        return None
    try:
        entry = json.loads(raw[_LENGTH.size : _LENGTH.size + length])
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and "version_id" in entry else None


@contextmanager
def inside(
    directory: str,
    *,
    request_id: str,
    version_id: int,
    slug: str,
    number: int,
    limit: float,
) -> Iterator[None]:
    """Marks the worker as inside a prediction while the block runs."""
    if not directory:
        yield
        return
    note = _mapping(directory)
    entry: InFlight = {
        "request_id": request_id,
        "version_id": version_id,
        "slug": slug,
        "number": number,
        "started": time.time(),
        "deadline": time.monotonic() + limit + GRACE_SECONDS if limit > 0 else None,
    }
    data = json.dumps(entry).encode()[: _SIZE - _LENGTH.size]
    note[_LENGTH.size : _LENGTH.size + len(data)] = data
    note[: _LENGTH.size] = _LENGTH.pack(len(data))  # published last
    try:
        yield
    finally:
        note[: _LENGTH.size] = _LENGTH.pack(0)


def take(directory: str, pid: int) -> InFlight | None:
    """What the exited worker ``pid`` was inside, if anything; its file goes."""
    if not directory:
        return None
    path = Path(directory) / f"{pid}.json"
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    path.unlink(missing_ok=True)
    return _parsed(raw)


def overdue(entry: InFlight) -> bool:
    deadline = entry.get("deadline")
    return deadline is not None and time.monotonic() >= deadline


def watch(directory: str, master_pid: int) -> None:
    """Kill workers past their deadline, until the master is gone."""
    killed: set[tuple[int, str]] = set()
    while os.getppid() == master_pid:
        for path in Path(directory).glob("*.json"):
            try:
                entry = _parsed(path.read_bytes())
            except OSError:
                continue
            if entry is None or not overdue(entry):
                continue
            key = (int(path.stem), str(entry.get("request_id")))
            if key not in killed:
                killed.add(key)
                try:
                    os.kill(key[0], signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        time.sleep(_POLL_SECONDS)


if __name__ == "__main__":
    watch(sys.argv[1], int(sys.argv[2]))
