"""Model file formats: telling them apart and turning bytes into estimators.

Free of Django on purpose: the preflight child process imports it with a
scrubbed environment and no settings.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from .skops_trust import check_tree_structures, needs_structure_check, trusted_types

PICKLE_FORMATS = ("joblib", "pickle")
_ZIP_MAGIC = b"PK\x03\x04"
_EXTENSIONS = {"joblib": ".joblib", "pickle": ".pkl", "skops": ".skops"}


class UntrustedTypesError(Exception):
    """A skops file holds types that are not on the trusted list."""

    def __init__(self, types: list[str]) -> None:
        super().__init__(
            "skops file contains types that are not trusted: "
            + ", ".join(types)
            + ". ModelHub trusts scikit-learn's own model types by default; if "
            "you trust where this file came from, an administrator can add these "
            "names to MODELHUB_SKOPS_TRUSTED_TYPES (comma-separated) and the file "
            "can be uploaded again"
        )
        self.types = types


def detect_format(filename: str, head: bytes) -> str:
    """Skops files are zip archives; everything else is a (joblib) pickle."""
    if head.startswith(_ZIP_MAGIC):
        return "skops"
    if Path(filename).suffix.lower() in (".pkl", ".pickle"):
        return "pickle"
    return "joblib"


def extension_for(fmt: str) -> str:
    return _EXTENSIONS[fmt]


def read_estimator(
    source: Path | str | bytes, fmt: str, trusted_types: list[str]
) -> Any:
    """Deserialize a model file (a path or its bytes). joblib/pickle run code.

    ``trusted_types`` adds to the skops types trusted by default
    (registry.skops_trust); what the file itself lists is never trusted.
    """
    in_memory = isinstance(source, bytes)
    if fmt == "skops":
        return _read_skops(source, extra_trusted=trusted_types)
    if fmt == "pickle":
        if in_memory:
            return pickle.loads(source)  # noqa: S301 - preflighted, staff-only
        with open(source, "rb") as handle:
            return pickle.load(handle)  # noqa: S301 - preflighted, staff-only
    if fmt == "joblib":
        import joblib

        return joblib.load(io.BytesIO(source) if in_memory else source)
    raise ValueError(f"unknown model format {fmt!r}")


def _read_skops(source: Path | str | bytes, *, extra_trusted: list[str]) -> Any:
    import skops.io as sio

    in_memory = isinstance(source, bytes)
    if in_memory:
        untrusted = sio.get_untrusted_types(data=source)
    else:
        untrusted = sio.get_untrusted_types(file=source)
    refused = sorted(set(untrusted) - trusted_types(extra_trusted))
    if refused:
        raise UntrustedTypesError(refused)
    if in_memory:
        estimator = sio.loads(source, trusted=untrusted)
    else:
        estimator = sio.load(source, trusted=untrusted)
    if needs_structure_check(untrusted):
        check_tree_structures(estimator)
    return estimator
