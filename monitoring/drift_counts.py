"""Counting what every worker predicts into its version's drift bins.

The request itself only hands its decoded input and predictions to this
worker's ``counter`` (an append). Every MODELHUB_LOG_ROLLUP_MS, when the
request log's writer folds the rollup, the rows waiting are binned together
(one vectorised pass per version and feature) and added to DriftCount at
the rollup's three resolutions, so the counts are the same whichever worker
served. A version with no reference yet has its rows kept as DriftSample
until MODELHUB_DRIFT_BASELINE_ROWS of them fit its baseline.

Rows waiting are bounded (``MAX_WAITING_ROWS``): past it a worker leaves
rows out until its next fold, so under a flood drift reads a sample, whose
shares (all PSI uses) stay right.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Sum

from registry.jsonvalues import to_json_value

from . import writer_lock
from .drift import Bins, Reference, prediction_type
from .models import DriftCount, DriftReference, DriftSample
from .rollup import periods, upsert_sql

logger = logging.getLogger(__name__)

MAX_WAITING_ROWS = 50_000
_KEY = ("resolution", "start", "slug", "version", "feature", "bin")
_CHUNK = 500


@dataclass(slots=True)
class Observed:
    """One successful request's rows, as its version saw them."""

    at: datetime
    version_id: int
    slug: str
    number: int
    names: tuple[str, ...]
    data: Any
    predictions: Any
    rows: int


class DriftCounter:
    """This process's rows waiting to be binned, and the references it knows."""

    def __init__(self) -> None:
        self._waiting: list[Observed] = []
        self._rows = 0
        self._lock = threading.Lock()
        self._folding = threading.Lock()
        self._references: dict[int, Reference] = {}
        self.left_out = 0

    def note(self, observed: Observed) -> None:
        """The hot path's part: keep the request's rows for the next fold."""
        with self._lock:
            if self._rows + observed.rows > MAX_WAITING_ROWS:
                self.left_out += observed.rows
                return
            self._waiting.append(observed)
            self._rows += observed.rows

    def waiting(self) -> int:
        """Rows noted and not yet folded."""
        return self._rows

    def reset(self) -> None:
        with self._lock:
            self._waiting, self._rows = [], 0
            self._references.clear()
            self.left_out = 0

    def fold(self) -> None:
        """Bin the rows waiting into DriftCount (or the baseline's samples)."""
        with self._folding:
            with self._lock:
                waiting, self._waiting, self._rows = self._waiting, [], 0
            if not waiting:
                return
            by_version: dict[int, list[Observed]] = defaultdict(list)
            for observed in waiting:
                by_version[observed.version_id].append(observed)
            self._learn(set(by_version))
            counts: list[tuple[Any, ...]] = []
            for version_id, observed in by_version.items():
                reference = self._references.get(version_id)
                if reference is None:
                    taken, fitted = _sample(version_id, observed)
                    if fitted is None:
                        continue
                    reference = self._references[version_id] = fitted
                    observed = _past(observed, taken)
                counts += _counted(reference, observed)
            _add(counts)

    def _learn(self, version_ids: set[int]) -> None:
        """Fetch the references of versions this process has none for yet
        (a baseline fitted by another worker, since the last fold)."""
        unknown = version_ids - set(self._references)
        if not unknown:
            return
        for version_id, bins in DriftReference.objects.filter(
            version_id__in=unknown
        ).values_list("version_id", "bins"):
            self._references[version_id] = Reference.from_dict(bins)


counter = DriftCounter()


def columns_of(data: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """A decoded input's columns by feature name (DataFrame or 2-D array)."""
    if hasattr(data, "columns"):
        return {n: data[n].to_numpy() for n in names if n in data.columns}
    array = np.asarray(data)
    if array.ndim != 2 or array.shape[1] != len(names):
        return {}
    return {name: array[:, i] for i, name in enumerate(names)}


def _joined(observed: list[Observed]) -> tuple[dict[str, Any], Any]:
    """The requests' columns and predictions, end to end."""
    parts: dict[str, list[Any]] = defaultdict(list)
    predictions: list[Any] = []
    for item in observed:
        for name, column in columns_of(item.data, item.names).items():
            parts[name].append(column)
        if item.predictions is not None and np.ndim(item.predictions) == 1:
            predictions.append(np.asarray(item.predictions))
    columns = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    joined = np.concatenate(predictions) if predictions else None
    return columns, joined


def _counted(reference: Reference, observed: list[Observed]) -> list[tuple[Any, ...]]:
    """DriftCount rows (key, count) for the requests, hour by hour."""
    if not observed:
        return []
    by_hour: dict[datetime, list[Observed]] = defaultdict(list)
    for item in observed:
        by_hour[item.at.replace(minute=0, second=0, microsecond=0)].append(item)
    slug, number = observed[0].slug, observed[0].number
    found = []
    for hour, items in by_hour.items():
        columns, predictions = _joined(items)
        binned: list[tuple[Bins, Any]] = [
            (bins, columns[bins.name])
            for bins in reference.features
            if bins.name in columns
        ]
        if reference.predictions is not None and predictions is not None:
            binned.append((reference.predictions, predictions))
        for bins, values in binned:
            counts = bins.count(values)
            # By the hour and the day: minute rows would be ten per bin where
            # the rollup has one, and drift over minutes is noise.
            for resolution, start in periods(hour)[1:]:
                found += [
                    (resolution, start, slug, number, bins.name, index, int(count))
                    for index, count in enumerate(counts)
                    if count
                ]
    return found


def _add(counts: list[tuple[Any, ...]]) -> None:
    if not counts:
        return
    db = connections[DEFAULT_DB_ALIAS]
    with writer_lock.held(db), transaction.atomic(using=db.alias):
        _insert(db, counts)


def _insert(db: Any, counts: list[tuple[Any, ...]]) -> None:
    """Add ``counts`` inside the caller's transaction."""
    table = DriftCount._meta.db_table
    with db.cursor() as cursor:
        for i in range(0, len(counts), _CHUNK):
            chunk = counts[i : i + _CHUNK]
            sql = upsert_sql(table, _KEY, ("count",), len(chunk))
            cursor.execute(sql, [v for row in chunk for v in row])


def _past(observed: list[Observed], rows: int) -> list[Observed]:
    """The requests' rows after their first ``rows`` (the baseline's)."""
    rest = []
    for item in observed:
        if rows >= item.rows:
            rows -= item.rows
            continue
        if rows:
            data = (
                item.data.iloc[rows:]
                if hasattr(item.data, "iloc")
                else item.data[rows:]
            )
            predictions = (
                item.predictions[rows:] if item.predictions is not None else None
            )
            item = Observed(
                item.at,
                item.version_id,
                item.slug,
                item.number,
                item.names,
                data,
                predictions,
                item.rows - rows,
            )
            rows = 0
        rest.append(item)
    return rest


def _sample(version_id: int, observed: list[Observed]) -> tuple[int, Reference | None]:
    """Keep rows for the baseline, and fit it once there are enough: the rows
    taken for it, and the version's reference if it has one now.

    One transaction with the version's row locked (SQLite: the log's write
    lock), so workers sampling at once neither both fit it nor keep rows
    for a baseline another has fitted."""
    from registry.models import ModelVersion

    needed = settings.MODELHUB_DRIFT_BASELINE_ROWS
    db = connections[DEFAULT_DB_ALIAS]
    with writer_lock.held(db), transaction.atomic(using=db.alias):
        version = (
            ModelVersion.objects.select_for_update(of=("self",))
            .select_related("model")
            .filter(pk=version_id)
            .first()
        )
        if version is None:  # deleted since: nothing to keep
            return sum(item.rows for item in observed), None
        fitted = DriftReference.objects.filter(version=version).values_list(
            "bins", flat=True
        )
        if fitted:
            return 0, Reference.from_dict(fitted[0])
        samples = DriftSample.objects.filter(version=version)
        have = samples.aggregate(n=Sum("rows"))["n"] or 0
        columns, predictions = _joined(observed)
        take = min(needed - have, sum(item.rows for item in observed))
        DriftSample.objects.create(
            version=version,
            rows=take,
            values={
                "columns": {n: to_json_value(c[:take]) for n, c in columns.items()},
                "predictions": to_json_value(predictions[:take])
                if predictions is not None
                else None,
            },
        )
        if have + take < needed:
            return take, None
        reference = _fit(version, db)
    logger.info("drift baseline of %s fitted on %d rows", version, reference.rows)
    return take, reference


def _fit(version: Any, db: Any) -> Reference:
    """Fit the baseline from the first samples (inside the caller's
    transaction); rows sampled past them are counted against it. The
    samples go, the reference stays."""
    samples = list(
        DriftSample.objects.filter(version=version)
        .order_by("pk")
        .values_list("values", "created_at")
    )
    needed = settings.MODELHUB_DRIFT_BASELINE_ROWS
    columns: dict[str, list[Any]] = defaultdict(list)
    predictions: list[Any] = []
    for values, _ in samples:
        for name, column in values["columns"].items():
            columns[name] += column
        predictions += values.get("predictions") or []
    reference = Reference.of(
        {name: _array(values[:needed]) for name, values in columns.items()},
        feature_types(version.input_schema),
        _array(predictions[:needed]) if predictions else None,
        prediction_type(version.kind),
    )
    DriftReference.objects.create(
        version=version,
        source=DriftReference.Source.BASELINE,
        rows=reference.rows,
        bins=reference.as_dict(),
    )
    DriftSample.objects.filter(version=version).delete()
    _insert(db, _counted(reference, _sampled_past(version, samples, needed)))
    return reference


def _sampled_past(
    version: Any, samples: list[tuple[dict[str, Any], datetime]], needed: int
) -> list[Observed]:
    """The sampled rows after the first ``needed``, as requests to count."""
    import pandas as pd

    found, seen = [], 0
    for values, created_at in samples:
        rows = len(
            next(iter(values["columns"].values()), values.get("predictions") or [])
        )
        skip = max(0, needed - seen)
        seen += rows
        if skip >= rows:
            continue
        data = pd.DataFrame({n: c[skip:] for n, c in values["columns"].items()})
        kept = values.get("predictions")
        found.append(
            Observed(
                created_at,
                version.pk,
                version.model.slug,
                version.number,
                tuple(values["columns"]),
                data,
                _array(kept[skip:]) if kept else None,
                rows - skip,
            )
        )
    return found


def feature_types(schema: dict[str, Any]) -> dict[str, str]:
    """Each feature's type as drift bins it: strings as categories."""
    return {
        str(f["name"]): "string" if f.get("type") == "string" else "number"
        for f in schema.get("features") or []
    }


def _array(values: list[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array
