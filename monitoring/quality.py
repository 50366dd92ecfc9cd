"""Live quality per version and route, from the labels joined so far
(monitoring.feedback): accuracy and macro-F1 where labels are compared,
MAE and RMSE for regressors.

A window holds the rows *predicted* in it, whenever their labels arrived:
quality is the model's at the time it answered. Classifiers are read as a
confusion count per (label, predicted) pair, so macro-F1 is sklearn's
``f1_score(average="macro")`` over the labels either side saw.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

from django.db.models import F, Q, Sum

from . import windows
from .models import FeedbackStat

SHADOW = "shadow"


@dataclass
class Quality:
    """What the labels of one (version, route), or of a version's client
    routes together, say."""

    labelled: int = 0
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)
    regressed: int = 0
    abs_error: float = 0.0
    sq_error: float = 0.0

    def add(self, other: Quality) -> None:
        self.labelled += other.labelled
        for pair, count in other.confusion.items():
            self.confusion[pair] = self.confusion.get(pair, 0) + count
        self.regressed += other.regressed
        self.abs_error += other.abs_error
        self.sq_error += other.sq_error

    def as_dict(self, predicted_rows: int | None = None) -> dict[str, Any]:
        found: dict[str, Any] = {"labelled": self.labelled}
        if predicted_rows is not None:
            found["coverage"] = (
                round(self.labelled / predicted_rows, 4) if predicted_rows else None
            )
        if self.regressed:
            found["mae"] = round(self.abs_error / self.regressed, 6)
            found["rmse"] = round(math.sqrt(self.sq_error / self.regressed), 6)
        elif self.confusion:
            found["accuracy"] = round(self.accuracy(), 4)
            found["f1_macro"] = round(self.f1_macro(), 4)
        return found

    def accuracy(self) -> float:
        total = sum(self.confusion.values())
        right = sum(
            n for (label, predicted), n in self.confusion.items() if label == predicted
        )
        return right / total if total else 0.0

    def f1_macro(self) -> float:
        classes = {c for pair in self.confusion for c in pair}
        if not classes:
            return 0.0
        scores = []
        for c in classes:
            tp = self.confusion.get((c, c), 0)
            fp = sum(n for (lab, pred), n in self.confusion.items() if pred == c) - tp
            fn = sum(n for (lab, pred), n in self.confusion.items() if lab == c) - tp
            scores.append(2 * tp / (2 * tp + fp + fn))
        return sum(scores) / len(scores)


Key = tuple[str, int, str]  # slug, version, route


def by_route(
    since: datetime,
    until: datetime,
    *,
    slug: str | None = None,
    version: int | None = None,
) -> dict[Key, Quality]:
    """Quality per (slug, version, route) of the rows predicted in the window,
    read from the labels' rollup (monitoring.feedback_rollup)."""
    from .stats import window  # stats shows quality: imported when called

    where = window(since, until)
    if slug is not None:
        where &= Q(slug=slug)
    if version is not None:
        where &= Q(version=version)
    grouped = (
        FeedbackStat.objects.filter(where)
        .values_list("slug", "version", "route", "label", "predicted")
        .annotate(
            n=Sum("count"), r=Sum("regressed"), a=Sum("abs_error"), s=Sum("sq_error")
        )
        .order_by()
    )
    found: dict[Key, Quality] = defaultdict(Quality)
    for (
        name,
        number,
        route,
        label,
        predicted,
        count,
        regressed,
        absolute,
        squares,
    ) in grouped:
        if not count:
            continue  # labels sent again: their first pair is counted out
        quality = found[name, number, route]
        quality.labelled += count
        if regressed:
            quality.regressed += regressed
            quality.abs_error += absolute or 0.0
            quality.sq_error += squares or 0.0
        if count > regressed:
            quality.confusion[label, predicted] = count - regressed
    return dict(found)


def of_versions(per_route: dict[Key, Quality]) -> dict[tuple[str, int], Quality]:
    """A version's quality over what clients were served (every route but
    the shadow's)."""
    found: dict[tuple[str, int], Quality] = defaultdict(Quality)
    for (name, number, route), quality in per_route.items():
        if route != SHADOW:
            found[name, number].add(quality)
    return dict(found)


class QualityPoint(TypedDict):
    labelled: int
    value: float | None  # accuracy, or a regressor's MAE; None without labels


class VersionQuality(TypedDict):
    version: int
    metric: str  # "accuracy" or "mae"
    points: list[QualityPoint]


class QualitySeries(TypedDict):
    step_seconds: int
    starts: list[datetime]
    versions: list[VersionQuality]


def quality_series(
    since: datetime,
    until: datetime,
    *,
    slug: str,
    version: int | None = None,
) -> QualitySeries:
    """Each version's accuracy (a regressor's MAE) per step of the traffic
    chart, over the rows served to clients: one query on the labels' rollup,
    its minute or hour rows, in UTC like the traffic rollup's steps."""
    cut = windows.steps(since, until)
    by_minute = cut.step < windows.HOUR
    first = windows.minute(since.astimezone(UTC))
    if not by_minute:
        first = first.replace(minute=0)
    rows = FeedbackStat.objects.filter(
        resolution="m" if by_minute else "h",
        start__gte=first,
        start__lte=until,
        slug=slug,
    ).exclude(route=SHADOW)
    if version is not None:
        rows = rows.filter(version=version)
    grouped = (
        rows.values_list("version", "start")
        .annotate(
            n=Sum("count"),
            r=Sum("regressed"),
            hits=Sum("count", filter=Q(regressed=0, label=F("predicted"))),
            a=Sum("abs_error"),
        )
        .order_by()
    )
    # version -> step -> [labelled, regressed, right, absolute error]
    sums: dict[int, dict[datetime, list]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0, 0, 0.0])
    )
    for number, at, count, regressed, right, absolute in grouped:
        step = sums[number][cut.start_of(at)]
        step[0] += count
        step[1] += regressed or 0
        step[2] += right or 0
        step[3] += absolute or 0.0
    starts = cut.starts()
    versions: list[VersionQuality] = []
    for number in sorted(sums):
        steps = sums[number]
        regressor = any(step[1] for step in steps.values())
        points: list[QualityPoint] = []
        for start in starts:
            labelled, regressed, right, absolute = steps.get(start, (0, 0, 0, 0.0))
            compared = labelled - regressed
            if regressor:
                value = round(absolute / regressed, 6) if regressed else None
            else:
                value = round(right / compared, 4) if compared else None
            points.append({"labelled": labelled, "value": value})
        versions.append(
            {
                "version": number,
                "metric": "mae" if regressor else "accuracy",
                "points": points,
            }
        )
    return {
        "step_seconds": int(cut.step.total_seconds()),
        "starts": starts,
        "versions": versions,
    }
