"""Issue 23's targets, read off one suite run (bench/suite.py): each with its
measured value, its threshold and met / not met, or why it was not measured.

Targets are checked in the report, never asserted. Every ratio is paired (the
two servers in the same scenario and run, divided), then averaged over the
runs, as in the suite's other tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness import paired

# A run with anything in it but 2xx answers (wrk's non-2xx and socket errors).
ERRORS = "0 errors in every run (non-2xx or socket errors from wrk)"


@dataclass(frozen=True)
class Goal:
    """One target: ``server``'s ``key`` against ``other``'s in ``scenario``,
    as a ratio (server ÷ other) or a difference (server − other)."""

    text: str
    scenario: str
    server: str
    other: str
    key: str
    difference: bool
    at_least: bool
    threshold: float

    @property
    def bound(self) -> str:
        sign = "≥" if self.at_least else "≤"
        if self.difference:
            return f"{sign} {self.other} + {self.threshold} ms/req"
        return f"{sign} {self.threshold}× {self.other}"


RPS, CPU, P99 = "rps", "server_cpu_ms_per_request", "p99_ms"
GOALS = (
    Goal(
        "iris, 1 row, c8, log on: req/s ≥ 0.55× the reference's",
        "iris 1 row c8",
        "modelhub",
        "reference",
        RPS,
        difference=False,
        at_least=True,
        threshold=0.55,
    ),
    Goal(
        "iris, 1 row, c8, log on: server CPU ≤ reference + 0.45 ms per request",
        "iris 1 row c8",
        "modelhub",
        "reference",
        CPU,
        difference=True,
        at_least=False,
        threshold=0.45,
    ),
    Goal(
        "iris, 1,000 rows, c1: server CPU ≤ reference + 0.35 ms per request",
        "iris 1000 rows c1",
        "modelhub",
        "reference",
        CPU,
        difference=True,
        at_least=False,
        threshold=0.35,
    ),
    Goal(
        "rf20, 1 row, c8, batching on: req/s ≥ 3× ModelHub with batching off",
        "rf20 1 row c8",
        "modelhub-batch",
        "modelhub",
        RPS,
        difference=False,
        at_least=True,
        threshold=3.0,
    ),
    Goal(
        "rf20, 1 row, c8, batching on: p99 ≤ batching off's p99",
        "rf20 1 row c8",
        "modelhub-batch",
        "modelhub",
        P99,
        difference=False,
        at_least=False,
        threshold=1.0,
    ),
    Goal(
        "rf20, 1 row, c8, batching on: req/s ≥ 1.5× MLServer with adaptive batching",
        "rf20 1 row c8",
        "modelhub-batch",
        "mlserver-batch",
        RPS,
        difference=False,
        at_least=True,
        threshold=1.5,
    ),
    Goal(
        "PostgreSQL: iris, 1 row, c8: req/s ≥ 0.8× ModelHub's own SQLite figure",
        "iris 1 row c8",
        "modelhub-pg",
        "modelhub",
        RPS,
        difference=False,
        at_least=True,
        threshold=0.8,
    ),
)


def evaluate(runs: list[dict], absent: dict[str, str]) -> list[dict[str, Any]]:
    """Every goal, then the errors target. ``absent``: why a server named by
    a goal was not started (or failed to), by name."""
    rows = [_goal_row(goal, runs, absent) for goal in GOALS]
    bad = [r for r in runs if r["errors"]]
    rows.append(
        {
            "target": ERRORS,
            "threshold": "0",
            "measured": sum(r["errors"] for r in runs),
            "runs": len(runs),
            "runs_with_errors": [
                f"{r['scenario']} {r['target']} run {r['round']}: {r['errors']}"
                for r in bad
            ],
            "met": (not bad) if runs else None,
            "why_not_measured": None if runs else "no run under load",
        }
    )
    return rows


def _goal_row(goal: Goal, runs: list[dict], absent: dict[str, str]) -> dict:
    row: dict[str, Any] = {
        "target": goal.text,
        "scenario": goal.scenario,
        "server": goal.server,
        "compared_with": goal.other,
        "figure": goal.key,
        "threshold": goal.bound,
        "measured": None,
        "met": None,
        "why_not_measured": None,
    }
    missing = [name for name in (goal.server, goal.other) if name in absent]
    if missing:
        row["why_not_measured"] = "; ".join(f"{n}: {absent[n]}" for n in missing)
        return row
    measured = paired(
        runs,
        goal.scenario,
        goal.server,
        goal.other,
        goal.key,
        (lambda a, b: a - b)
        if goal.difference
        else (lambda a, b: a / b if b else math.nan),
    )
    if measured is None or math.isnan(measured["mean"]):
        row["why_not_measured"] = (
            f"no paired run of {goal.server} and {goal.other} in {goal.scenario}"
        )
        return row
    row["measured"] = measured
    # Why a target is where it is, on a machine whose cores the servers and
    # wrk share: what each side costs in CPU per request, same runs.
    row["cpu_ms"] = {
        name: _mean_of(runs, goal.scenario, name, CPU)
        for name in (goal.server, goal.other)
    }
    limit = goal.threshold
    row["met"] = (
        measured["mean"] >= limit if goal.at_least else measured["mean"] <= limit
    )
    return row


def _mean_of(runs: list[dict], scenario: str, server: str, key: str) -> float | None:
    values = [
        r[key] for r in runs if r["scenario"] == scenario and r["target"] == server
    ]
    return sum(values) / len(values) if values else None


def markdown(rows: list[dict]) -> list[str]:
    """The report's Targets section."""
    lines = [
        "## Targets (issue 23; paired per run, then mean (min–max))",
        "",
        "Server CPU: ms per request of the whole server (every worker and "
        "helper process), each side's mean over the same runs.",
        "",
        "| target | measured | threshold | met | server CPU |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        measured = row["measured"]
        if row["why_not_measured"]:
            value, met = "—", f"not measured in this run: {row['why_not_measured']}"
        else:
            if isinstance(measured, dict):
                value = _figure(measured, row["figure"] == CPU)
            else:
                value = f"{measured} in {row['runs']} runs" + (
                    ": " + "; ".join(row["runs_with_errors"])
                    if row["runs_with_errors"]
                    else ""
                )
            met = "✅ met" if row["met"] else "❌ not met"
        cpu = " · ".join(
            f"{name} {ms:.3f}"
            for name, ms in (row.get("cpu_ms") or {}).items()
            if ms is not None
        )
        lines.append(
            f"| {row['target']} | {value} | {row['threshold']} | {met} | {cpu} |"
        )
    return lines + [""]


def _figure(s: dict, milliseconds: bool) -> str:
    unit = " ms/req" if milliseconds else "×"
    sign = "+" if milliseconds and s["mean"] >= 0 else ""
    text = f"{sign}{s['mean']:.3f}{unit}" if milliseconds else f"{s['mean']:.2f}×"
    if s["n"] > 1:
        text += f" ({s['min']:.3g}–{s['max']:.3g})"
    return text
