"""predict(): resolve, load, decode, predict, encode — the hot path, no HTTP."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from registry import routing, serving
from registry.inspection import selects_columns_by_name
from registry.jsonvalues import to_json_list
from registry.loading import LoadedModel, VersionRef

from . import model_warnings, payloads
from .exceptions import ModelRejectedInput, PredictionTimeout
from .timeouts import time_limit

logger = logging.getLogger(__name__)


@dataclass
class Prediction:
    ref: VersionRef
    predictions: list[Any]
    probabilities: list[dict[str, Any]] | None
    ids: list[Any] | None
    rows: int
    timings: dict[str, float] = field(default_factory=dict)


def resolve(slug: str, version: int | None) -> VersionRef:
    return routing.resolve(slug, version)


def load(ref: VersionRef, *, pinned: bool = False) -> LoadedModel:
    """The model that answers for ``ref``: itself, or the last good version."""
    return serving.serve(ref, pinned=pinned)


def spec_for(loaded: LoadedModel) -> payloads.InputSpec:
    """The prepared input spec, built once per loaded version."""
    spec = loaded.extra.get("spec")
    if spec is None:
        estimator = loaded.estimator
        fitted = getattr(estimator, "feature_names_in_", None)
        spec = payloads.prepare_spec(
            loaded.ref.input_schema,
            selects_by_name=selects_columns_by_name(estimator)
            or bool(getattr(estimator, "needs_dataframe", False)),
            fitted_names=[str(n) for n in fitted] if fitted is not None else None,
        )
        loaded.extra["spec"] = spec
    return spec


def predict(
    *,
    loaded: LoadedModel,
    body: bytes,
    content_type: str,
    proba: bool | None,
    load_ms: float = 0.0,
) -> Prediction:
    """Serve one request with ``loaded``; ``proba`` from the query string wins."""
    started = time.perf_counter()
    ref = loaded.ref
    decoded = payloads.decode(
        body, content_type, spec_for(loaded), max_rows=settings.MODELHUB_MAX_ROWS
    )
    if proba is None:
        proba = bool(decoded.params.get("proba", False))
    decoded_at = time.perf_counter()
    raw, raw_proba = run_model(loaded, decoded.data, proba=proba and loaded.has_proba)
    predicted_at = time.perf_counter()
    result = Prediction(
        ref=ref,
        predictions=to_json_list(raw),
        probabilities=_probabilities(loaded, raw_proba),
        ids=decoded.ids,
        rows=decoded.rows,
    )
    finished = time.perf_counter()
    result.timings = {
        "load": load_ms,
        "decode": (decoded_at - started) * 1000,
        "predict": (predicted_at - decoded_at) * 1000,
        "encode": (finished - predicted_at) * 1000,
        "total": load_ms + (finished - started) * 1000,
    }
    return result


def run_model(loaded: LoadedModel, data: Any, *, proba: bool) -> tuple[Any, Any]:
    """``predict`` (and ``predict_proba``) under the time limit; any payload
    format ends here, so a model's own error is a 422 whatever the protocol."""
    ref = loaded.ref
    limit = settings.MODELHUB_PREDICT_TIMEOUT
    try:
        with (
            time_limit(limit, f"'{ref.slug}' v{ref.number}"),
            model_warnings.captured(ref),
        ):
            raw = loaded.estimator.predict(data)
            raw_proba = loaded.estimator.predict_proba(data) if proba else None
    except PredictionTimeout:
        logger.warning("%s v%s timed out", ref.slug, ref.number)
        raise
    except Exception as exc:  # noqa: BLE001 - the model's own error becomes a 422
        logger.info("%s v%s rejected input: %r", ref.slug, ref.number, exc)
        summary = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ModelRejectedInput(
            f"The model rejected the input: {type(exc).__name__}"
            + (f": {summary}" if summary else ""),
        ) from None
    return raw, raw_proba


def _probabilities(loaded: LoadedModel, raw: Any) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    classes = getattr(loaded.estimator, "classes_", None)
    if classes is None:
        classes = loaded.ref.classes or range(np.shape(raw)[1])
    labels = [str(c) for c in to_json_list(np.asarray(classes))]
    return [dict(zip(labels, row, strict=False)) for row in to_json_list(raw)]
