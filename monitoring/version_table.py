"""The dashboard's versions side by side: one row per version of the chosen
model (stats.summary's), its columns in groups (traffic, latency, quality).

A group is one function from the versions to its headers and each row's
cells, listed in GROUPS: one more group of columns is one more function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypedDict

from django.utils import timezone

Version = dict[str, Any]  # one of stats.summary's versions


class Header(NamedTuple):
    label: str
    title: str = ""  # what the column means, as a tooltip


class Cell(NamedTuple):
    column: str  # the cell's data-column
    text: str
    css: str = ""


class Group(NamedTuple):
    title: str
    headers: list[Header]
    rows: list[list[Cell]]  # one per version, in the versions' order


class Row(TypedDict):
    version: int | None
    cells: list[Cell]


class Table(TypedDict):
    groups: list[Group]
    rows: list[Row]


def _number(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def traffic(versions: list[Version]) -> Group:
    rows = []
    for v in versions:
        bad = "has-errors" if v["errors"] else ""
        last = v["last_request_at"] and timezone.localtime(v["last_request_at"])
        rows.append(
            [
                Cell("requests", str(v["requests"])),
                Cell("errors", str(v["errors"]), bad),
                Cell("error_rate", _percent(v["error_rate"]), bad),
                Cell("rows", str(v["rows"])),
                Cell("last_request_at", f"{last:%Y-%m-%d %H:%M:%S}" if last else "—"),
            ]
        )
    headers = [
        Header("Requests"),
        Header("Errors", "Status 400 and above"),
        Header("Error rate"),
        Header("Rows", "Rows predicted"),
        Header("Last request"),
    ]
    return Group("Traffic", headers, rows)


def latency(versions: list[Version]) -> Group:
    rows = [
        [Cell(key, _number(v[key], 2)) for key in ("p50_ms", "p95_ms", "p99_ms")]
        for v in versions
    ]
    headers = [Header("p50 ms"), Header("p95 ms"), Header("p99 ms")]
    return Group("Latency", headers, rows)


# Metric columns, shown when any version has them: labels compared, or a
# regressor's errors (monitoring.quality).
_METRICS = (
    ("accuracy", "Accuracy", "Share of labelled rows predicted right", 3),
    ("f1_macro", "Macro-F1", "F1 per label, averaged over the labels", 3),
    ("mae", "MAE", "Mean absolute error of labelled rows", 4),
    ("rmse", "RMSE", "Root mean squared error of labelled rows", 4),
)


def quality(versions: list[Version]) -> Group:
    metrics = [m for m in _METRICS if any(m[0] in v["quality"] for v in versions)]
    headers = [
        Header("Labelled", "Predicted rows with a label (POST /api/feedback/)"),
        Header("Coverage", "Labelled rows over rows predicted"),
        *(Header(label, title) for _, label, title, _ in metrics),
    ]
    rows = []
    for v in versions:
        found = v["quality"]
        rows.append(
            [
                Cell("labelled", str(found["labelled"])),
                Cell("coverage", _percent(found.get("coverage"))),
                *(
                    Cell(key, _number(found.get(key), digits))
                    for key, _, _, digits in metrics
                ),
            ]
        )
    return Group("Quality", headers, rows)


def drift(versions: list[Version]) -> Group:
    """Which reference each version is read against, its worst feature and
    its predictions' PSI (monitoring.drift_stats)."""
    rows = []
    for v in versions:
        found = v.get("drift")
        if not found:
            rows.append([Cell("reference", "—"), Cell("worst", "—"), Cell("pred", "—")])
            continue
        collecting = found.get("collecting")
        if collecting:
            reference = f"baseline: {collecting['rows']} of {collecting['of']} rows"
        else:
            reference = f"{found['reference']} ({found['reference_rows']} rows)"
        worst = next(iter(found["features"].items()), None)
        worst_cell = (
            Cell(
                "worst",
                f"{worst[0]} {_number(worst[1]['psi'], 3)}",
                f"drift-{worst[1]['status']}",
            )
            if worst
            else Cell("worst", "—")
        )
        predictions = found.get("predictions")
        rows.append(
            [
                Cell("reference", reference),
                worst_cell,
                Cell(
                    "pred",
                    _number(predictions["psi"], 3),
                    f"drift-{predictions['status']}",
                )
                if predictions
                else Cell("pred", "—"),
            ]
        )
    headers = [
        Header(
            "Reference",
            "Upload: a training sample given with the file; "
            "baseline: the version's first predicted rows",
        ),
        Header(
            "Worst feature PSI",
            "Population stability index against the "
            "reference: under 0.1 stable, 0.1 warn, 0.25 alert",
        ),
        Header("Predictions PSI"),
    ]
    return Group("Drift", headers, rows)


GROUPS: tuple[Callable[[list[Version]], Group], ...] = (
    traffic,
    latency,
    quality,
    drift,
)


def table(versions: list[Version]) -> Table:
    """The rows, newest version first, and the groups' headers."""
    groups = [group(versions) for group in GROUPS]
    rows: list[Row] = []
    for index, version in enumerate(versions):
        cells: list[Cell] = []
        for group in groups:
            first, *rest = group.rows[index]
            # The first cell of each group carries a rule on its left.
            cells += [first._replace(css=f"{first.css} group-start".strip()), *rest]
        rows.append({"version": version["version"], "cells": cells})
    return {"groups": groups, "rows": rows}
