"""Candidate E of bench/batching_candidates.py: ONE inference process per host
that every gunicorn worker hands its decoded array to, batching across all
workers; and what both batching candidates share (the wire, the counters).

    python -m bench.batching_host SOCKET MODELS STATS_DIR MAX_ROWS WAIT_MS PPID

MODELS is ``name=path,...`` (joblib files). Started by the gunicorn master
(bench/batching_gunicorn.py); it ends when its parent does. One thread: a
selector over the listening Unix socket and one connection per worker (or
per worker thread). A message is a 4-byte length then a pickle: the request
``(name, rows)``, the answer ``(True, predictions)`` or ``(False, repr)``.
The model runs in this process's main thread, where SIGALRM works.
"""

from __future__ import annotations

import mmap
import os
import pickle
import selectors
import socket
import struct
import sys
import time
import warnings
from typing import Any

import joblib
import numpy as np

_LENGTH = struct.Struct("<I")
_COUNTS = struct.Struct("<QQ")  # batches, rows


class Counter:
    """Batches and rows of one model in one process, in a 16-byte file mapped
    once (a memory write per batch) that the driver reads from outside."""

    def __init__(self, directory: str, name: str) -> None:
        path = os.path.join(directory, f"{os.getpid()}-{name}.bin")
        with open(path, "w+b") as file:
            file.truncate(_COUNTS.size)
            self._map = mmap.mmap(file.fileno(), _COUNTS.size)
        self.batches = 0
        self.rows = 0

    def add(self, rows: int) -> None:
        self.batches += 1
        self.rows += rows
        self._map[:] = _COUNTS.pack(self.batches, self.rows)


def read_counts(directory: str) -> dict[str, tuple[int, int]]:
    """Per model name: (batches, rows) summed over every process."""
    totals: dict[str, tuple[int, int]] = {}
    for entry in os.scandir(directory):
        if not entry.name.endswith(".bin"):
            continue
        name = entry.name.removesuffix(".bin").split("-", 1)[1]
        with open(entry.path, "rb") as file:
            raw = file.read(_COUNTS.size)
        if len(raw) == _COUNTS.size:
            batches, rows = _COUNTS.unpack(raw)
            old = totals.get(name, (0, 0))
            totals[name] = (old[0] + batches, old[1] + rows)
    return totals


def send(sock: socket.socket, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _exactly(sock: socket.socket, size: int) -> bytes | None:
    data = sock.recv(size, socket.MSG_WAITALL)
    return data if len(data) == size else None


def receive(sock: socket.socket) -> Any | None:
    """The next message, or None when the peer has gone."""
    head = _exactly(sock, _LENGTH.size)
    if head is None:
        return None
    body = _exactly(sock, _LENGTH.unpack(head)[0])
    return None if body is None else pickle.loads(body)


def predict_batch(model: Any, parts: list[np.ndarray]) -> list[tuple[bool, Any]]:
    """One call for every part, split back; if it raises, each part alone, so
    only the guilty one answers with the error."""
    try:
        out = model.predict(np.concatenate(parts) if len(parts) > 1 else parts[0])
    except Exception:  # noqa: BLE001 - retried part by part below
        answers = []
        for part in parts:
            try:
                answers.append((True, model.predict(part)))
            except Exception as exc:  # noqa: BLE001 - the part's own answer
                answers.append((False, repr(exc)))
        return answers
    bounds = np.cumsum([len(p) for p in parts])[:-1]
    return [(True, chunk) for chunk in np.split(out, bounds)]


class _Pending:
    def __init__(self) -> None:
        self.items: list[tuple[socket.socket, np.ndarray]] = []
        self.rows = 0
        self.first = 0.0


def serve(
    path: str,
    models: dict[str, Any],
    stats: str,
    *,
    max_rows: int,
    wait: float,
    parent: int,
) -> None:
    counters = {name: Counter(stats, name) for name in models}
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    listener.listen(256)
    os.rename(path + ".tmp", path)  # the path appears once it accepts
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    pending: dict[str, _Pending] = {}
    while os.getppid() == parent:
        if not pending:
            timeout = 1.0
        else:
            oldest = min(p.first for p in pending.values())
            timeout = max(0.0, oldest + wait - time.monotonic()) if wait else 0.0
        events = selector.select(timeout)
        for key, _ in events:
            if key.fileobj is listener:
                conn, _ = listener.accept()
                selector.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            message = receive(conn)
            if message is None:
                selector.unregister(conn)
                conn.close()
                continue
            name, rows = message
            batch = pending.get(name)
            if batch is None:
                batch = pending[name] = _Pending()
                batch.first = time.monotonic()
            batch.items.append((conn, rows))
            batch.rows += len(rows)
        now = time.monotonic()
        for name in list(pending):
            batch = pending[name]
            # wait 0: run as soon as nothing more is waiting to be read
            due = not events if not wait else now >= batch.first + wait
            if batch.rows >= max_rows or due:
                del pending[name]
                answers = predict_batch(models[name], [r for _, r in batch.items])
                counters[name].add(batch.rows)
                for (conn, _), answer in zip(batch.items, answers, strict=True):
                    send(conn, answer)


def main(argv: list[str]) -> None:
    # as bench/reference_wsgi.py: arrays go to DataFrame-fitted models
    warnings.filterwarnings(
        "ignore", message="X does not have valid feature names", category=UserWarning
    )
    path, spec, stats, max_rows, wait_ms, parent = argv
    models = {
        name: joblib.load(file)
        for name, file in (item.split("=", 1) for item in spec.split(",") if item)
    }
    serve(
        path,
        models,
        stats,
        max_rows=int(max_rows),
        wait=float(wait_ms) / 1000,
        parent=int(parent),
    )


if __name__ == "__main__":
    main(sys.argv[1:])
