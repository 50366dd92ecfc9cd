"""What a request was answered, kept in its log row so that ground-truth
feedback sent later (monitoring.feedback) can be joined to it.

Kept compactly, as the JSON array the client was sent, and capped at
MODELHUB_LOG_PREDICTIONS_BYTES: a 10,000-row batch must not write a
megabyte per request. The rows past the cap are counted as unjoinable
(RequestLog.unjoinable, summed in the rollup), never silently dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from registry.jsonvalues import to_json_list

_SCALARS = (str, int, float, bool)


@dataclass(frozen=True, slots=True)
class Kept:
    predictions: str | None  # JSON array of the first rows' values
    row_ids: str | None  # JSON array of their ids, when the request named rows
    unjoinable: int  # rows predicted but not kept


def keep(predictions: Any, ids: list[Any] | None, rows: int) -> Kept:
    """The first rows' predicted values (and ids) within the cap.

    Values that are not one scalar per row (a multi-output model's) have no
    single label to compare with: none are kept, and every row is unjoinable.
    """
    if isinstance(predictions, np.ndarray) and predictions.ndim != 1:
        return Kept(None, None, rows)
    values = to_json_list(predictions)
    if len(values) != rows or not all(
        v is None or isinstance(v, _SCALARS) for v in values
    ):
        return Kept(None, None, rows)
    cap = settings.MODELHUB_LOG_PREDICTIONS_BYTES
    text = json.dumps(values, separators=(",", ":"))
    count = rows if len(text) <= cap else _fitting(values, cap)
    id_text = None
    if ids is not None:
        id_text = json.dumps(ids[:count], separators=(",", ":"), default=str)
        if len(id_text) > cap:
            count = min(count, _fitting(ids, cap))
            id_text = json.dumps(ids[:count], separators=(",", ":"), default=str)
    if count < rows:
        text = json.dumps(values[:count], separators=(",", ":"))
    return Kept(text, id_text, rows - count)


def _fitting(values: list[Any], cap: int) -> int:
    """How many leading values fit in ``cap`` bytes of JSON array."""
    used = 2  # the brackets
    for count, value in enumerate(values):
        used += len(json.dumps(value, default=str)) + (1 if count else 0)
        if used > cap:
            return count
    return len(values)


def kept_values(text: str | None) -> list[Any]:
    """A log row's kept predictions (or ids) as a list."""
    return json.loads(text) if text else []
