"""The prediction a gunicorn worker is inside, on disk, for when it dies there.

A model can end its process where no exception reaches Python (os._exit, a
segfault) or hold the interpreter in native code where no signal does (the
time limit is SIGALRM). So before a model predicts, the worker writes which
version and request it is serving, and its deadline, over its own small file
(``<pid>.json``), and empties it after: two syscalls, ~10 µs.

The watchdog (``python -m registry.inflight DIR MASTER_PID``, started by the
gunicorn master) SIGKILLs a worker still inside a prediction GRACE_SECONDS
past its limit; the master's child_exit hook reads the file of every worker
that exits (``take``), writes the request's log row and counts the crash
against the version. Only the dead worker held the client's socket: that
client gets its connection closed, without a response.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypedDict

GRACE_SECONDS = 1.0
_POLL_SECONDS = 0.1

_file: tuple[int, int] | None = None  # (pid, descriptor): a fork opens its own


class InFlight(TypedDict):
    request_id: str
    version_id: int
    slug: str
    number: int
    started: float  # time.time()
    deadline: float | None  # time.monotonic(), the same clock in every process


def _descriptor(directory: str) -> int:
    global _file
    pid = os.getpid()
    if _file is None or _file[0] != pid:
        path = os.path.join(directory, f"{pid}.json")
        _file = (pid, os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600))
    return _file[1]


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
    fd = _descriptor(directory)
    entry: InFlight = {
        "request_id": request_id,
        "version_id": version_id,
        "slug": slug,
        "number": number,
        "started": time.time(),
        "deadline": time.monotonic() + limit + GRACE_SECONDS if limit > 0 else None,
    }
    os.pwrite(fd, json.dumps(entry).encode(), 0)
    try:
        yield
    finally:
        os.ftruncate(fd, 0)


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
    try:
        entry = json.loads(raw) if raw.strip() else None
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and "version_id" in entry else None


def overdue(entry: InFlight) -> bool:
    deadline = entry.get("deadline")
    return deadline is not None and time.monotonic() >= deadline


def watch(directory: str, master_pid: int) -> None:
    """Kill workers past their deadline, until the master is gone."""
    killed: set[tuple[int, str]] = set()
    while os.getppid() == master_pid:
        for path in Path(directory).glob("*.json"):
            try:
                raw = path.read_bytes()
                entry = json.loads(raw) if raw.strip() else None
            except (OSError, ValueError):
                continue
            if not isinstance(entry, dict) or not overdue(entry):  # type: ignore[arg-type]
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
