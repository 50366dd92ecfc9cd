"""Traffic, errors and latency per model, version and route, read from the
rollup.

Resolution is one minute: a window runs from the minute ``since`` falls in
to the end of the minute ``until`` falls in.
Percentiles come from the latency histogram (within ~6%, see latency.py).
Shadow predictions (route ``shadow``) are no client's request: they appear
under their version's routes only, never in the totals, a model's or a
version's own counts, or the series.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from django.db.models import Case, Count, Min, OuterRef, Q, Subquery, Sum, When
from django.utils import timezone

from . import drift_stats, quality, rollup, windows
from .latency import percentiles
from .models import LogGap, RequestLog, RequestStat
from .record import REFUSAL_CODES
from .traffic import PERCENTILES, Traffic
from .windows import DAY, HOUR, MINUTE

# Older than windows.py: callers import these from here.
from .windows import DEFAULT_WINDOW as DEFAULT_WINDOW
from .windows import MAX_WINDOW as MAX_WINDOW
from .windows import parse_since as parse_since

SHADOW = "shadow"


def window(since: datetime, until: datetime) -> Q:
    """Rollup rows covering [minute of since, end of the minute of until]:
    whole days, then whole hours, then minutes at each edge. When ``until``
    falls in the current minute nothing was logged after it yet, so a coarser
    row starting before it is read whole instead of the hours and minutes at
    the trailing edge."""
    start = windows.minute(since.astimezone(UTC))
    end = windows.minute(until.astimezone(UTC)) + MINUTE
    first_hour, first_day = windows.ceil(start, HOUR), windows.ceil(start, DAY)
    if end > windows.minute(timezone.now()):
        last_hour = last_day = end
    else:
        last_hour, last_day = windows.floor(end, HOUR), windows.floor(end, DAY)
    R = RequestStat.Resolution
    if first_day < last_day:
        spans = [
            (R.DAY, first_day, last_day),
            (R.HOUR, first_hour, first_day),
            (R.HOUR, last_day, last_hour),
            (R.MINUTE, start, first_hour),
            (R.MINUTE, last_hour, end),
        ]
    elif first_hour < last_hour:
        spans = [
            (R.HOUR, first_hour, last_hour),
            (R.MINUTE, start, first_hour),
            (R.MINUTE, last_hour, end),
        ]
    else:
        spans = [(R.MINUTE, start, end)]
    covered = Q(pk__in=[])
    for resolution, low, high in spans:
        if low < high:
            covered |= Q(resolution=resolution, start__gte=low, start__lt=high)
    return covered


def focus(
    slug: str | None,
    version: int | None,
    *,
    log: bool = False,
    slug_index: bool = True,
) -> Q:
    """One model's rows, or one version's (a version is asked with its model,
    never as the rollup's 0 for none resolved); in the log (``log``), the
    rows the rollup folds under that slug, and with ``slug_index=False`` not
    on the slug's index (rollup.logged_under says why)."""
    where = Q()
    if slug is not None:
        where &= (
            rollup.logged_under(slug, slug_index=slug_index) if log else Q(slug=slug)
        )
    if version is not None:
        where &= Q(version=version)
    return where


def summary(
    since: datetime,
    until: datetime,
    *,
    slug: str | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """The /api/stats/ document for [since, until]; with ``slug`` (and
    ``version``) only that model's (version's) requests, in totals too."""
    where = focus(slug, version)
    grouped = (
        RequestStat.objects.filter(window(since, until), where)
        .values_list("slug", "version", "route", "error", "bucket")
        .annotate(
            n=Sum("count"),
            r=Sum("rows"),
            s=Sum("latency_sum_ms"),
            b=Sum("batched"),
            z=Sum("batch_size_sum"),
            d=Sum("shadow_diff"),
            t=Sum("served_sum"),
            q=Sum("served_sq_sum"),
            u=Sum("unjoinable"),
        )
        .order_by()
    )
    totals = Traffic()
    per_model: dict[str, Traffic] = defaultdict(Traffic)
    per_version: dict[str, dict[int, Traffic]] = defaultdict(
        lambda: defaultdict(Traffic)
    )
    per_route: dict[tuple[str, int], dict[str, Traffic]] = defaultdict(
        lambda: defaultdict(Traffic)
    )
    for row in grouped:
        name, number, route, error, bucket, count, rows, latency = row[:8]
        batched, size, diff, served, squares, unjoinable = row[8:]
        counters = [per_route[name, number][route]]
        if route != SHADOW:
            counters += [totals, per_model[name], per_version[name][number]]
        else:
            per_version[name].setdefault(number, Traffic())
            per_model.setdefault(name, Traffic())
        for counter in counters:
            counter.add(
                error=error,
                bucket=bucket,
                count=count,
                rows=rows,
                latency=latency,
                batched=batched,
                batch_size_sum=size,
                shadow=(diff or 0.0, served or 0.0, squares or 0.0),
                unjoinable=unjoinable or 0,
            )
    kinds = _shadow_kinds(per_route)
    labelled = quality.by_route(since, until, slug=slug, version=version)
    per_version_quality = quality.of_versions(labelled)
    drifts = drift_stats.by_version(since, until, set(per_model))
    last = _last_requests(since, until, where) if per_model else {}
    models = []
    for name in sorted(per_model):
        versions = [
            {
                "version": number or None,
                **per_version[name][number].as_dict(),
                "last_request_at": last.get((name, number)),
                "quality": _quality_dict(
                    per_version_quality.get((name, number)),
                    per_version[name][number],
                ),
                "drift": drifts.get((name, number)),
                "routes": {
                    route: {
                        **_route_dict(route, counter, kinds.get((name, number), "")),
                        "quality": _quality_dict(
                            labelled.get((name, number, route)), counter
                        ),
                    }
                    for route, counter in sorted(per_route[name, number].items())
                },
            }
            for number in sorted(per_version[name], reverse=True)
        ]
        models.append(
            {
                "slug": name,
                **per_model[name].as_dict(),
                "last_request_at": max(
                    (v["last_request_at"] for v in versions if v["last_request_at"]),
                    default=None,
                ),
                "versions": versions,
            }
        )
    # A dropped row's model is not known: the note stands whatever the focus.
    dropped = LogGap.objects.filter(
        created_at__gte=since, created_at__lte=until
    ).aggregate(n=Sum("dropped"))
    return {
        "since": since,
        "until": until,
        "totals": {
            **totals.as_dict(),
            "dropped_log_rows": dropped["n"] or 0,
            "refusals": refusals(since, until, slug=slug, version=version),
        },
        "models": models,
    }


def _quality_dict(found: quality.Quality | None, counter: Traffic) -> dict[str, Any]:
    """Labels against the rows the version answered in the window: coverage
    is labelled / predicted; unjoinable rows were past the kept cap."""
    shown = (found or quality.Quality()).as_dict(predicted_rows=counter.ok_rows)
    shown["unjoinable"] = counter.unjoinable
    return shown


def _route_dict(route: str, counter: Traffic, kind: str) -> dict[str, Any]:
    found = counter.as_dict()
    if route == SHADOW:
        found["comparison"] = counter.comparison(kind)
    return found


def _shadow_kinds(per_route: dict[tuple[str, int], dict[str, Traffic]]) -> dict:
    """(slug, version) -> kind, for the versions that ran as shadows."""
    from registry.models import ModelVersion

    pairs = [key for key, routes in per_route.items() if SHADOW in routes]
    if not pairs:
        return {}
    found = ModelVersion.objects.filter(
        model__slug__in={slug for slug, _ in pairs},
        number__in={number for _, number in pairs},
    ).values_list("model__slug", "number", "kind")
    return {(slug, number): kind for slug, number, kind in found}


def refusals(
    since: datetime,
    until: datetime,
    *,
    slug: str | None = None,
    version: int | None = None,
) -> dict[str, int]:
    """Requests refused before a model answered, per code (the log's partial
    index on errors serves it)."""
    counted = (
        RequestLog.objects.filter(
            # The window's errors, on their index, rather than the model's rows.
            focus(slug, version, log=True, slug_index=False),
            created_at__gte=since,
            created_at__lt=until,
            status__gte=400,
            error_code__in=REFUSAL_CODES,
        )
        .values_list("error_code")
        .annotate(n=Count("id"))
        .order_by()
    )
    found = dict(counted)
    return {code: found.get(code, 0) for code in REFUSAL_CODES}


def _last_requests(
    since: datetime, until: datetime, where: Q
) -> dict[tuple[str, int], datetime]:
    """Latest request per (slug, version) served in the window, in one query
    whatever the number of versions: one rollup row stands for each version,
    and its newest log row is read from the end of that version's range of
    the (slug, version, time) index. The rollup's version 0 is the log's
    NULL."""

    def newest(version: Q) -> Subquery:
        rows = RequestLog.objects.filter(
            version, slug=OuterRef("slug"), created_at__gte=since, created_at__lte=until
        ).exclude(route=SHADOW)  # a shadow's rows answered no one
        return Subquery(rows.order_by("-created_at").values("created_at")[:1])

    # Grouping the outer query instead would group by the subqueries too,
    # running them for every rollup row.
    one_row_each = (
        RequestStat.objects.filter(window(since, until), where)
        .exclude(route=SHADOW)
        .values("slug", "version")
        .annotate(first=Min("pk"))
        .values("first")
    )
    found = (
        RequestStat.objects.filter(pk__in=one_row_each)
        .annotate(
            last=Case(
                When(version=0, then=newest(Q(version__isnull=True))),
                default=newest(Q(version=OuterRef("version"))),
            )
        )
        .values_list("slug", "version", "last")
    )
    return {(slug, version): last for slug, version, last in found}


def series(
    since: datetime,
    until: datetime,
    *,
    slug: str | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """Requests, errors and latency percentiles over time, for the charts;
    with ``slug`` (and ``version``) that model's (version's) only.

    Steps under an hour read minute rows; longer ones read hour rows, so a
    chart never aggregates more than a few thousand rows in Python.
    """
    cut = windows.steps(since, until)
    R = RequestStat.Resolution
    rows = RequestStat.objects.filter(
        focus(slug, version),
        resolution=R.MINUTE if cut.step < HOUR else R.HOUR,
        start__gte=cut.origin,
        start__lte=until,
    ).exclude(route=SHADOW)
    bins: dict[datetime, Traffic] = defaultdict(Traffic)
    for start, error, bucket, count in (
        rows.values_list("start", "error", "bucket").annotate(n=Sum("count")).order_by()
    ):
        bins[cut.start_of(start)].add(
            error=error, bucket=bucket, count=count, rows=0, latency=0.0
        )
    per_model: dict[str, dict[datetime, int]] = defaultdict(lambda: defaultdict(int))
    for start, slug, count in (
        rows.values_list("start", "slug").annotate(n=Sum("count")).order_by()
    ):
        per_model[slug][cut.start_of(start)] += count
    starts = cut.starts()
    points = []
    for start in starts:
        counter = bins.get(start)
        p = percentiles(counter.histogram.items(), PERCENTILES) if counter else {}
        points.append(
            {
                "start": start,
                "requests": counter.requests if counter else 0,
                "errors": counter.errors if counter else 0,
                "p50_ms": p.get(50.0),
                "p95_ms": p.get(95.0),
                "p99_ms": p.get(99.0),
            }
        )
    return {
        "step_seconds": int(cut.step.total_seconds()),
        "points": points,
        "models": {
            slug: [counts.get(start, 0) for start in starts]
            for slug, counts in sorted(per_model.items())
        },
    }


def recent_errors(
    since: datetime,
    *,
    until: datetime | None = None,
    slug: str | None = None,
    version: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The newest errors, newest first, on the log's partial index on errors."""
    errors = RequestLog.objects.filter(
        focus(slug or None, version, log=True, slug_index=False),
        status__gte=400,
        created_at__gte=since,
    )
    if until is not None:
        errors = errors.filter(created_at__lt=until)
    return list(
        errors.order_by("-created_at").values(
            "created_at", "slug", "version", "status", "error_code", "request_id"
        )[:limit]
    )


def has_requests(
    since: datetime,
    until: datetime,
    *,
    slug: str | None = None,
    version: int | None = None,
) -> bool:
    """Whether any client request was served in the window: one EXISTS on the
    rollup rows summary() would read."""
    return (
        RequestStat.objects.filter(window(since, until), focus(slug, version))
        .exclude(route=SHADOW)
        .exists()
    )
