"""ModelHub's own Prometheus metrics, all prefixed modelhub_.

Under gunicorn these use prometheus_client's multiprocess mode:
PROMETHEUS_MULTIPROC_DIR is set by modelhub/gunicorn.conf.py before any
worker imports this module, and /metrics sums every worker's files.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from django.conf import settings
from prometheus_client import Counter, Gauge, Histogram

from registry.loading import VersionRef

# In multiprocess mode metric files are created as metrics are defined; a
# management command run with the server's environment must not crash on a
# directory the server has not created yet.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)

PREDICTIONS = Counter(
    "modelhub_predictions_total",
    "Prediction requests by model, version, route and HTTP status.",
    ["model", "version", "route", "status"],
)
LATENCY = Histogram(
    "modelhub_request_latency_seconds",
    "Server time per prediction request.",
    ["model", "version", "route"],
    buckets=_LATENCY_BUCKETS,
)
ROWS = Counter(
    "modelhub_prediction_rows_total",
    "Rows predicted (successful requests).",
    ["model", "version"],
)
MODEL_LOAD_SECONDS = Histogram(
    "modelhub_model_load_seconds",
    "Time to read, verify and deserialize a model file.",
    ["model", "version"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
MODEL_LOAD_FAILURES = Counter(
    "modelhub_model_load_failures_total",
    "Model files that were missing, altered or no longer loaded.",
    ["model", "version"],
)
FALLBACKS = Counter(
    "modelhub_model_fallbacks_total",
    "Requests served by an earlier version because the active one failed to load.",
    ["model", "failed_version"],
)
CACHE_HITS = Counter("modelhub_model_cache_hits_total", "Loaded-model cache hits.")
CACHE_MISSES = Counter(
    "modelhub_model_cache_misses_total", "Loaded-model cache misses (loads)."
)
MODELS_LOADED = Gauge(
    "modelhub_models_loaded",
    "Models held in the loaded-model caches (summed over live workers).",
    multiprocess_mode="livesum",
)
REFUSALS = Counter(
    "modelhub_refusals_total",
    "Prediction requests refused before a model answered, by error code.",
    ["code"],
)
BATCH_SIZE = Histogram(
    "modelhub_batch_size",
    "Requests predicted together in one call (adaptive batching), per batch.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
)
LOG_ROWS_BUFFERED = Gauge(
    "modelhub_log_rows_buffered",
    "Request-log rows waiting for the database (summed over live workers).",
    multiprocess_mode="livesum",
)
ROLLBACKS = Counter(
    "modelhub_rollout_rollbacks_total",
    "Candidates rolled back by a rollout guard (weight set to 0).",
    ["model", "guard"],
)
SHADOW_SKIPPED = Counter(
    "modelhub_shadow_skipped_total",
    "Shadow predictions skipped to keep within MODELHUB_SHADOW_MAX_SHARE.",
    ["model"],
)
LOG_ROWS_DROPPED = Counter(
    "modelhub_log_rows_dropped_total",
    "Request-log rows lost because a worker's outage buffer was full.",
)
THROTTLE_FAIL_OPEN = Counter(
    "modelhub_throttle_fail_open_total",
    "Requests let through unthrottled because the shared Redis did not answer.",
)


# Requests that resolved no version (unknown or inactive model, refused
# token, throttled) are counted under this model label: their slug is whatever
# the URL said, and a label per made-up slug would grow every worker's metric
# files without bound. The request log keeps the slug.
UNRESOLVED = "(unresolved)"


class _Series:
    """One label set's children: labels() validates and looks up its
    arguments on every call, which a prediction need not pay."""

    __slots__ = ("labels", "latency", "requests", "rows")

    def __init__(
        self, model: str, version: int | None, route: str, status: int
    ) -> None:
        self.labels = (model, str(version) if version is not None else "")
        self.requests = PREDICTIONS.labels(*self.labels, route, str(status))
        self.latency = LATENCY.labels(*self.labels, route)
        self.rows: Any = None  # created on first use: no always-zero series


_series: dict[tuple[str, int | None, str, int], _Series] = {}
_MAX_SERIES = 4096  # cleared when full


def model_label(slug: str, *, private: bool) -> str:
    """A private model's series carry an opaque id unless /metrics is
    protected (MODELHUB_METRICS_TOKEN): a scrape must not list what exists."""
    if not private or settings.MODELHUB_METRICS_TOKEN:
        return slug
    return opaque_label(slug)


def opaque_label(slug: str) -> str:
    """Stable per install (keyed by SECRET_KEY); the model's admin page shows it."""
    digest = hmac.new(settings.SECRET_KEY.encode(), slug.encode(), "sha256")
    return f"private-{digest.hexdigest()[:12]}"


def observe_request(
    *,
    slug: str,
    version: int | None,
    status: int,
    seconds: float,
    rows: int,
    private: bool = False,
    route: str = "active",
) -> None:
    if version is None:
        model = UNRESOLVED
    else:
        model = slug if not private else model_label(slug, private=True)
    key = (model, version, route, status)
    series = _series.get(key)
    if series is None:
        if len(_series) >= _MAX_SERIES:
            _series.clear()
        series = _series[key] = _Series(*key)
    series.requests.inc()
    series.latency.observe(seconds)
    if rows and status < 400:
        if series.rows is None:
            series.rows = ROWS.labels(*series.labels)
        series.rows.inc(rows)


def observe_batch(slug: str, private: bool, size: int) -> None:
    """One batch of ``size`` requests to a model, predicted in one call (the
    batcher calls it once per batch, not per request)."""
    BATCH_SIZE.labels(model_label(slug, private=private)).observe(size)


def observe_refusal(code: str) -> None:
    REFUSALS.labels(code).inc()


def on_cache_event(event: str, ref: VersionRef, seconds: float, size: int) -> None:
    """Listener for registry.cache: keeps the cache metrics current."""
    if event == "hit":
        CACHE_HITS.inc()
        MODELS_LOADED.set(size)
        return
    labels = (model_label(ref.slug, private=ref.private), str(ref.number))
    if event == "loaded":
        CACHE_MISSES.inc()
        MODEL_LOAD_SECONDS.labels(*labels).observe(seconds)
    elif event == "fallback":
        FALLBACKS.labels(*labels).inc()
    elif event == "load_failed":
        CACHE_MISSES.inc()
        MODEL_LOAD_FAILURES.labels(*labels).inc()
    MODELS_LOADED.set(size)
