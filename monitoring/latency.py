"""Latency histogram buckets: 20 per decade from 0.1 ms, so percentiles read
from the rollup are within ~6% of the exact value."""

from __future__ import annotations

import math
from collections.abc import Iterable

BASE_MS = 0.1
PER_DECADE = 20
LAST = 140  # 0.1 ms * 10**7 = ~17 minutes


def bucket_of(ms: float) -> int:
    if ms <= BASE_MS:
        return 0
    return min(LAST, math.ceil(PER_DECADE * math.log10(ms / BASE_MS)))


def representative(bucket: int) -> float:
    """Geometric middle of the bucket: at most ~6% from any value in it."""
    if bucket == 0:
        return BASE_MS
    return BASE_MS * 10 ** ((bucket - 0.5) / PER_DECADE)


def percentiles(
    counts: Iterable[tuple[int, int]], wanted: Iterable[float]
) -> dict[float, float | None]:
    """Nearest-rank percentiles from (bucket, count) pairs."""
    histogram = sorted((b, c) for b, c in counts if c > 0)
    total = sum(c for _, c in histogram)
    result: dict[float, float | None] = {}
    for p in wanted:
        if total == 0:
            result[p] = None
            continue
        rank = max(1, math.ceil(p / 100 * total))
        seen = 0
        for bucket, count in histogram:
            seen += count
            if seen >= rank:
                result[p] = round(representative(bucket), 3)
                break
    return result
