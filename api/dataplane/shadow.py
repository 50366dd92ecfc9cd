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

import logging
import math
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
from monitoring.record import PredictionRecord
from monitoring.requestlog import LogEntry, writer
from registry import serving
from registry.exceptions import RegistryError
from registry.loading import LoadedModel, VersionRef

from ..errors import DOMAIN_ERRORS, status_for
from .traffic import SHADOW

logger = logging.getLogger(__name__)

_TIME_CONSTANT = 10.0  # seconds over which the in-worker budget is measured
QUEUE_SIZE = 1000  # shadow jobs waiting in the batch process


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
    last ~``_TIME_CONSTANT`` seconds against the share allowed."""

    def __init__(self) -> None:
        self._spent = 0.0
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def allows(self) -> bool:
        share = settings.MODELHUB_SHADOW_MAX_SHARE
        with self._lock:
            return self._decayed(time.monotonic()) < share * _TIME_CONSTANT

    def spend(self, seconds: float) -> None:
        with self._lock:
            self._spent = self._decayed(time.monotonic()) + seconds

    def _decayed(self, now: float) -> float:
        self._spent *= math.exp(-(now - self._at) / _TIME_CONSTANT)
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
            from .batch_client import send_shadow

            if send_shadow(settings.MODELHUB_BATCH_SOCKET, job):
                return
        if not budget.allows():
            _skipped(shadow)
            return
        started = time.perf_counter()
        try:
            execute(job)
        finally:
            budget.spend(time.perf_counter() - started)
    except Exception:  # noqa: BLE001 - a shadow never fails anything else
        logger.exception("shadow v%s of %s failed", shadow.number, shadow.slug)


def execute(job: ShadowJob) -> None:
    """Predict one shadow job here, count it and queue its log row."""
    record(job, predicted(job))


def predicted(job: ShadowJob) -> LogEntry:
    """The job's log row, its shadow predicted (the shadow process's part)."""
    started = time.perf_counter()
    entry = _predict(job)
    entry.latency_ms = (time.perf_counter() - started) * 1000
    return entry


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


def _predict(job: ShadowJob) -> LogEntry:
    from .infer import run_model  # infer schedules this module

    shadow = job.ref
    entry = _entry(job)
    try:
        loaded = serving.serve(shadow, pinned=True)
        data, rows = decode(loaded, job)
        entry.rows = rows
        predicting = time.perf_counter()
        predictions, _ = run_model(loaded, data, proba=False, request_id=job.request_id)
        entry.model_ms = (time.perf_counter() - predicting) * 1000
    except (*DOMAIN_ERRORS, RegistryError) as exc:
        entry.status = status_for(exc)
        entry.error_code = exc.code
        return entry
    diff, total, squares = compare(shadow.kind, job.served, predictions)
    entry.shadow_diff, entry.served_sum, entry.served_sq_sum = diff, total, squares
    return entry


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
    """The batch process's shadow jobs and the thread that hands them, in
    turn, to ``predict`` (by default the shadow process) and records what
    comes back; a job offered while ``size`` wait is skipped and counted,
    as is one no process could take."""

    def __init__(
        self,
        size: int = QUEUE_SIZE,
        predict: Callable[[ShadowJob], LogEntry | None] | None = None,
    ) -> None:
        self._jobs: queues.Queue[ShadowJob] = queues.Queue(size)
        self._predict = predict
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def offer(self, job: ShadowJob) -> None:
        self._start()
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
            job = self._jobs.get()
            try:
                entry = self._predict(job)
                if entry is None:
                    _skipped(job.ref)
                else:
                    record(job, entry)
            except Exception:  # noqa: BLE001 - one shadow never stops the rest
                logger.exception(
                    "shadow v%s of %s failed", job.ref.number, job.ref.slug
                )
            finally:
                self._jobs.task_done()

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
