"""What a log line says about the request it was written in: the request id,
and for a prediction its model and version.

The request-id middleware opens a context for every API request and the log
middleware adds the request's PredictionRecord, which the data plane fills in
as it resolves a version; ``RequestContextFilter`` copies them onto every log
record written meanwhile, in that thread (a ContextVar: gthread workers serve
several requests at once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from .record import PredictionRecord


@dataclass(slots=True)
class RequestContext:
    request_id: str
    prediction: PredictionRecord | None = None


_current: ContextVar[RequestContext | None] = ContextVar(
    "modelhub_request", default=None
)


@contextmanager
def request(request_id: str) -> Iterator[RequestContext]:
    """Log records written inside carry ``request_id``."""
    token = _current.set(RequestContext(request_id))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def note_prediction(record: PredictionRecord) -> None:
    """Log records of the current request name the record's model and version
    (as the data plane resolves it, so lines written before name no version)."""
    context = _current.get()
    if context is not None:
        context.prediction = record


class RequestContextFilter(logging.Filter):
    """Adds ``request_id``, ``model`` and ``version`` to a record written
    during a request, where they are known; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get()
        if context is None:
            return True
        record.request_id = context.request_id
        prediction = context.prediction
        if prediction is not None:
            record.model = prediction.slug
            if prediction.version is not None:
                record.version = prediction.version
        return True
