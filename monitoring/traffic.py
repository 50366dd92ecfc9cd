"""What a group of rollup rows adds up to: requests, errors and rows, the
latency histogram and its percentiles, batches, and a shadow's comparison
with what was served."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from .latency import percentiles

PERCENTILES = (50.0, 95.0, 99.0)


class Traffic:
    """The sums of a group of rollup rows (a version's, a route's, a step's)
    and what they say."""

    __slots__ = (
        "requests",
        "errors",
        "rows",
        "latency_sum",
        "histogram",
        "batched",
        "batch_size_sum",
        "ok_rows",
        "shadow_diff",
        "served_sum",
        "served_sq_sum",
        "unjoinable",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.rows = 0
        self.latency_sum = 0.0
        self.histogram: dict[int, int] = defaultdict(int)
        self.batched = 0
        self.batch_size_sum = 0
        self.ok_rows = 0
        self.shadow_diff = 0.0
        self.served_sum = 0.0
        self.served_sq_sum = 0.0
        self.unjoinable = 0

    def add(
        self,
        *,
        error: bool,
        bucket: int,
        count: int,
        rows: int,
        latency: float,
        batched: int = 0,
        batch_size_sum: int = 0,
        shadow: tuple[float, float, float] = (0.0, 0.0, 0.0),
        unjoinable: int = 0,
    ) -> None:
        self.requests += count
        self.errors += count if error else 0
        self.rows += rows
        if not error:
            self.ok_rows += rows
        self.shadow_diff += shadow[0]
        self.served_sum += shadow[1]
        self.served_sq_sum += shadow[2]
        self.unjoinable += unjoinable
        self.latency_sum += latency
        self.histogram[bucket] += count
        self.batched += batched
        self.batch_size_sum += batch_size_sum

    def comparison(self, kind: str) -> dict[str, Any]:
        """A shadow's predictions against the served ones, over the rows it
        predicted: the share of labels that agree, or (regressors) the mean
        absolute difference and its ratio to the served values' spread."""
        rows = self.ok_rows
        if not rows:
            return {"rows": 0}
        if kind != "regressor":
            return {"rows": rows, "agreement": round(1 - self.shadow_diff / rows, 4)}
        mae = self.shadow_diff / rows
        mean = self.served_sum / rows
        spread = math.sqrt(max(self.served_sq_sum / rows - mean * mean, 0.0))
        return {
            "rows": rows,
            "mae": round(mae, 6),
            "served_std": round(spread, 6),
            "mae_to_std": round(mae / spread, 4) if spread > 0 else None,
        }

    def as_dict(self) -> dict[str, Any]:
        p = percentiles(self.histogram.items(), PERCENTILES)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.errors / self.requests, 4)
            if self.requests
            else 0.0,
            "rows": self.rows,
            "mean_ms": round(self.latency_sum / self.requests, 3)
            if self.requests
            else None,
            "p50_ms": p[50.0],
            "p95_ms": p[95.0],
            "p99_ms": p[99.0],
            # Over the requests that rode in a batch only.
            "mean_batch_size": round(self.batch_size_sum / self.batched, 2)
            if self.batched
            else None,
        }
