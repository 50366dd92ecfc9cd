"""What one prediction request did, as the request log and the metrics need it.

The log middleware attaches a record to every prediction request before the
view runs; the data plane fills it in as the request proceeds (the version
that answered, rows, model time, the body), whatever the protocol, and the
error handlers note an error's code on it. It is the one channel between the
views and the log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

_ATTRIBUTE = "modelhub_prediction"
# Error codes that refuse a caller before any model answers: counted apart
# in the stats and the metrics.
REFUSAL_CODES = (
    "not_authenticated",
    "authentication_failed",
    "forbidden",
    "unknown_model",
    "throttled",
)


@dataclass(slots=True)
class PredictionRecord:
    slug: str
    version: int | None = None
    rows: int = 0
    model_ms: float | None = None
    error_code: str = ""
    private: bool = False  # the metrics label it by an opaque id
    capture: bool = False  # the model keeps request bodies (for replay)
    # What the model answered and the rows' ids, when the model keeps its
    # predictions for feedback (monitoring.kept serializes them for the log).
    predictions: Any = None
    ids: list[Any] | None = None
    # (version id, feature names, decoded input, predictions) of a request
    # that predicted: counted into the version's drift bins after it.
    observed: tuple[int, tuple[str, ...], Any, Any] | None = None
    key_name: str = ""  # the API key that called, never the key
    body: bytes | None = None
    request_id: str = ""
    # Requests predicted in the one call this one rode in (the batcher sets
    # it); None when it was predicted alone or not at all.
    batch_size: int | None = None
    # Why this version answered (api.dataplane.traffic): active, candidate,
    # pinned, alias, or shadow for the shadow's own row.
    route: str = "active"
    # Work for after the response and its log row (a shadow prediction).
    after: Callable[[], None] | None = None


def attach(request: HttpRequest, slug: str) -> PredictionRecord:
    record = PredictionRecord(slug=slug, request_id=getattr(request, "request_id", ""))
    setattr(request, _ATTRIBUTE, record)
    return record


def of(request: HttpRequest) -> PredictionRecord | None:
    """The record of a prediction request; None for any other request."""
    return getattr(request, _ATTRIBUTE, None)


def note_error(request: HttpRequest, code: str) -> None:
    """The stable code of the error a prediction request is answered with."""
    record = of(request)
    if record is not None:
        record.error_code = code
