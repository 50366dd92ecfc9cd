"""The /api/predict/ protocol around infer(): its decoder and its response body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.http import HttpRequest

from monitoring.record import PredictionRecord
from registry.jsonvalues import to_json_list
from registry.loading import LoadedModel

from ..http import query_flag, read_body
from .features import DecodedInput
from .infer import Inference, spec_for
from .payloads import decode


@dataclass(frozen=True)
class RestDecoder:
    """A body in any of the accepted shapes (JSON or CSV); ``proba`` from the
    query string wins over the body's ``params``.

    The body is read once the model is known, so an unknown model is a 404
    whatever the body holds.
    """

    request: HttpRequest
    record: PredictionRecord | None
    protocol = "rest"  # what a shadow job says to decode its body with

    def __call__(self, loaded: LoadedModel) -> tuple[DecodedInput, bool]:
        body = read_body(self.request)
        if self.record is not None:
            self.record.body = body
        content_type = self.request.META.get("CONTENT_TYPE", "")
        return decode_body(
            loaded, body, content_type, proba=query_flag(self.request, "proba")
        )


def decode_body(
    loaded: LoadedModel, body: bytes, content_type: str, *, proba: bool | None
) -> tuple[DecodedInput, bool]:
    """A request body as ``loaded``'s input, and whether probabilities are
    wanted (``proba`` from the query string wins over the body's params)."""
    decoded = decode(
        body, content_type, spec_for(loaded), max_rows=settings.MODELHUB_MAX_ROWS
    )
    if proba is None:
        proba = bool(decoded.params.get("proba", False))
    return decoded, proba


def response_body(inference: Inference, *, request_id: str) -> dict[str, Any]:
    ref = inference.ref
    body: dict[str, Any] = {
        "model": ref.slug,
        "version": ref.number,
        "request_id": request_id,
        "predictions": to_json_list(inference.predictions),
    }
    if inference.probabilities is not None:
        body["probabilities"] = _probabilities(
            inference.loaded, inference.probabilities
        )
    if inference.model_input.ids is not None:
        body["ids"] = inference.model_input.ids
    return body


def _probabilities(loaded: LoadedModel, raw: Any) -> list[dict[str, Any]]:
    """One object per row keyed by ``str(label)``."""
    classes = getattr(loaded.estimator, "classes_", None)
    if classes is None:
        classes = loaded.ref.classes or range(np.shape(raw)[1])
    labels = [str(c) for c in to_json_list(np.asarray(classes))]
    return [dict(zip(labels, row, strict=False)) for row in to_json_list(raw)]
