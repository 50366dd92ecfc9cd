"""Shadow predictions: a traffic policy's shadow version predicts every
unpinned request after the client's response is sent, in the same worker,
and its outcome is logged as a row of its own (route ``shadow``, the same
request id) with how it compares to what the client was served. It is never
returned, and a shadow that fails fails only its own row.

Shadows may take at most MODELHUB_SHADOW_MAX_SHARE of a worker's time: the
time spent on them decays with a ten-second time constant, and a shadow due
while the budget is spent is skipped and counted (metric), so a slow shadow
cannot starve the worker of client requests.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from monitoring import metrics
from monitoring.record import PredictionRecord
from monitoring.requestlog import LogEntry, writer
from registry import serving
from registry.exceptions import RegistryError
from registry.loading import VersionRef

from ..errors import DOMAIN_ERRORS, status_for
from .traffic import SHADOW

logger = logging.getLogger(__name__)

_TIME_CONSTANT = 10.0  # seconds over which the budget is measured


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
    shadow: VersionRef,
    decoder: Any,
    served: Any,
    record: PredictionRecord,
) -> None:
    """Predict with ``shadow`` and log it; called once the response is sent.
    Never raises: the client has its answer already."""
    if not budget.allows():
        metrics.SHADOW_SKIPPED.labels(
            metrics.model_label(shadow.slug, private=shadow.private)
        ).inc()
        return
    started = time.perf_counter()
    try:
        entry = _predict(shadow, decoder, served, record)
    except Exception:  # noqa: BLE001 - a shadow never fails anything else
        logger.exception("shadow v%s of %s failed", shadow.number, shadow.slug)
        return
    finally:
        budget.spend(time.perf_counter() - started)
    entry.latency_ms = (time.perf_counter() - started) * 1000
    metrics.observe_request(
        slug=entry.slug,
        version=entry.version,
        status=entry.status,
        seconds=entry.latency_ms / 1000,
        rows=entry.rows,
        private=shadow.private,
        route=SHADOW,
    )
    writer.submit(entry)


def _predict(
    shadow: VersionRef, decoder: Any, served: Any, record: PredictionRecord
) -> LogEntry:
    from .infer import run_model  # infer schedules this module

    entry = LogEntry(
        created_at=timezone.now(),
        slug=shadow.slug,
        version=shadow.number,
        status=200,
        error_code="",
        rows=0,
        latency_ms=0.0,
        model_ms=None,
        request_id=record.request_id,
        key_name=record.key_name,
        route=SHADOW,
    )
    try:
        loaded = serving.serve(shadow, pinned=True)
        model_input, _ = decoder(loaded)
        entry.rows = model_input.rows
        predicting = time.perf_counter()
        predictions, _ = run_model(
            loaded, model_input.data, proba=False, request_id=record.request_id
        )
        entry.model_ms = (time.perf_counter() - predicting) * 1000
    except (*DOMAIN_ERRORS, RegistryError) as exc:
        entry.status = status_for(exc)
        entry.error_code = exc.code
        return entry
    diff, total, squares = compare(shadow.kind, served, predictions)
    entry.shadow_diff, entry.served_sum, entry.served_sq_sum = diff, total, squares
    return entry


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
