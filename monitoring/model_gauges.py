"""Gauges of how right the models are and how far their inputs moved, read
from the database at each scrape of /metrics (monitoring.scrape), over the
last MODELHUB_QUALITY_WINDOW_MINUTES of predictions.

Not per-worker metrics: labels are joined and drift counts summed in the
database, whichever worker served, so one query at scrape time is exact
where a gauge per process could not be.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from registry.models import MLModel

from . import drift_stats, quality
from .metrics import model_label

LABELS = ["model", "version", "route"]
_GAUGES = (
    ("labelled", "modelhub_quality_labelled_rows", "Predicted rows with a label"),
    ("accuracy", "modelhub_quality_accuracy", "Share of labelled rows predicted right"),
    ("f1_macro", "modelhub_quality_f1_macro", "Macro-averaged F1 of labelled rows"),
    ("mae", "modelhub_quality_mae", "Mean absolute error of labelled rows"),
    ("rmse", "modelhub_quality_rmse", "Root mean squared error of labelled rows"),
)


class QualityCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        until = timezone.now()
        since = until - timedelta(minutes=settings.MODELHUB_QUALITY_WINDOW_MINUTES)
        found = quality.by_route(since, until)
        private = set(
            MLModel.objects.filter(
                slug__in={slug for slug, _, _ in found}, private=True
            ).values_list("slug", flat=True)
        )
        minutes = settings.MODELHUB_QUALITY_WINDOW_MINUTES
        window = f" over the last {minutes} min of predictions"
        families = {
            key: GaugeMetricFamily(name, text + window + ".", labels=LABELS)
            for key, name, text in _GAUGES
        }
        for (slug, number, route), measured in sorted(found.items()):
            labels = [model_label(slug, private=slug in private), str(number), route]
            for key, value in measured.as_dict().items():
                if key in families and value is not None:
                    families[key].add_metric(labels, value)
        yield from families.values()


class DriftCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        until = timezone.now()
        minutes = settings.MODELHUB_QUALITY_WINDOW_MINUTES
        since = until - timedelta(minutes=minutes)
        slugs = dict(MLModel.objects.values_list("slug", "private"))
        found = drift_stats.by_version(since, until, set(slugs))
        window = f" over the last {minutes} min of predictions."
        features = GaugeMetricFamily(
            "modelhub_drift_psi",
            "Population stability index of a feature against the version's "
            "drift reference" + window,
            labels=["model", "version", "feature"],
        )
        predictions = GaugeMetricFamily(
            "modelhub_drift_predictions_psi",
            "Population stability index of the predictions against the "
            "version's drift reference" + window,
            labels=["model", "version"],
        )
        for (slug, number), drift in sorted(found.items()):
            labels = [model_label(slug, private=slugs.get(slug, False)), str(number)]
            for name, scored in drift["features"].items():
                if scored["psi"] is not None:
                    features.add_metric([*labels, name], scored["psi"])
            scored = drift.get("predictions")
            if scored and scored["psi"] is not None:
                predictions.add_metric(labels, scored["psi"])
        yield features
        yield predictions


def exposition() -> bytes:
    """The gauges in Prometheus' text format; nothing when the database
    cannot be read (the per-worker metrics are still worth scraping)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QualityCollector())
    registry.register(DriftCollector())
    try:
        return generate_latest(registry)
    except DatabaseError:
        return b""
