"""Drift per version over a window, as /api/stats/, the dashboard and the
gauges show it: each feature's PSI against the version's reference, worst
first, and the predictions'.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q, Sum

from . import drift_counts
from .drift import Reference, psi, status
from .models import DriftCount, DriftReference, DriftSample

logger = logging.getLogger(__name__)

Version = tuple[str, int]  # slug, number


def window(since: datetime, until: datetime) -> Q:
    """DriftCount rows for [since, until]: whole days, then hours from the
    hour ``since`` falls in (drift is counted by the hour, not the minute)."""
    hour = since.replace(minute=0, second=0, microsecond=0)
    first_day = hour.replace(hour=0)
    if first_day < hour:
        first_day += timedelta(days=1)
    return Q(resolution="d", start__gte=first_day, start__lte=until) | Q(
        resolution="h", start__gte=hour, start__lt=first_day, start__lte=until
    )


def by_version(
    since: datetime, until: datetime, slugs: set[str]
) -> dict[Version, dict[str, Any]]:
    """Drift of every version of ``slugs`` with a reference (or a baseline
    being collected), over the hours holding [since, until]."""
    if not slugs:
        return {}
    try:
        drift_counts.counter.fold()  # this process's rows, not yet folded
    except DatabaseError as exc:
        logger.warning("drift counts not brought up to date: %s", exc)
    live: dict[Version, dict[str, dict[int, int]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    counted = (
        DriftCount.objects.filter(window(since, until), slug__in=slugs)
        .values_list("slug", "version", "feature", "bin")
        .annotate(n=Sum("count"))
        .order_by()
    )
    for slug, number, feature, index, count in counted:
        live[slug, number][feature][index] = count
    references = DriftReference.objects.filter(
        version__model__slug__in=slugs
    ).values_list("version__model__slug", "version__number", "source", "bins")
    found: dict[Version, dict[str, Any]] = {}
    for slug, number, source, bins in references:
        found[slug, number] = scored(
            Reference.from_dict(bins), source, live[slug, number]
        )
    waiting = (
        DriftSample.objects.filter(version__model__slug__in=slugs)
        .values_list("version__model__slug", "version__number")
        .annotate(n=Sum("rows"))
        .order_by()
    )
    for slug, number, rows in waiting:
        found.setdefault((slug, number), collecting(rows))
    return found


def scored(
    reference: Reference, source: str, live: dict[str, dict[int, int]]
) -> dict[str, Any]:
    """The window's PSI per feature (worst first) and for the predictions."""
    warn, alert = settings.MODELHUB_DRIFT_WARN, settings.MODELHUB_DRIFT_ALERT

    def score(bins: Any) -> dict[str, Any]:
        counts = [live.get(bins.name, {}).get(i, 0) for i in range(bins.size)]
        value = psi(bins.expected, counts)
        shown = None if value is None else round(value, 4)
        return {"psi": shown, "status": status(value, warn=warn, alert=alert)}

    features = {bins.name: score(bins) for bins in reference.features}
    ordered = sorted(features.items(), key=lambda item: -(item[1]["psi"] or -1.0))
    rows = max((sum(c.values()) for c in live.values()), default=0)
    return {
        "reference": source,
        "reference_rows": reference.rows,
        "rows": rows,
        "features": dict(ordered),
        "predictions": score(reference.predictions)
        if reference.predictions is not None
        else None,
    }


def collecting(rows: int) -> dict[str, Any]:
    """A version whose baseline is still being collected."""
    return {
        "reference": DriftReference.Source.BASELINE.value,
        "collecting": {"rows": rows, "of": settings.MODELHUB_DRIFT_BASELINE_ROWS},
        "features": {},
        "predictions": None,
    }


WORST_SHOWN = 3  # features drawn over time: the window's worst


def series(
    since: datetime, until: datetime, *, slug: str, version: int | None = None
) -> dict[str, Any]:
    """Each version's worst features' PSI hour by hour, for the dashboard's
    drift chart: ``{"starts": [hours], "versions": [{"version", "reference",
    "features": [{"name", "psi": [per hour]}]}]}``. The worst are the
    window's ``WORST_SHOWN`` highest PSIs; an hour without rows is None."""
    hour = since.replace(minute=0, second=0, microsecond=0)
    starts = []
    moment = hour
    while moment <= until:
        starts.append(moment)
        moment += timedelta(hours=1)
    references = DriftReference.objects.filter(version__model__slug=slug)
    if version is not None:
        references = references.filter(version__number=version)
    found = []
    for number, source, bins in references.values_list(
        "version__number", "source", "bins"
    ).order_by("-version__number"):
        reference = Reference.from_dict(bins)
        hourly: dict[datetime, dict[str, dict[int, int]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        for start, feature, index, count in DriftCount.objects.filter(
            resolution="h", start__gte=hour, start__lte=until, slug=slug, version=number
        ).values_list("start", "feature", "bin", "count"):
            hourly[start][feature][index] = count
        whole = scored(reference, source, _summed(hourly.values()))
        worst = [
            name
            for name, found_psi in whole["features"].items()
            if found_psi["psi"] is not None
        ][:WORST_SHOWN]
        by_name = {bins.name: bins for bins in reference.features}
        lines = []
        for name in worst:
            bins = by_name[name]
            points = []
            for start in starts:
                counts = hourly.get(start, {}).get(name, {})
                value = psi(bins.expected, [counts.get(i, 0) for i in range(bins.size)])
                points.append(None if value is None else round(value, 4))
            lines.append({"name": name, "psi": points})
        if lines:
            found.append({"version": number, "reference": source, "features": lines})
    return {"starts": starts, "versions": found}


def _summed(hours: Any) -> dict[str, dict[int, int]]:
    total: dict[str, dict[int, int]] = defaultdict(dict)
    for features in hours:
        for feature, counts in features.items():
            for index, count in counts.items():
                total[feature][index] = total[feature].get(index, 0) + count
    return total
