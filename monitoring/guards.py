"""Rollout guards: a candidate that fails or slows is rolled back by itself.

Decided from the request log, which every worker and host writes, so any
worker may decide and all see the same rows: each worker checks, at most
every MODELHUB_GUARD_CHECK_MS after it writes log rows, the policies whose
candidate takes traffic and carries a guard. The window is the candidate's
last K requests or last M minutes since the policy was set (both when both
are given: the rows within M minutes, at most K). A guard trips only once
the window holds ``min_requests``: the candidate's weight goes to 0
(registry.rollouts.trip, channel ``auto`` with the reason), a metric counts
it, and every worker serves the active version from its next request.

Errors are what the candidate is answerable for: a 5xx, or a 422 (the model
refused the input). A caller's malformed body is a 400 whichever version
would have answered.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from registry import rollouts
from registry.models import TrafficPolicy

from . import metrics
from .models import RequestLog

logger = logging.getLogger(__name__)

_GUARDED = (
    Q(guard_error_rate__isnull=False)
    | Q(guard_p95_ms__isnull=False)
    | Q(guard_p95_ratio__isnull=False)
)


@dataclass(frozen=True)
class Trip:
    guard: str  # error_rate, p95_ms or p95_ratio
    reason: str


def check_all() -> list[Trip]:
    """Check every guarded policy whose candidate takes traffic; trip those
    whose candidate broke a guard. What tripped, for the caller to log."""
    tripped = []
    policies = (
        TrafficPolicy.objects.filter(_GUARDED, weight__gt=0, candidate__isnull=False)
        .select_related("model", "candidate", "model__active_version")
        .order_by("model_id")
    )
    for policy in policies:
        trip = evaluate(policy)
        if trip is None:
            continue
        if rollouts.trip(
            policy.model, candidate_id=policy.candidate_id, reason=trip.reason
        ):
            metrics.ROLLBACKS.labels(
                metrics.model_label(policy.model.slug, private=policy.model.private),
                trip.guard,
            ).inc()
            logger.warning("%s: %s", policy.model.slug, trip.reason)
            tripped.append(trip)
    return tripped


def evaluate(policy: TrafficPolicy) -> Trip | None:
    """The first guard the candidate breaks over its window, if any."""
    slug, number = policy.model.slug, policy.candidate.number
    rows = _window(policy, slug, number, route="candidate")
    if len(rows) < policy.guard_min_requests:
        return None
    where = _describe_window(policy, len(rows))
    failed = sum(1 for status, _, _ in rows if status >= 500 or status == 422)
    rate = failed / len(rows)
    if policy.guard_error_rate is not None and rate > policy.guard_error_rate:
        return Trip(
            "error_rate",
            f"v{number} failed {failed} of its {where} ({rate:.1%}), above the "
            f"error-rate guard of {policy.guard_error_rate:.1%}; weight set to 0.",
        )
    p95 = _p95([ms for _, ms, _ in rows])
    if policy.guard_p95_ms is not None and p95 > policy.guard_p95_ms:
        return Trip(
            "p95_ms",
            f"v{number}'s p95 latency was {p95:.1f} ms over its {where}, above "
            f"the guard of {policy.guard_p95_ms:g} ms; weight set to 0.",
        )
    if policy.guard_p95_ratio is not None and policy.model.active_version is not None:
        since = min(created for _, _, created in rows)
        active = _active_rows(policy, slug, since, len(rows))
        if len(active) >= policy.guard_min_requests:
            base = _p95([ms for _, ms, _ in active])
            if base > 0 and p95 > policy.guard_p95_ratio * base:
                return Trip(
                    "p95_ratio",
                    f"v{number}'s p95 latency was {p95:.1f} ms over its {where}, "
                    f"{p95 / base:.1f}x the active v"
                    f"{policy.model.active_version.number}'s {base:.1f} ms, above "
                    f"the guard of {policy.guard_p95_ratio:g}x; weight set to 0.",
                )
    return None


def _window(
    policy: TrafficPolicy, slug: str, number: int, *, route: str
) -> list[tuple[int, float, object]]:
    rows = RequestLog.objects.filter(
        slug=slug, version=number, route=route, created_at__gte=_start(policy)
    )
    limit = policy.guard_last_requests or rollouts.MAX_GUARD_REQUESTS
    return list(
        rows.order_by("-created_at").values_list("status", "latency_ms", "created_at")[
            :limit
        ]
    )


def _active_rows(
    policy: TrafficPolicy, slug: str, since: object, limit: int
) -> list[tuple[int, float, object]]:
    """The active version's requests over the same span, for the ratio."""
    number = policy.model.active_version.number
    rows = RequestLog.objects.filter(
        slug=slug, version=number, route="active", created_at__gte=since
    )
    return list(
        rows.order_by("-created_at").values_list("status", "latency_ms", "created_at")[
            :limit
        ]
    )


def _start(policy: TrafficPolicy):  # noqa: ANN202 - a datetime
    """Rows since the policy was set, within its minutes if it has them."""
    start = policy.updated_at
    if policy.guard_minutes is not None:
        start = max(start, timezone.now() - timedelta(minutes=policy.guard_minutes))
    return start


def _describe_window(policy: TrafficPolicy, count: int) -> str:
    if policy.guard_minutes is not None:
        return f"{count} requests of the last {policy.guard_minutes:g} minutes"
    return f"last {count} requests"


def _p95(latencies: list[float]) -> float:
    """Nearest rank, as the stats' percentiles are read."""
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
