"""The only place stored files become estimators: read, verify sha256, load."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from django.conf import settings

from . import hostcopy, store
from .exceptions import ModelUnavailable, StoreUnavailable
from .inspection import has_class_probabilities
from .serialization import read_estimator

logger = logging.getLogger(__name__)

T = TypeVar("T")


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
    # The route keeps request bodies for replay (MLModel.capture_payloads).
    capture_payloads: bool = False
    # The route keeps what it answered, for feedback (MLModel.keep_predictions).
    keep_predictions: bool = True


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

    From an object store (registry.store), every file is read through the
    host's verified local copy (registry.hostcopy): the store is asked only
    for what the host does not hold, so a store outage costs only those
    versions. On the local disk, a joblib file is loaded memory-mapped from
    that copy when MODELHUB_MODEL_MMAP is on, so the workers of a host share
    its arrays, and the stored file is still checked at every load.
    Raises ModelUnavailable (503) when the file is missing, altered or no
    longer loads, StoreUnavailable when the store cannot be reached; other
    versions are unaffected.
    """
    started = time.perf_counter()
    source: bytes | Path | None = None
    mapped = ref.format == "joblib" and hostcopy.enabled()
    if store.remote():
        copy = _held_copy(ref)
        source = copy if mapped else copy.read_bytes()
    elif mapped:
        _check_digest(ref, _read(ref, _sha256))
        source = _host_copy(ref)
    if source is None:
        source = _read(ref, _everything)
        _check_digest(ref, hashlib.sha256(source).hexdigest())
    estimator = _deserialize(ref, source)
    elapsed = time.perf_counter() - started
    logger.info("loaded %s v%s in %.1f ms", ref.slug, ref.number, elapsed * 1000)
    return LoadedModel(
        ref=ref,
        estimator=estimator,
        has_proba=has_class_probabilities(estimator),
        load_seconds=elapsed,
        size=source.stat().st_size if isinstance(source, Path) else len(source),
    )


def _held_copy(ref: VersionRef) -> Path:
    """The host's verified copy of the version's file, fetched from the store
    when the host holds none (or a damaged one)."""
    suffix = hostcopy.suffix_for(ref.format)
    try:
        path = hostcopy.verified(ref.sha256, suffix)
        if path is not None:
            return path
        with hostcopy.building(ref.sha256):
            path = hostcopy.verified(ref.sha256, suffix)
            if path is None:
                path = _read(ref, lambda h: hostcopy.keep(ref.sha256, h, suffix))
    except OSError as exc:
        logger.error("no local copy of %s v%s: %s", ref.slug, ref.number, exc)
        raise ModelUnavailable(
            f"The file of '{ref.slug}' v{ref.number} cannot be copied to this "
            "host (MODELHUB_MODEL_COPY_DIR)."
        ) from None
    if path is None:
        _check_digest(ref, "(altered in the store)")
    assert path is not None
    return path


def _host_copy(ref: VersionRef) -> Path | None:
    """The verified local copy, written from storage if need be; None when
    the copy directory is unusable (the file is then read as without)."""
    try:
        path = hostcopy.verified(ref.sha256)
        if path is not None:
            return path
        with hostcopy.building(ref.sha256):
            path = hostcopy.verified(ref.sha256)
            if path is not None:  # written by another worker meanwhile
                return path
            path = _read(ref, lambda handle: hostcopy.keep(ref.sha256, handle))
    except OSError as exc:
        logger.error("no local copy of %s v%s: %s", ref.slug, ref.number, exc)
        return None
    if path is None:
        _check_digest(ref, "(changed while copied)")
    return path


def _read(ref: VersionRef, read: Callable[[BinaryIO], T]) -> T:
    try:
        with store.opened(ref.file_name) as handle:
            return read(handle)
    except store.Missing as exc:
        logger.error("model file of %s v%s is missing: %s", ref.slug, ref.number, exc)
        raise ModelUnavailable(
            f"The file of '{ref.slug}' v{ref.number} is missing from storage."
        ) from None
    except store.Unreachable as exc:
        logger.error(
            "model store unavailable for %s v%s: %s", ref.slug, ref.number, exc
        )
        raise StoreUnavailable(
            f"The model store cannot be reached ({exc}) and this host holds no "
            f"copy of '{ref.slug}' v{ref.number}."
        ) from None


def _sha256(handle: BinaryIO) -> str:
    return hashlib.file_digest(handle, "sha256").hexdigest()


def _everything(handle: BinaryIO) -> bytes:
    return handle.read()


def _check_digest(ref: VersionRef, digest: str) -> None:
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


def _deserialize(ref: VersionRef, source: bytes | Path) -> Any:
    """A path is a verified host copy, mapped copy-on-write ("c", not "r"):
    the pages stay shared until written, and an estimator that writes to its
    own arrays while predicting behaves as it does unmapped.

    BaseException too: a file that calls sys.exit() (or raises
    KeyboardInterrupt, GeneratorExit) while loading would otherwise end the
    worker in the preload hook, and every worker after it."""
    try:
        if isinstance(source, Path):
            import joblib

            mode = "c" if hostcopy.mappable(source) else None
            return joblib.load(source, mmap_mode=mode)
        return read_estimator(
            source, ref.format, list(settings.MODELHUB_SKOPS_TRUSTED_TYPES)
        )
    except BaseException as exc:  # noqa: BLE001 - any failure to load is a 503
        logger.exception("model %s v%s no longer loads", ref.slug, ref.number)
        raise ModelUnavailable(
            f"'{ref.slug}' v{ref.number} could not be loaded: {type(exc).__name__}"
        ) from None
