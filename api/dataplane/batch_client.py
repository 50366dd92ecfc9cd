"""A worker's side of the host's batch process (api.dataplane.batch_host).

``remote()`` stands in for an in-process Batcher: the same ``expect``,
``unexpect`` and ``predict``, across a Unix socket, one connection per worker
thread (a sync worker has one request in flight, so one connection). The
worker has decoded and validated the request before it sends the rows, so the
batch process only ever sees good input.

When the batch process cannot be reached, or dies under a request, the worker
predicts the request itself, as without batching: a batch process that is
restarting costs throughput, never a request. When it does not answer in time
the request is a 504, as a model past its limit is.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from django.conf import settings

from registry.loading import LoadedModel

from ..errors import ModelRejectedInput, PredictionTimeout
from .batch_wire import reachable, receive, send
from .batching import STUCK_GRACE_SECONDS, Job

logger = logging.getLogger(__name__)

# After a failed connect, requests are predicted alone for this long before
# the next try: a batch process down costs one connect attempt a second.
_RETRY_SECONDS = 1.0


class _Connection(threading.local):
    sock: socket.socket | None = None
    pid: int = 0


_connection = _Connection()
_unreachable_until = 0.0


def _connected(path: str) -> socket.socket | None:
    """This thread's connection to the batch process, made on first use (and
    again in a forked worker, or after one was lost)."""
    global _unreachable_until
    if _connection.sock is not None and _connection.pid == os.getpid():
        return _connection.sock
    _connection.sock = None
    if time.monotonic() < _unreachable_until:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with reachable(path) as short:
            sock.connect(short)
    except OSError as exc:
        sock.close()
        _unreachable_until = time.monotonic() + _RETRY_SECONDS
        logger.warning(
            "batch process unreachable at %s (%s): predicting alone", path, exc
        )
        return None
    _connection.sock, _connection.pid = sock, os.getpid()
    return sock


def _drop() -> None:
    if _connection.sock is not None:
        _connection.sock.close()
    _connection.sock = None


def send_shadows(path: str, jobs: list[Any]) -> bool:
    """Hand shadow jobs to the batch process (no answer is awaited); False
    when it cannot be reached, and the worker runs the jobs itself."""
    sock = _connected(path)
    if sock is None:
        return False
    try:
        send(sock, ("shadows", jobs))
    except OSError:
        _drop()
        return False
    return True


class RemoteBatcher:
    """The batcher of one version, in the host's batch process."""

    def __init__(
        self,
        sock: socket.socket,
        loaded: LoadedModel,
        max_rows: int,
        max_wait_ms: float,
    ) -> None:
        self.sock = sock
        self.loaded = loaded
        self.max_rows = max_rows
        self.max_wait_ms = max_wait_ms
        self._lost = False

    def expect(self) -> None:
        self._send(("expect", self.loaded.ref, self.max_rows, self.max_wait_ms))

    def unexpect(self) -> None:
        self._send(("unexpect",))

    def predict(self, job: Job) -> Job:
        request = ("predict", job.data, job.rows, job.proba, job.request_id)
        limit = settings.MODELHUB_PREDICT_TIMEOUT
        # The batch process retries a batch past its limit request by request.
        patience = 2 * limit + STUCK_GRACE_SECONDS if limit > 0 else None
        try:
            if self._lost:
                raise EOFError("lost before the rows were sent")
            send(self.sock, request)
            self.sock.settimeout(patience)
            try:
                reply = receive(self.sock)
            finally:
                self.sock.settimeout(None)
        except TimeoutError:
            _drop()  # its answer, if it ever comes, must not be the next one's
            ref = self.loaded.ref
            raise PredictionTimeout(
                f"'{ref.slug}' v{ref.number} took longer than the {limit:g} s limit."
            ) from None
        except (OSError, EOFError) as exc:
            _drop()
            logger.warning("batch process lost (%s): predicting alone", exc)
            return self._alone(job)
        kind = reply[0]
        if kind == "ok":
            _, predictions, probabilities, size, ms = reply
            job.finish(predictions, probabilities, size, ms)
            return job
        if kind == "rejected":
            raise ModelRejectedInput(reply[1])
        if kind == "timeout":
            raise PredictionTimeout(reply[1])
        # "unavailable": it could not load the version this worker serves.
        return self._alone(job)

    def _alone(self, job: Job) -> Job:
        from .infer import run_model  # infer imports this module

        started = time.perf_counter()
        predictions, probabilities = run_model(
            self.loaded, job.data, proba=job.proba, request_id=job.request_id
        )
        job.finish(
            predictions, probabilities, 1, (time.perf_counter() - started) * 1000
        )
        return job

    def _send(self, message: tuple[Any, ...]) -> None:
        if self._lost:
            return
        try:
            send(self.sock, message)
        except OSError:
            _drop()
            self._lost = True


def remote(
    path: str, loaded: LoadedModel, max_rows: int, max_wait_ms: float
) -> RemoteBatcher | None:
    """The batch process's batcher for ``loaded``; None when it cannot be
    reached (the request is predicted alone)."""
    sock = _connected(path)
    if sock is None:
        return None
    return RemoteBatcher(sock, loaded, max_rows, max_wait_ms)
