"""The only place stored files become estimators: read, verify sha256, load."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage

from .exceptions import ModelUnavailable
from .inspection import has_class_probabilities
from .serialization import read_estimator

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionRef:
    """What the hot path needs to know about a version, detached from the ORM."""

    id: int
    slug: str
    number: int
    sha256: str
    file_name: str
    format: str
    kind: str
    input_schema: dict[str, Any]
    classes: list[Any] | None
    private: bool = False
    # The route's adaptive batching (registry.batching): 0 rows = off.
    batch_max_rows: int = 0
    batch_max_wait_ms: float = 0.0


@dataclass
class LoadedModel:
    ref: VersionRef
    estimator: Any
    has_proba: bool
    load_seconds: float
    size: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def load(ref: VersionRef) -> LoadedModel:
    """Read the version's file, check its sha256 and deserialize it.

    Raises ModelUnavailable (503) when the file is missing, altered or no
    longer loads; other versions are unaffected.
    """
    started = time.perf_counter()
    try:
        with default_storage.open(ref.file_name, "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, OSError) as exc:
        logger.error("model file of %s v%s is missing: %s", ref.slug, ref.number, exc)
        raise ModelUnavailable(
            f"The file of '{ref.slug}' v{ref.number} is missing from storage."
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != ref.sha256:
        logger.error(
            "sha256 mismatch for %s v%s: stored %s, file %s",
            ref.slug,
            ref.number,
            ref.sha256,
            digest,
        )
        raise ModelUnavailable(
            f"The file of '{ref.slug}' v{ref.number} does not match its sha256; "
            "it was altered after upload."
        )
    estimator = _deserialize(ref, data)
    elapsed = time.perf_counter() - started
    logger.info("loaded %s v%s in %.1f ms", ref.slug, ref.number, elapsed * 1000)
    return LoadedModel(
        ref=ref,
        estimator=estimator,
        has_proba=has_class_probabilities(estimator),
        load_seconds=elapsed,
        size=len(data),
    )


def _deserialize(ref: VersionRef, data: bytes) -> Any:
    """BaseException too: a file that calls sys.exit() (or raises
    KeyboardInterrupt, GeneratorExit) while loading would otherwise end the
    worker in the preload hook, and every worker after it."""
    try:
        return read_estimator(
            data, ref.format, list(settings.MODELHUB_SKOPS_TRUSTED_TYPES)
        )
    except BaseException as exc:  # noqa: BLE001 - any failure to load is a 503
        logger.exception("model %s v%s no longer loads", ref.slug, ref.number)
        raise ModelUnavailable(
            f"'{ref.slug}' v{ref.number} could not be loaded: {type(exc).__name__}"
        ) from None
