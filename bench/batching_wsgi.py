"""The app of bench/batching_candidates.py: bench/reference_wsgi.py itself
(orjson -> float array in schema order -> predict -> orjson), with the
``predict`` of the models named in BENCH_BATCH_MODELS routed by
BENCH_BATCH_MODE:

- ``inline`` (or no model named): predict in the request's own thread;
- ``thread``: one batcher thread per model in each worker process; the
  request thread queues its decoded array and waits on a Future;
- ``host``: the host's one inference process (bench/batching_host.py) over
  a Unix socket (BENCH_BATCH_SOCKET), one connection per worker thread.

BENCH_BATCH_MAX_ROWS and BENCH_BATCH_WAIT_MS shape a batch; a wait of 0
takes what queued while the model was busy and never waits for more.
Batchers count batches and rows under BENCH_BATCH_STATS_DIR.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from concurrent.futures import Future
from typing import Any

import numpy as np

from bench import reference_wsgi
from bench.batching_host import Counter, predict_batch, receive, send

application = reference_wsgi.application


class ThreadBatcher:
    """Stands in for the model: ``predict`` joins the process's next batch."""

    def __init__(self, name: str, model: Any, *, max_rows: int, wait: float) -> None:
        self.name = name
        self.model = model
        self.max_rows = max_rows
        self.wait = wait
        self._queue: queue.SimpleQueue[tuple[np.ndarray, Future]] = queue.SimpleQueue()
        self._pid = 0
        self._starting = threading.Lock()
        self._counter: Counter | None = None

    def _start(self) -> None:
        # Imported in the master and forked: the thread is the worker's own.
        with self._starting:
            if self._pid != os.getpid():
                self._counter = Counter(os.environ["BENCH_BATCH_STATS_DIR"], self.name)
                threading.Thread(target=self._run, daemon=True).start()
                self._pid = os.getpid()

    def predict(self, rows: np.ndarray) -> np.ndarray:
        if self._pid != os.getpid():
            self._start()
        future: Future = Future()
        self._queue.put((rows, future))
        return future.result()

    def _collect(self) -> list[tuple[np.ndarray, Future]]:
        batch = [self._queue.get()]
        count = len(batch[0][0])
        deadline = time.monotonic() + self.wait
        while count < self.max_rows:
            try:
                if self.wait:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    item = self._queue.get(timeout=left)
                else:
                    item = self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(item)
            count += len(item[0])
        return batch

    def _run(self) -> None:
        while True:
            batch = self._collect()
            answers = predict_batch(self.model, [rows for rows, _ in batch])
            self._counter.add(sum(len(rows) for rows, _ in batch))
            for (_, future), (ok, value) in zip(batch, answers, strict=True):
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(RuntimeError(value))


class HostModel:
    """Stands in for the model: ``predict`` asks the host's inference process."""

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        self._local = threading.local()

    def _socket(self) -> socket.socket:
        sock = getattr(self._local, "sock", None)
        if sock is None or self._local.pid != os.getpid():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.path)
            self._local.sock, self._local.pid = sock, os.getpid()
        return sock

    def predict(self, rows: np.ndarray) -> np.ndarray:
        sock = self._socket()
        send(sock, (self.name, rows))
        answer = receive(sock)
        if answer is None:
            raise ConnectionError("the inference process has gone")
        ok, value = answer
        if not ok:
            raise RuntimeError(value)
        return value


def _route() -> None:
    mode = os.environ.get("BENCH_BATCH_MODE", "inline")
    names = filter(None, os.environ.get("BENCH_BATCH_MODELS", "").split(","))
    max_rows = int(os.environ.get("BENCH_BATCH_MAX_ROWS", "32"))
    wait = float(os.environ.get("BENCH_BATCH_WAIT_MS", "2")) / 1000
    for name in names:
        model, features = reference_wsgi.MODELS[name]
        if mode == "thread":
            stand_in: Any = ThreadBatcher(name, model, max_rows=max_rows, wait=wait)
        elif mode == "host":
            stand_in = HostModel(name, os.environ["BENCH_BATCH_SOCKET"])
        else:
            continue
        reference_wsgi.MODELS[name] = (stand_in, features)


_route()
