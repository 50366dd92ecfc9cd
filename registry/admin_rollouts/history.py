"""The lines the model page's history shows for alias moves and traffic
policy changes (who, when, channel, from → to, and a tripped guard's reason)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from ..models import AliasMove, MLModel, PolicyChange

# Rows of each kind the model page shows, newest first.
HISTORY_ROWS = 50


def percent(weight: float) -> str:
    """0.2 as ``20%``, 0.125 as ``12.5%``: a weight as people read it."""
    return f"{round(weight * 100, 4):g}%"


def summarize(policy: dict[str, Any] | None) -> str:
    """A policy as ``rollouts.describe`` gives it (and the history keeps it),
    in one line."""
    if policy is None:
        return "no policy"
    parts = []
    if policy.get("candidate") is not None:
        parts.append(f"candidate v{policy['candidate']} at {percent(policy['weight'])}")
    else:
        parts.append("no candidate")
    if policy.get("sticky"):
        parts.append(f"sticky by header {policy['sticky']}")
    if policy.get("sticky_feature"):
        parts.append(f"sticky by feature {policy['sticky_feature']}")
    if policy.get("shadow") is not None:
        parts.append(f"shadow v{policy['shadow']}")
    guards = summarize_guards(policy.get("guards") or {})
    if guards:
        parts.append(guards)
    return ", ".join(parts)


def summarize_guards(guards: dict[str, Any]) -> str:
    """``guards: error rate > 0.05 or p95 > 250 ms, last 100 requests, min 20``."""
    limits = []
    if guards.get("error_rate") is not None:
        limits.append(f"error rate > {guards['error_rate']:g}")
    if guards.get("p95_ms") is not None:
        limits.append(f"p95 > {guards['p95_ms']:g} ms")
    if guards.get("p95_ratio") is not None:
        limits.append(f"p95 > {guards['p95_ratio']:g}× active")
    if not limits:
        return ""
    window = []
    if guards.get("last_requests") is not None:
        window.append(f"last {guards['last_requests']} requests")
    if guards.get("minutes") is not None:
        window.append(f"last {guards['minutes']:g} min")
    if guards.get("min_requests") is not None:
        window.append(f"min {guards['min_requests']} requests")
    return f"guards: {' or '.join(limits)}" + "".join(f", {w}" for w in window)


@admin.display(description="alias moves")
def alias_history(obj: MLModel) -> str:
    """Alias moves, newest first (who, when, channel, from → to)."""
    moves = obj.alias_moves.all()[:HISTORY_ROWS] if obj.pk else []
    if not moves:
        return "—"
    return format_html_join(
        "",
        "<div>{} UTC · {} · {} · {}</div>",
        ((_when(m), describe_move(m), m.channel, m.username or "—") for m in moves),
    )


def describe_move(move: AliasMove) -> str:
    """``champion: v1 → v2``; a deleted alias goes to ``deleted``."""
    origin = f"v{move.from_number}" if move.from_number else "none"
    target = f"v{move.to_number}" if move.to_number else "deleted"
    return f"{move.name}: {origin} → {target}"


@admin.display(description="traffic policy changes")
def policy_history(obj: MLModel) -> str:
    """Policy changes, newest first (who, when, channel, before → after, and
    a tripped guard's reason)."""
    changes = obj.policy_changes.all()[:HISTORY_ROWS] if obj.pk else []
    if not changes:
        return "—"
    return format_html_join("", "{}", ((_policy_line(change),) for change in changes))


ACTION_WORDS = {
    PolicyChange.Action.SET: "set",
    PolicyChange.Action.PROMOTE: "promoted",
    PolicyChange.Action.ABORT: "aborted",
    PolicyChange.Action.END: "ended",
    PolicyChange.Action.TRIP: "guard tripped",
}


def _policy_line(change: PolicyChange) -> str:
    reason = f" · reason: {change.reason}" if change.reason else ""
    return format_html(
        "<div>{} UTC · {} · {} → {} · {} · {}{}</div>",
        _when(change),
        ACTION_WORDS.get(change.action, change.action),
        summarize(change.before),
        summarize(change.after),
        change.channel,
        change.username or "—",
        reason,
    )


def _when(change: AliasMove | PolicyChange) -> str:
    return change.created_at.strftime("%Y-%m-%d %H:%M:%S")
