"""The dashboard's rollouts panel: each model's traffic policy beside what its
routes served in the window, its shadows against what was served, and the
guards that rolled a candidate back.

Read from ``stats.summary`` (the rollup) plus the registry's policies and
policy history: three small queries, whatever the traffic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from registry.admin_rollouts.history import percent, summarize_guards
from registry.models import Activation, MLModel, PolicyChange, TrafficPolicy

from .stats import SHADOW

# Active and candidate first, so the two read on adjacent rows; the shadow
# last: it served no one.
ROUTE_ORDER = ("active", "candidate", "pinned", "alias", SHADOW)
ROLLOUT_ROUTES = frozenset({"candidate", SHADOW})
# Guard trips listed, newest first.
TRIPS_SHOWN = 20


class RouteRow(TypedDict):
    route: str
    version: int | None
    current: bool  # the version the policy names for this route now
    requests: int
    errors: int
    error_percent: float
    share_percent: float | None  # of the model's served requests
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class Rollout(TypedDict):
    slug: str
    has_policy: bool
    active: int | None
    candidate: int | None
    weight: str | None  # "20%"
    sticky: str  # "header X-User", "feature customer_id" or ""
    shadow: int | None
    guards: str
    routes: list[RouteRow]


class ShadowPair(TypedDict):
    slug: str
    version: int | None
    compared_rows: int
    agreement_percent: float | None  # labels
    mae: float | None  # values
    mae_to_std: float | None
    served_std: float | None
    requests: int
    errors: int
    error_percent: float
    p50_ms: float | None
    p95_ms: float | None


class GuardTrip(TypedDict):
    created_at: datetime
    slug: str
    candidate: int | None
    weight: str | None  # the candidate's weight before the trip
    reason: str


class RolloutPanel(TypedDict):
    rollouts: list[Rollout]
    shadow_pairs: list[ShadowPair]
    trips: list[GuardTrip]


def panel(summary: dict[str, Any], *, slug: str | None = None) -> RolloutPanel:
    """What the panel shows for ``summary``'s window (one model's with
    ``slug``): models with a policy or with candidate or shadow traffic."""
    traffic = {
        m["slug"]
        for m in summary["models"]
        if (slug is None or m["slug"] == slug) and _has_rollout_traffic(m)
    }
    policies = TrafficPolicy.objects.select_related(
        "model__active_version", "candidate", "shadow"
    )
    if slug is not None:
        policies = policies.filter(model__slug=slug)
    by_slug: dict[str, TrafficPolicy] = {p.model.slug: p for p in policies}
    unpolicied = traffic - set(by_slug)
    models = {
        m.slug: m
        for m in MLModel.objects.filter(slug__in=unpolicied).select_related(
            "active_version"
        )
    }
    served = {m["slug"]: m for m in summary["models"]}
    rollouts = []
    for name in sorted(set(by_slug) | traffic):
        policy = by_slug.get(name)
        model = policy.model if policy is not None else models.get(name)
        rollouts.append(_rollout(name, policy, model, served.get(name)))
    return {
        "rollouts": rollouts,
        "shadow_pairs": _shadow_pairs(rollouts, served),
        "trips": guard_trips(summary["since"], summary["until"], slug=slug),
    }


def guard_trips(
    since: datetime, until: datetime, *, slug: str | None = None
) -> list[GuardTrip]:
    """Candidates a guard rolled back in [since, until], newest first: the
    reason is the one place that says why a rollout stopped by itself."""
    trips = PolicyChange.objects.filter(
        action=PolicyChange.Action.TRIP,
        channel=Activation.Channel.AUTO,
        created_at__gte=since,
        created_at__lte=until,
    ).select_related("model")
    if slug is not None:
        trips = trips.filter(model__slug=slug)
    found: list[GuardTrip] = []
    for change in trips.order_by("-created_at", "-id")[:TRIPS_SHOWN]:
        before = change.before or {}
        weight = before.get("weight")
        found.append(
            {
                "created_at": change.created_at,
                "slug": change.model.slug,
                "candidate": before.get("candidate"),
                "weight": percent(weight) if isinstance(weight, int | float) else None,
                "reason": change.reason,
            }
        )
    return found


def _has_rollout_traffic(model: dict[str, Any]) -> bool:
    return any(ROLLOUT_ROUTES & set(v["routes"]) for v in model["versions"])


def _rollout(
    slug: str,
    policy: TrafficPolicy | None,
    model: MLModel | None,
    served: dict[str, Any] | None,
) -> Rollout:
    active = model.active_version.number if model and model.active_version else None
    candidate = policy.candidate.number if policy and policy.candidate else None
    shadow = policy.shadow.number if policy and policy.shadow else None
    current = {"active": active, "candidate": candidate, SHADOW: shadow}
    return {
        "slug": slug,
        "has_policy": policy is not None,
        "active": active,
        "candidate": candidate,
        "weight": percent(policy.weight) if candidate is not None else None,
        "sticky": _sticky(policy),
        "shadow": shadow,
        "guards": _guard_limits(policy),
        "routes": _route_rows(served, current),
    }


def _route_rows(
    served: dict[str, Any] | None, current: dict[str, int | None]
) -> list[RouteRow]:
    if served is None:
        return []
    rows: list[RouteRow] = []
    for version in served["versions"]:
        for route, counts in version["routes"].items():
            share = None
            if route != SHADOW and served["requests"]:
                share = counts["requests"] / served["requests"] * 100
            rows.append(
                {
                    "route": route,
                    "version": version["version"],
                    "current": version["version"] is not None
                    and current.get(route) == version["version"],
                    "requests": counts["requests"],
                    "errors": counts["errors"],
                    "error_percent": counts["error_rate"] * 100,
                    "share_percent": share,
                    "p50_ms": counts["p50_ms"],
                    "p95_ms": counts["p95_ms"],
                    "p99_ms": counts["p99_ms"],
                }
            )

    def order(row: RouteRow) -> tuple[int, bool, int]:
        known = row["route"] in ROUTE_ORDER
        rank = ROUTE_ORDER.index(row["route"]) if known else len(ROUTE_ORDER)
        return rank, not row["current"], -(row["version"] or 0)

    return sorted(rows, key=order)


def _shadow_pairs(
    rollouts: list[Rollout], served: dict[str, dict[str, Any]]
) -> list[ShadowPair]:
    """One per (model, shadow version) with shadow rows in the window, and the
    policy's shadow even without any (all skipped, or no traffic yet)."""
    pairs: list[ShadowPair] = []
    for rollout in rollouts:
        slug = rollout["slug"]
        seen = set()
        versions = served[slug]["versions"] if slug in served else []
        for version in versions:
            counts = version["routes"].get(SHADOW)
            if counts is None:
                continue
            seen.add(version["version"])
            pairs.append(_pair(slug, version["version"], counts))
        if rollout["shadow"] is not None and rollout["shadow"] not in seen:
            pairs.append(_pair(slug, rollout["shadow"], None))
    return pairs


def _pair(slug: str, version: int | None, counts: dict[str, Any] | None) -> ShadowPair:
    counts = counts or {}
    comparison = counts.get("comparison") or {}
    agreement = comparison.get("agreement")
    return {
        "slug": slug,
        "version": version,
        "compared_rows": comparison.get("rows", 0),
        "agreement_percent": agreement * 100 if agreement is not None else None,
        "mae": comparison.get("mae"),
        "mae_to_std": comparison.get("mae_to_std"),
        "served_std": comparison.get("served_std"),
        "requests": counts.get("requests", 0),
        "errors": counts.get("errors", 0),
        "error_percent": counts.get("error_rate", 0.0) * 100,
        "p50_ms": counts.get("p50_ms"),
        "p95_ms": counts.get("p95_ms"),
    }


def _sticky(policy: TrafficPolicy | None) -> str:
    if policy is None:
        return ""
    if policy.sticky_header:
        return f"header {policy.sticky_header}"
    if policy.sticky_feature:
        return f"feature {policy.sticky_feature}"
    return ""


def _guard_limits(policy: TrafficPolicy | None) -> str:
    """``error rate > 0.05, last 100 requests, min 20``: the admin's wording,
    without its ``guards:`` (the panel labels it)."""
    if policy is None:
        return ""
    described = summarize_guards(
        {
            "error_rate": policy.guard_error_rate,
            "p95_ms": policy.guard_p95_ms,
            "p95_ratio": policy.guard_p95_ratio,
            "last_requests": policy.guard_last_requests,
            "minutes": policy.guard_minutes,
            "min_requests": policy.guard_min_requests,
        }
    )
    return described.removeprefix("guards: ")
