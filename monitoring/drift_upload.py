"""A version's drift reference fitted to the sample given at its upload.

The registry sends registry.signals.reference_sample_given, inside the
transaction that stores the version, with the sample's columns and the
model's own predictions on them (computed in the sandboxed preflight); this
fits the bins and stores them, so the version is scored against them from
its first request and never collects a baseline. An error here rolls the
upload back.
"""

from __future__ import annotations

import logging
from typing import Any

from registry.models import ModelVersion

from .drift import Reference, prediction_type
from .drift_counts import feature_types
from .models import DriftReference

logger = logging.getLogger(__name__)


def store_reference(
    sender: type[ModelVersion],
    *,
    version: ModelVersion,
    columns: dict[str, list[Any]],
    predictions: list[Any] | None,
    **kwargs: Any,
) -> DriftReference:
    """The receiver: bins for every feature and for the predictions."""
    reference = Reference.of(
        columns,
        feature_types(version.input_schema),
        predictions,
        prediction_type(version.kind),
    )
    stored = DriftReference.objects.create(
        version=version,
        source=DriftReference.Source.UPLOAD,
        rows=reference.rows,
        bins=reference.as_dict(),
    )
    logger.info("drift reference of %s fitted on %d rows", version, reference.rows)
    return stored
