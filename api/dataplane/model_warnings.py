"""Warnings raised by model code during predict: caught, then logged once.

scikit-learn's ``Parallel`` re-installs every process-wide warning filter
around each task it runs, so a 100-tree forest pays for the filter list a
hundred times per request: a large share of its predict time for the dozen
Django, numpy and friends install, tens of ms with more. Predict therefore
runs with a single filter (for the warning every request would raise),
recording what else is warned; what an operator should see is logged once
per version and message, naming the model, instead of going to stderr
unattributed.

Only in the main thread: ``warnings.catch_warnings`` swaps process-wide
state, and threads (gthread workers, the test live server) entering and
leaving it out of order would leave the wrong filters behind. There the
process's own filters apply, as before.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from registry.loading import VersionRef

logger = logging.getLogger(__name__)

# Library housekeeping, ignored by Python's default filters too.
_QUIET_CATEGORIES = (
    DeprecationWarning,
    PendingDeprecationWarning,
    ImportWarning,
    ResourceWarning,
)
# Expected on every request: all-numeric input goes to DataFrame-fitted
# models as a float array in the fitted order (a DataFrame costs ~1 ms per
# request; api.dataplane.infer), so scikit-learn's warning about missing names is
# noise. Ignored process-wide (for threads, below) and as the only filter
# during predict: an empty list would make scikit-learn warn on every task.
_EXPECTED = "X does not have valid feature names"
warnings.filterwarnings("ignore", message=_EXPECTED, category=UserWarning)
# Bounded: a model that puts a counter in its warning text cannot grow it.
_MAX_REMEMBERED = 1024
_reported: set[tuple[int, str, str]] = set()
_lock = threading.Lock()


@contextmanager
def captured(ref: VersionRef) -> Iterator[None]:
    """Run model code with one warning filter; log what it warned afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.filterwarnings("ignore", message=_EXPECTED, category=UserWarning)
        yield
    for message in caught:
        _report(ref, message)


def _report(ref: VersionRef, message: warnings.WarningMessage) -> None:
    category = message.category
    text = str(message.message)
    if not _first_time(ref.id, category, text):
        return
    logger.warning(
        "%s v%s warned during predict: %s: %s",
        ref.slug,
        ref.number,
        category.__name__,
        text[:300],
    )


def _first_time(version_id: int, category: type[Warning], text: str) -> bool:
    """Whether this warning is to be logged: not housekeeping, not yet seen."""
    if issubclass(category, _QUIET_CATEGORIES):
        return False
    key = (version_id, category.__name__, text[:300])
    with _lock:
        if key in _reported:
            return False
        if len(_reported) >= _MAX_REMEMBERED:
            _reported.clear()
        _reported.add(key)
    return True


def forget() -> None:
    """Report every warning again (a fresh process, for tests)."""
    with _lock:
        _reported.clear()


def model_code_only() -> None:
    """For a process that runs nothing but model code (the batch process,
    api.dataplane.batch_host), whose threads cannot take turns swapping
    filters: the one filter predict runs with in a worker, process-wide, so
    scikit-learn's per-task reinstall stays cheap (each filter costs a forest
    a hundred calls); what else is warned is logged once per message.
    Called again after each model load: importing a model's modules adds
    filters."""
    global _minimal
    if _minimal is not None and warnings.filters == _minimal:
        return
    warnings.resetwarnings()
    warnings.filterwarnings("ignore", message=_EXPECTED, category=UserWarning)
    _minimal = list(warnings.filters)
    warnings.showwarning = _log_once


def _log_once(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Python's once-per-place memory is reset whenever filters change, which
    scikit-learn does for every tree: remembered here instead."""
    text = str(message)
    if not _first_time(0, category, text):
        return
    logger.warning(
        "a model warned during predict: %s: %s (%s:%s)",
        category.__name__,
        text[:300],
        filename,
        lineno,
    )


_minimal: list | None = None
