"""Replay: captured request bodies predicted again by another version, and
compared with what the version that served them answers.

Run by ``manage.py replay`` (the admin's action starts that command), so in
a process of its own: it loads its own copies of the models, writes no
request-log row and no metric, and live traffic never waits on it. "What was
served" is the served version's prediction for the same body, predicted
again here: versions are immutable files, so it is what the client got from
any model that predicts deterministically.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings

from monitoring.models import ReplayReport, RequestLog
from registry import routing
from registry.exceptions import RegistryError
from registry.loading import LoadedModel, load
from registry.models import MLModel, ModelVersion

from ..errors import DOMAIN_ERRORS
from .infer import run_model
from .shadow import compare, decode_body_as

WORST = 10
ERRORS_KEPT = 20


class NothingCaptured(RegistryError):
    """No request of the window kept its body: nothing to replay."""

    code = "nothing_captured"


@dataclass
class Replay:
    """The running totals of one replay, then its report."""

    slug: str
    version: int
    kind: str
    since: datetime
    limit: int
    requests: int = 0
    rows: int = 0
    skipped: int = 0
    errors: int = 0
    diff: float = 0.0
    served_sum: float = 0.0
    served_sq_sum: float = 0.0
    worst: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    error_samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def regressor(self) -> bool:
        return self.kind == ModelVersion.Kind.REGRESSOR

    def agreement(self) -> float | None:
        if self.regressor or not self.rows:
            return None
        return 1 - self.diff / self.rows

    def mae(self) -> float | None:
        return self.diff / self.rows if self.regressor and self.rows else None

    def served_std(self) -> float | None:
        if not self.regressor or not self.rows:
            return None
        mean = self.served_sum / self.rows
        return max(self.served_sq_sum / self.rows - mean * mean, 0.0) ** 0.5

    def failed(self, request_id: str, code: str, detail: str) -> None:
        self.errors += 1
        if len(self.error_samples) < ERRORS_KEPT:
            self.error_samples.append(
                {"request_id": request_id, "code": code, "detail": detail[:300]}
            )


def replay(
    *, slug: str, number: int, since: datetime, limit: int, requested_by: str = ""
) -> ReplayReport:
    """Predict the captured bodies of ``slug``'s traffic since ``since`` (the
    ``limit`` most recent) with version ``number``; store and return the report."""
    model = MLModel.objects.filter(slug=slug).first()
    target = routing.version_ref(slug, number)  # unknown model or version: raises
    logged = (
        RequestLog.objects.filter(slug=slug, created_at__gte=since, status=200)
        .exclude(route="shadow")
        .exclude(payload__isnull=True)
        .order_by("-id")
        .values_list("request_id", "version", "payload")[:limit]
    )
    captured = list(logged)
    if not captured:
        raise NothingCaptured(_nothing_captured(model, slug, since))
    run = Replay(slug, number, target.kind, since, limit)
    models: dict[int, LoadedModel | RegistryError] = {}
    for request_id, served_number, payload in captured:
        run.requests += 1
        _one(run, models, target, request_id, served_number, payload)
    return _store(run, requested_by)


def _one(
    run: Replay,
    models: dict[int, LoadedModel | RegistryError],
    target: Any,
    request_id: str,
    served_number: int,
    payload: str,
) -> None:
    if _cut(payload):
        run.skipped += 1
        return
    served = _model(models, run.slug, served_number)
    candidate = _model(models, run.slug, target.number)
    for loaded in (served, candidate):
        if isinstance(loaded, RegistryError):
            run.failed(request_id, loaded.code, loaded.message)
            return
    body = payload.encode()
    try:
        served_predictions = _predict(served, body)
        replayed = _predict(candidate, body)
    except DOMAIN_ERRORS as exc:
        run.failed(request_id, exc.code, exc.message)
        return
    diff, total, squares = compare(run.kind, served_predictions, replayed)
    rows = len(served_predictions)
    run.rows += rows
    run.diff += diff
    run.served_sum += total or 0.0
    run.served_sq_sum += squares or 0.0
    if diff > 0:
        entry = {
            "request_id": request_id,
            "served_version": served_number,
            "rows": rows,
        }
        if run.regressor:
            entry["mae"] = round(diff / rows, 6)
        else:
            entry["differing"] = int(diff)
        item = (diff / rows, request_id, entry)
        if len(run.worst) < WORST:
            heapq.heappush(run.worst, item)
        else:
            heapq.heappushpop(run.worst, item)


def _cut(payload: str) -> bool:
    """A body longer than the capture cap was stored cut, with an ellipsis."""
    cap = settings.MODELHUB_LOG_PAYLOAD_BYTES
    return payload.endswith("…") and len(payload.encode()) > cap


def _model(
    models: dict[int, LoadedModel | RegistryError], slug: str, number: int
) -> LoadedModel | RegistryError:
    if number not in models:
        try:
            ref = routing.version_ref(slug, number)
            models[number] = load(ref)
        except RegistryError as exc:
            models[number] = exc
    return models[number]


def _predict(loaded: LoadedModel, body: bytes) -> Any:
    """The body as the protocol it came in would decode it: REST (JSON or
    CSV), or the Open Inference Protocol's JSON."""
    if _is_v2(body):
        protocol, content_type = "v2", "application/json"
    else:
        text = body.lstrip()[:1]
        content_type = "application/json" if text in (b"{", b"[") else "text/csv"
        protocol = "rest"
    data, _ = decode_body_as(loaded, body, content_type, protocol)
    predictions, _ = run_model(loaded, data, proba=False)
    return predictions


def _is_v2(body: bytes) -> bool:
    try:
        document = json.loads(body)
    except ValueError:
        return False
    inputs = document.get("inputs") if isinstance(document, dict) else None
    return (
        isinstance(inputs, list)
        and bool(inputs)
        and all(isinstance(i, dict) and "datatype" in i for i in inputs)
    )


def _nothing_captured(model: MLModel | None, slug: str, since: datetime) -> str:
    logged = RequestLog.objects.filter(slug=slug, created_at__gte=since).count()
    capture = (
        "Payload capture is on for this model: "
        if model is not None and model.capture_payloads
        else "Turn on payload capture for the model (the admin's 'Capture "
        f"payloads', or PATCH /api/models/{slug}/ with "
        '{"capture_payloads": true}), then '
    )
    return (
        f"Nothing captured to replay for '{slug}' since {since:%Y-%m-%d %H:%M} UTC: "
        f"{logged} request(s) were logged, none of them successful with its body "
        f"kept. {capture}replay once traffic has come in."
    )


def _store(run: Replay, requested_by: str) -> ReplayReport:
    worst = [entry for _, _, entry in sorted(run.worst, reverse=True)]
    return ReplayReport.objects.create(
        slug=run.slug,
        version=run.version,
        since=run.since,
        limit=run.limit,
        requests=run.requests,
        rows_compared=run.rows,
        skipped=run.skipped,
        errors=run.errors,
        agreement=run.agreement(),
        mae=run.mae(),
        served_std=run.served_std(),
        details={
            "kind": run.kind,
            "worst": worst,
            "errors": run.error_samples,
        },
        requested_by=requested_by[:150],
    )
