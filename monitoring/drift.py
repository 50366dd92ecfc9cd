"""Drift: how far the inputs (and the predictions) of a window have moved
from a version's reference, as a population stability index per feature.

A reference is binned once: a numeric feature into the deciles of the
reference's values (fewer bins where values repeat), a string feature into
the reference's most frequent categories plus "other"; missing values have a
bin of their own. The reference keeps each bin's share; live rows are
counted into the same bins (monitoring.drift_counts) and a window's PSI is

    sum over bins of (live share - reference share) * ln(live share / reference share)

with both shares floored at 0.0001, so an empty bin is a large term rather
than an infinite one. Read it as: under 0.1 the distribution is stable;
0.1 to 0.25 it has moved (warn); 0.25 and over it has moved a lot (alert).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

FLOOR = 1e-4
DECILES = tuple(i / 10 for i in range(1, 10))
MAX_CATEGORIES = 20
NUMBER = "number"
STRING = "string"
PREDICTIONS = ""  # the predictions' name among a version's drift counts


@dataclass(frozen=True)
class Bins:
    """One feature's (or the predictions') bins and their reference shares."""

    name: str
    type: str  # NUMBER or STRING
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    expected: tuple[float, ...] = ()

    @property
    def size(self) -> int:
        """Bins: the value bins, then "other" (strings), then missing."""
        if self.type == NUMBER:
            return len(self.edges) + 2
        return len(self.categories) + 2

    def count(self, values: Any) -> np.ndarray:
        """How many of ``values`` fall in each bin."""
        return np.bincount(self.bin_of(values), minlength=self.size)

    def bin_of(self, values: Any) -> np.ndarray:
        if self.type == NUMBER:
            numbers = _numbers(values)
            found = np.searchsorted(np.asarray(self.edges), numbers, side="right")
            return np.where(np.isnan(numbers), self.size - 1, found)
        index = {c: i for i, c in enumerate(self.categories)}
        other, missing = len(self.categories), len(self.categories) + 1
        return np.fromiter(
            (
                missing if _missing(v) else index.get(_text(v), other)
                for v in _values(values)
            ),
            dtype=np.int64,
        )

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.type == NUMBER:
            found["edges"] = list(self.edges)
        else:
            found["categories"] = list(self.categories)
        found["expected"] = list(self.expected)
        return found

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Bins:
        return cls(
            name=data["name"],
            type=data["type"],
            edges=tuple(data.get("edges") or ()),
            categories=tuple(data.get("categories") or ()),
            expected=tuple(data["expected"]),
        )

    @classmethod
    def of(cls, name: str, kind: str, values: Any) -> Bins:
        """Bins fitted to a reference sample's ``values``."""
        if kind == NUMBER:
            numbers = _numbers(values)
            present = numbers[~np.isnan(numbers)]
            edges = (
                tuple(float(e) for e in np.unique(np.quantile(present, DECILES)))
                if present.size
                else ()
            )
            fitted = cls(name, NUMBER, edges=edges)
        else:
            seen = Counter(_text(v) for v in _values(values) if not _missing(v))
            top = tuple(sorted(c for c, _ in seen.most_common(MAX_CATEGORIES)))
            fitted = cls(name, STRING, categories=top)
        counts = fitted.count(values)
        total = max(int(counts.sum()), 1)
        expected = tuple(float(c) / total for c in counts)
        return cls(name, fitted.type, fitted.edges, fitted.categories, expected)


@dataclass(frozen=True)
class Reference:
    """A version's bins: each feature's and the predictions'."""

    features: tuple[Bins, ...]
    predictions: Bins | None
    rows: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "features": [b.as_dict() for b in self.features],
            "predictions": self.predictions.as_dict() if self.predictions else None,
            "rows": self.rows,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        predictions = data.get("predictions")
        return cls(
            features=tuple(Bins.from_dict(b) for b in data.get("features") or ()),
            predictions=Bins.from_dict(predictions) if predictions else None,
            rows=int(data.get("rows") or 0),
        )

    @classmethod
    def of(
        cls,
        columns: Mapping[str, Any],
        types: Mapping[str, str],
        predictions: Any | None,
        prediction_type: str,
    ) -> Reference:
        """Bins fitted to a sample: its columns (by feature name), their
        types, and what the version predicted for its rows."""
        features = tuple(
            Bins.of(name, types.get(name, NUMBER), values)
            for name, values in columns.items()
        )
        rows = len(next(iter(columns.values()))) if columns else 0
        fitted = None
        if predictions is not None and np.ndim(predictions) == 1:
            fitted = Bins.of(PREDICTIONS, prediction_type, predictions)
            rows = rows or len(predictions)
        return cls(features=features, predictions=fitted, rows=rows)


def psi(expected: tuple[float, ...], counts: Any) -> float | None:
    """The population stability index of ``counts`` against ``expected``
    shares; None without a single live row."""
    live = np.asarray(counts, dtype=float)
    total = live.sum()
    if total <= 0 or len(live) != len(expected):
        return None
    actual = np.maximum(live / total, FLOOR)
    reference = np.maximum(np.asarray(expected, dtype=float), FLOOR)
    value = float(np.sum((actual - reference) * np.log(actual / reference)))
    return value if math.isfinite(value) else None


def status(value: float | None, *, warn: float, alert: float) -> str:
    if value is None:
        return "no_data"
    if value >= alert:
        return "alert"
    if value >= warn:
        return "warn"
    return "ok"


def prediction_type(kind: str) -> str:
    """A regressor's predictions are binned as numbers, any other's as labels."""
    return NUMBER if kind == "regressor" else STRING


def _values(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _numbers(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind in "fiub":
        return array.astype(float, copy=False)
    out = np.empty(len(array), dtype=float)
    for i, v in enumerate(array.tolist()):
        try:
            out[i] = float(v) if v is not None and not isinstance(v, bool) else np.nan
        except (TypeError, ValueError):
            out[i] = np.nan
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)
