"""Shadow predictions: a traffic policy's shadow version predicts every
unpinned request after the client's response is sent, and its outcome is
logged as a row of its own (route ``shadow``, the same request id) with how
it compares to what the client was served. It is never returned, and a
shadow that fails fails only its own row.

Under gunicorn the worker hands the job (the body, what was served) to the
host's batch process (api.dataplane.batch_host) and takes its next request.
There the jobs wait in a queue and are predicted in turn by the shadow
process (api.dataplane.shadow_host), which runs only on CPU time the host
leaves idle; jobs past ``QUEUE_SIZE`` waiting are skipped and counted
(metric). Where no batch process can be reached (runserver, tests, a batch
process restarting) the worker predicts the shadow itself, after the
response and its log row; then shadows may take at most
MODELHUB_SHADOW_MAX_SHARE of the worker's time, measured with a ten-second
time constant, and the rest are skipped and counted.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import queue as queues
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from monitoring import metrics
from monitoring.kept import keep
from monitoring.record import PredictionRecord
from monitoring.requestlog import LogEntry, writer
from registry import serving
from registry.exceptions import RegistryError
from registry.loading import LoadedModel, VersionRef

from ..errors import DOMAIN_ERRORS, status_for
from .traffic import SHADOW

logger = logging.getLogger(__name__)

# Seconds over which a budget is measured: in a worker, long enough to let a
# quiet worker's shadows through in bursts; in the shadow process short, so
# its share holds from second to second and no burst crowds the workers.
WORKER_TIME_CONSTANT = 10.0
PROCESS_TIME_CONSTANT = 1.0
QUEUE_SIZE = 1000  # shadow jobs waiting in the batch process
BATCH_JOBS = 64  # jobs handed to the shadow process at once, at most
SEND_WINDOW_SECONDS = 0.02  # a worker's shadow jobs are sent this often

# The shadow process's answer to a batch of jobs: their log rows, in order,
# and the CPU seconds it spent on them; None when no process could take them.
Predict = Callable[[list["ShadowJob"]], tuple[list[LogEntry], float] | None]


@dataclass(frozen=True)
class ShadowJob:
    """What a shadow needs, detached from the request: picklable."""

    ref: VersionRef
    body: bytes
    content_type: str
    protocol: str  # "rest" or "v2"
    header_length: str | None
    served: Any
    request_id: str
    key_name: str


class Budget:
    """Seconds spent on shadows, decaying exponentially: the spend of the
    last ~``time_constant`` seconds against the share allowed."""

    def __init__(self, time_constant: float = WORKER_TIME_CONSTANT) -> None:
        self._time_constant = time_constant
        self._spent = 0.0
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def allows(self) -> bool:
        return self.pause() == 0.0

    def pause(self) -> float | None:
        """Seconds until the budget allows again (0 when it does now); None
        when it never will (a share of 0)."""
        allowed = settings.MODELHUB_SHADOW_MAX_SHARE * self._time_constant
        if allowed <= 0:
            return None
        with self._lock:
            spent = self._decayed(time.monotonic())
        if spent < allowed:
            return 0.0
        return self._time_constant * math.log(spent / allowed)

    def spend(self, seconds: float) -> None:
        with self._lock:
            self._spent = self._decayed(time.monotonic()) + seconds

    def _decayed(self, now: float) -> float:
        self._spent *= math.exp(-(now - self._at) / self._time_constant)
        self._at = now
        return self._spent

    def reset(self) -> None:
        with self._lock:
            self._spent, self._at = 0.0, time.monotonic()


budget = Budget()


def run(
    shadow: VersionRef, decoder: Any, served: Any, record: PredictionRecord
) -> None:
    """Called once the response is sent: hand the job to the batch process,
    or predict it here within the budget. Never raises."""
    try:
        request = decoder.request
        job = ShadowJob(
            ref=shadow,
            body=record.body or b"",
            content_type=request.META.get("CONTENT_TYPE", ""),
            protocol=getattr(decoder, "protocol", "rest"),
            header_length=request.META.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH"),
            served=served,
            request_id=record.request_id,
            key_name=record.key_name,
        )
        if settings.MODELHUB_BATCH_SOCKET:
            sender.add(job)
        else:
            execute_within_budget(job)
    except Exception:  # noqa: BLE001 - a shadow never fails anything else
        logger.exception("shadow v%s of %s failed", shadow.number, shadow.slug)


def execute_within_budget(job: ShadowJob) -> None:
    """Predict ``job`` in this worker if the budget allows, else count it."""
    if not budget.allows():
        _skipped(job.ref)
        return
    started = time.perf_counter()
    try:
        execute(job)
    finally:
        budget.spend(time.perf_counter() - started)


class ShadowSender:
    """A worker's shadow jobs, handed to the batch process a window at a
    time by a thread of their own: one message, and one wakeup of each
    process, per window rather than per request. Between processes a
    wakeup costs more CPU than a small job's pickle (bench/README.md).
    Jobs the batch process cannot take are predicted here, within the
    budget, by the same thread."""

    def __init__(self, window: float = SEND_WINDOW_SECONDS) -> None:
        self._window = window
        self._jobs: list[ShadowJob] = []
        self._lock = threading.Lock()
        self._due = threading.Event()
        self._pid = 0

    def add(self, job: ShadowJob) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked worker
                self._pid, self._jobs = os.getpid(), []
                self._due = threading.Event()
                threading.Thread(
                    target=self._run, name="modelhub-shadow-sender", daemon=True
                ).start()
                atexit.register(self.flush)
            self._jobs.append(job)
            first = len(self._jobs) == 1
        if first:
            self._due.set()

    def _run(self) -> None:
        due = self._due
        while True:
            due.wait()
            time.sleep(self._window)  # the window's other jobs join it
            due.clear()
            self.flush()

    def flush(self) -> None:
        """Send (or predict) every job waiting now."""
        with self._lock:
            jobs, self._jobs = self._jobs, []
        if not jobs:
            return
        from .batch_client import send_shadows

        try:
            if send_shadows(settings.MODELHUB_BATCH_SOCKET, jobs):
                return
            for job in jobs:
                execute_within_budget(job)
        except Exception:  # noqa: BLE001 - a shadow never fails anything else
            logger.exception("%s shadow jobs failed", len(jobs))


sender = ShadowSender()


def execute(job: ShadowJob) -> None:
    """Predict one shadow job here, count it and queue its log row."""
    record(job, predicted(job))


def predicted(job: ShadowJob) -> LogEntry:
    """The job's log row, its shadow predicted."""
    return predicted_together([job])[0]


def predicted_together(jobs: list[ShadowJob]) -> list[LogEntry]:
    """The jobs' log rows, in order (the shadow process's part). The rows of
    the jobs of one version are predicted in one call when its rows are
    independent: a call's fixed cost, most of a small request's, is paid
    once per batch, so the shadows take less of the CPU they share with the
    workers. A batch the model refuses is predicted job by job."""
    from .batching import concatenate, predicts_rows_alone, rows_of
    from .infer import run_model

    started = time.perf_counter()
    entries = [_entry(job) for job in jobs]
    groups: dict[int, list[tuple[int, LoadedModel, Any]]] = {}
    for index, job in enumerate(jobs):
        try:
            loaded = serving.serve(job.ref, pinned=True)
            data, entries[index].rows = decode(loaded, job)
        except (*DOMAIN_ERRORS, RegistryError) as exc:
            entries[index].status = status_for(exc)
            entries[index].error_code = exc.code
            continue
        groups.setdefault(id(loaded), []).append((index, loaded, data))
    for group in groups.values():
        loaded = group[0][1]
        if len(group) > 1 and predicts_rows_alone(loaded):
            predicting = time.perf_counter()
            try:
                predictions, _ = run_model(
                    loaded,
                    concatenate([data for _, _, data in group]),
                    proba=False,
                    request_id=jobs[group[0][0]].request_id,
                )
            except (*DOMAIN_ERRORS, ValueError, TypeError):
                pass  # each job alone below, so only the guilty fail
            else:
                model_ms = (time.perf_counter() - predicting) * 1000
                start = 0
                for index, _, _ in group:
                    rows = slice(start, start + entries[index].rows)
                    start = rows.stop
                    entry = entries[index]
                    entry.model_ms, entry.batch_size = model_ms, len(group)
                    _compared(entry, jobs[index], rows_of(predictions, rows))
                continue
        for index, _, data in group:
            _predict_decoded(entries[index], jobs[index], loaded, data)
    latency_ms = (time.perf_counter() - started) * 1000
    for entry in entries:
        entry.latency_ms = latency_ms
    return entries


def record(job: ShadowJob, entry: LogEntry) -> None:
    """Count the shadow's outcome and queue its log row."""
    metrics.observe_request(
        slug=entry.slug,
        version=entry.version,
        status=entry.status,
        seconds=entry.latency_ms / 1000,
        rows=entry.rows,
        private=job.ref.private,
        route=SHADOW,
    )
    writer.submit(entry)


def failed_entry(job: ShadowJob, status: int, code: str) -> LogEntry:
    """The row of a shadow that ended without an answer."""
    entry = _entry(job)
    entry.status, entry.error_code = status, code
    return entry


def _skipped(ref: VersionRef) -> None:
    metrics.SHADOW_SKIPPED.labels(
        metrics.model_label(ref.slug, private=ref.private)
    ).inc()


def _entry(job: ShadowJob) -> LogEntry:
    return LogEntry(
        created_at=timezone.now(),
        slug=job.ref.slug,
        version=job.ref.number,
        status=200,
        error_code="",
        rows=0,
        latency_ms=0.0,
        model_ms=None,
        request_id=job.request_id,
        key_name=job.key_name,
        route=SHADOW,
    )


def _predict_decoded(
    entry: LogEntry, job: ShadowJob, loaded: LoadedModel, data: Any
) -> None:
    from .infer import run_model  # infer schedules this module

    predicting = time.perf_counter()
    try:
        predictions, _ = run_model(loaded, data, proba=False, request_id=job.request_id)
    except DOMAIN_ERRORS as exc:
        entry.status = status_for(exc)
        entry.error_code = exc.code
        return
    entry.model_ms = (time.perf_counter() - predicting) * 1000
    _compared(entry, job, predictions)


def _compared(entry: LogEntry, job: ShadowJob, predictions: Any) -> None:
    """The shadow's answer against the served one, and kept for feedback:
    a label sent later scores the shadow as well as what was served."""
    diff, total, squares = compare(job.ref.kind, job.served, predictions)
    entry.shadow_diff, entry.served_sum, entry.served_sq_sum = diff, total, squares
    if job.ref.keep_predictions:
        kept = keep(predictions, None, entry.rows)
        entry.predictions, entry.unjoinable = kept.predictions, kept.unjoinable


def decode(loaded: LoadedModel, job: ShadowJob) -> tuple[Any, int]:
    """The job's body as its protocol decodes it for ``loaded``."""
    return decode_body_as(
        loaded, job.body, job.content_type, job.protocol, job.header_length
    )


def decode_body_as(
    loaded: LoadedModel,
    body: bytes,
    content_type: str,
    protocol: str,
    header_length: str | None = None,
) -> tuple[Any, int]:
    """A request body decoded for ``loaded`` as ``protocol`` ("rest" or
    "v2") decodes it: the model's input and its row count. Shadows and
    replay both decode bodies away from their request."""
    from .infer import spec_for

    if protocol == "v2":
        from ..v2.inputs import model_input
        from ..v2.protocol import parse_request

        spec = spec_for(loaded)
        request = parse_request(body, header_length, spec=spec)
        decoded = model_input(
            request.inputs,
            spec,
            pandas=request.pandas,
            max_rows=settings.MODELHUB_MAX_ROWS,
        )
    else:
        from .rest import decode_body

        decoded, _ = decode_body(loaded, body, content_type, proba=False)
    return decoded.data, decoded.rows


class ShadowQueue:
    """The batch process's shadow jobs and the thread that hands them, as
    many as wait (up to ``BATCH_JOBS``), to ``predict`` (by default the
    shadow process) and records what comes back, resting whenever the
    shadows have used their MODELHUB_SHADOW_MAX_SHARE of one core. Skipped
    and counted: a job offered while ``size`` wait, and jobs no process
    could take (or every job, with a share of 0)."""

    def __init__(
        self,
        size: int = QUEUE_SIZE,
        predict: Predict | None = None,
    ) -> None:
        self._jobs: queues.Queue[ShadowJob] = queues.Queue(size)
        self._predict = predict
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.budget = Budget(PROCESS_TIME_CONSTANT)

    def offer(self, jobs: list[ShadowJob]) -> None:
        self._start()
        for job in jobs:
            try:
                self._jobs.put_nowait(job)
            except queues.Full:
                _skipped(job.ref)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                if self._predict is None:
                    from .shadow_host import ShadowProcess

                    self._predict = ShadowProcess().predict
                self._thread = threading.Thread(
                    target=self._work, name="modelhub-shadows", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        assert self._predict is not None
        while True:
            jobs = [self._jobs.get()]
            while len(jobs) < BATCH_JOBS:
                try:
                    jobs.append(self._jobs.get_nowait())
                except queues.Empty:
                    break
            try:
                self._run(jobs)
            except Exception:  # noqa: BLE001 - one batch never stops the rest
                logger.exception("%s shadow jobs failed", len(jobs))
            finally:
                for _ in jobs:
                    self._jobs.task_done()

    def _run(self, jobs: list[ShadowJob]) -> None:
        assert self._predict is not None
        # Past its share the shadow process rests, and the jobs wait in the
        # queue meanwhile: only those past its bound are skipped. Dropping
        # every job due while over the share would lose a whole backlog to
        # one costly batch (a model's first load).
        pause = self.budget.pause()
        if pause:
            time.sleep(pause)
        answer = pause is not None and self._predict(jobs)
        if not answer:
            for job in jobs:
                _skipped(job.ref)
            return
        entries, cpu_seconds = answer
        self.budget.spend(cpu_seconds)
        for job, entry in zip(jobs, entries, strict=True):
            record(job, entry)

    def join(self, timeout: float) -> None:
        """Wait (tests) until every job offered has been recorded."""
        deadline = time.monotonic() + timeout
        while self._jobs.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)


queue = ShadowQueue()


def compare(
    kind: str, served: Any, shadow: Any
) -> tuple[float, float | None, float | None]:
    """How far the shadow's predictions are from the served ones: rows whose
    label differs, or (regressors) the sum of absolute differences with the
    served values' sum and sum of squares. A shape that differs counts every
    row as different."""
    served = np.asarray(served)
    shadow = np.asarray(shadow)
    rows = served.shape[0] if served.ndim else 1
    if served.shape != shadow.shape:
        return float(rows), None, None
    if kind == "regressor":
        try:
            a = served.astype(float).reshape(rows, -1)
            b = shadow.astype(float).reshape(rows, -1)
        except (TypeError, ValueError):
            return float(rows), None, None
        diff = float(np.abs(a - b).mean(axis=1).sum())
        values = a.mean(axis=1)
        return diff, float(values.sum()), float((values**2).sum())
    differs = (served.reshape(rows, -1) != shadow.reshape(rows, -1)).any(axis=1)
    return float(differs.sum()), None, None
