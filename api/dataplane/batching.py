"""Adaptive batching: requests to one version predicted in one call.

A forest costs about the same to predict eight rows as one, so under
concurrency most of a model-bound worker's CPU is per-call overhead. When a
model's route turns batching on (``batch_max_rows`` > 0), each loaded version
gets a batcher in the process: requests already decoded and validated join
its queue, and one thread of the batcher's own predicts whatever waits, up to
``batch_max_rows`` rows, in one call, then hands each request its own rows of
the result. It waits up to ``batch_max_wait_ms`` for more only while other
requests to the same version are on their way (being decoded): a lone
request never waits.

Promises, each tested (tests/api/dataplane/test_batching.py):
- results are the bits the request gets alone: only estimators whose rows are
  computed independently are batched (registry.row_independence);
- a bad request never fails another: requests join only once decoded; a
  batch whose call raises is predicted again in halves, down to the guilty
  request alone, which gets its 422; one past the time limit is predicted
  again one request at a time, so only the slow one gets its 504;
- each request keeps its own log row, request id and time limit, and learns
  the batch size it rode in; a batch never mixes versions.

Under gunicorn the batchers live in one process per host
(api.dataplane.batch_host), fed by every worker: in one process, a forest's
predict and the request threads take turns on one GIL (bench/README.md).
Without it (runserver, tests in process), a process that runs several
requests at once batches them itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from monitoring import metrics
from registry.loading import LoadedModel, VersionRef
from registry.row_independence import rows_are_independent

from ..errors import ModelRejectedInput, PredictionTimeout

logger = logging.getLogger(__name__)

# How long past its own limit a request waits for a batcher stuck in code no
# exception reaches (a C call); then it is a 504 and the watchdog's turn.
STUCK_GRACE_SECONDS = 1.0


@dataclass(eq=False)
class Job:
    """One request's part of a batch."""

    data: Any
    rows: int
    proba: bool
    request_id: str
    done: threading.Event = field(default_factory=threading.Event)
    predictions: Any = None
    probabilities: Any = None
    error: BaseException | None = None
    batch_size: int = 0
    model_ms: float = 0.0

    def finish(
        self, predictions: Any, probabilities: Any, size: int, ms: float
    ) -> None:
        self.predictions, self.probabilities = predictions, probabilities
        self.batch_size, self.model_ms = size, ms
        self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


class Batcher:
    """The queue and the thread of one loaded version in this process."""

    def __init__(self, loaded: LoadedModel, max_rows: int, max_wait_ms: float) -> None:
        self.loaded = loaded
        self.max_rows = max_rows
        self.max_wait_ms = max_wait_ms
        self._queue: deque[Job] = deque()
        self._condition = threading.Condition()
        self._coming = 0  # requests to this version being decoded
        self._closed = False
        threading.Thread(
            target=self._run,
            name=f"modelhub-batcher-{loaded.ref.slug}-v{loaded.ref.number}",
            daemon=True,
        ).start()

    @property
    def key(self) -> tuple[LoadedModel, int, float]:
        return (self.loaded, self.max_rows, self.max_wait_ms)

    def close(self) -> None:
        """Replaced (new settings, a reload): the thread ends once its queue
        is empty."""
        with self._condition:
            self._closed = True
            self._condition.notify()

    def expect(self) -> None:
        """A request to this version is being decoded: worth waiting for."""
        with self._condition:
            self._coming += 1

    def unexpect(self) -> None:
        """It failed before joining (a 400): stop waiting for it."""
        with self._condition:
            self._coming -= 1
            self._condition.notify()

    def predict(self, job: Job) -> Job:
        """Join the queue (after ``expect``) and wait for this job's rows."""
        with self._condition:
            self._coming -= 1
            self._queue.append(job)
            self._condition.notify()
        limit = settings.MODELHUB_PREDICT_TIMEOUT
        # A batch past its limit is predicted again request by request, each
        # under its own limit: at most about twice the limit in all.
        patience = 2 * limit + STUCK_GRACE_SECONDS if limit > 0 else None
        if not job.done.wait(patience):
            ref = self.loaded.ref
            raise PredictionTimeout(
                f"'{ref.slug}' v{ref.number} took longer than the {limit:g} s limit."
            )
        if job.error is not None:
            raise job.error
        return job

    def _run(self) -> None:
        while True:
            batch = self._collect()
            if not batch:
                return
            try:
                self._predict(batch)
            except BaseException as exc:  # noqa: BLE001 - the thread must live on
                logger.exception("batcher of %s failed", self.loaded.ref.slug)
                for job in batch:
                    if not job.done.is_set():
                        job.fail(exc)

    def _collect(self) -> list[Job]:
        """The next batch: what waits, and the requests already on their way
        when it began (up to the wait). Requests that start later go in the
        next batch: waiting for them too kept the model idle for the whole
        wait under steady load, while the queue fills during a predict."""
        with self._condition:
            while not self._queue:
                if self._closed:
                    return []
                self._condition.wait()
            batch = [self._queue.popleft()]
            rows = batch[0].rows
            deadline = time.monotonic() + self.max_wait_ms / 1000
            awaited: int | None = None  # counted once the queue is taken
            while rows < self.max_rows:
                if self._queue:
                    if rows + self._queue[0].rows > self.max_rows:
                        break
                    job = self._queue.popleft()
                    batch.append(job)
                    rows += job.rows
                    if awaited:
                        awaited -= 1
                    continue
                # The queue is taken: what may still join is what is coming
                # now (fewer, when one of them failed to decode).
                awaited = self._coming if awaited is None else awaited
                awaited = min(awaited, self._coming)
                remaining = deadline - time.monotonic()
                if awaited <= 0 or remaining <= 0:
                    break
                self._condition.wait(remaining)
            return batch

    def _predict(self, batch: list[Job]) -> None:
        from .infer import run_model  # infer imports this module

        proba = any(job.proba for job in batch)
        started = time.perf_counter()
        try:
            data = concatenate([job.data for job in batch])
            predictions, probabilities = run_model(
                self.loaded, data, proba=proba, request_id=batch[0].request_id
            )
        except (ModelRejectedInput, PredictionTimeout, ValueError, TypeError) as exc:
            if len(batch) == 1:
                batch[0].fail(exc)
                return
            if isinstance(exc, PredictionTimeout):
                parts = [[job] for job in batch]  # each under its own limit
            else:
                # Halves, until only the guilty are alone: the innocent still
                # share calls (one bad row in sixteen costs eight more calls,
                # not sixteen), and a flood of bad rows cannot make every
                # request a call of its own.
                middle = len(batch) // 2
                parts = [batch[:middle], batch[middle:]]
            for part in parts:
                self._predict(part)
            return
        elapsed = (time.perf_counter() - started) * 1000
        ref = self.loaded.ref
        metrics.observe_batch(ref.slug, ref.private, len(batch))
        start = 0
        for job in batch:
            rows = slice(start, start + job.rows)
            start += job.rows
            job.finish(
                rows_of(predictions, rows),
                rows_of(probabilities, rows) if job.proba else None,
                len(batch),
                elapsed,
            )


def concatenate(parts: list[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    import pandas as pd

    return pd.concat(parts, ignore_index=True)


def rows_of(output: Any, rows: slice) -> Any:
    """A request's rows of a batch's output: an array, or a list of arrays
    (a multi-output classifier's probabilities)."""
    if output is None:
        return None
    if isinstance(output, list):
        return [part[rows] for part in output]
    return output[rows]


# One batcher per loaded version, made on first use -------------------------

_batchers: dict[int, Batcher] = {}
_making = threading.Lock()


def batcher_for(loaded: LoadedModel, route: VersionRef) -> Any:
    """The batcher of the version that answers, with the route's current
    settings (``route``: the ref just resolved; ``loaded.ref`` is the one
    it was loaded with): the host's batch process's under gunicorn
    (api.dataplane.batch_client), else one in this process when it runs
    several requests at once. None when its requests are predicted alone:
    batching off for the route, a model whose bits would change, or no
    batcher to reach."""
    if route.batch_max_rows <= 0 or not predicts_rows_alone(loaded):
        return None
    if settings.MODELHUB_BATCH_SOCKET:
        from . import batch_client  # it imports this module

        return batch_client.remote(
            settings.MODELHUB_BATCH_SOCKET,
            loaded,
            route.batch_max_rows,
            route.batch_max_wait_ms,
        )
    if settings.MODELHUB_THREADS <= 1:
        return None
    return local_batcher(loaded, route.batch_max_rows, route.batch_max_wait_ms)


def predicts_rows_alone(loaded: LoadedModel) -> bool:
    """Whether each row's prediction depends on that row only, so rows of
    several requests may share one call."""
    independent = loaded.extra.get("rows_are_independent")
    if independent is None:
        independent = rows_are_independent(loaded.estimator)
        loaded.extra["rows_are_independent"] = independent
    return independent


def local_batcher(loaded: LoadedModel, max_rows: int, max_wait_ms: float) -> Batcher:
    """This process's batcher for ``loaded`` with these settings; one with
    other settings (or for an earlier load) is closed and replaced."""
    wanted = (loaded, max_rows, max_wait_ms)
    batcher = _batchers.get(loaded.ref.id)
    if batcher is not None and batcher.key == wanted:
        return batcher
    with _making:
        batcher = _batchers.get(loaded.ref.id)
        if batcher is None or batcher.key != wanted:
            if batcher is not None:
                batcher.close()
            batcher = Batcher(loaded, max_rows, max_wait_ms)
            _batchers[loaded.ref.id] = batcher
        return batcher
