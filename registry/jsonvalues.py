"""numpy values to plain JSON values: the one converter, for what the registry
stores (classes) and what the API answers (predictions, probabilities,
tensors)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def to_json_value(value: Any) -> Any:
    """numpy scalars and arrays, lists and tuples to plain JSON values.

    NaN and infinities become None; bytes are read as UTF-8; anything JSON
    has no type for becomes its ``str``.
    """
    if isinstance(value, np.ndarray):
        return [to_json_value(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def to_json_list(values: Any) -> list[Any]:
    """A model's results as a JSON-ready list.

    Numeric and string arrays go through ``tolist`` alone (the JSON renderer
    writes NaN as null); object arrays are converted value by value.
    """
    array = np.asarray(values)
    if array.dtype.kind in "fiubU":
        return array.tolist()
    items = array.tolist()
    if array.ndim == 1 and all(isinstance(v, str) for v in items):
        return items  # class labels; numpy's str_ is a str
    return [to_json_value(v) for v in items]
