"""Why an uploaded model file (or the drift reference given with it) is
refused, in words a person can act on.

One table, FAILURES, gives each kind of refusal its error class (hence its
stable ``code``) and one sentence saying what was wrong and what to do. The
admin, ``manage.py loadmodel`` and the management API show that same
sentence; the exception behind it travels separately as ``technical``.
Codes clients already rely on stay as they were (``invalid_model``,
``model_too_large``); ``reason`` names the finer kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.template.defaultfilters import filesizeformat

from .exceptions import (
    InvalidModel,
    InvalidReference,
    MissingLibrary,
    ModelTooLarge,
    RegistryError,
    UnsupportedFileType,
)

MODEL_EXTENSIONS = (".skops", ".joblib", ".pkl", ".pickle")
ARCHIVE_EXTENSIONS = (".zip",)  # a zipped MLflow model directory
# What joblib.dump compresses with when the name ends so ("model.joblib.gz").
COMPRESSED_EXTENSIONS = (".z", ".gz", ".bz2", ".xz", ".lzma")
_PICKLED = (".joblib", ".pkl", ".pickle")
_ZIP_MAGIC = b"PK\x03\x04"
_SNIFF_BYTES = 64 * 1024
_TRUNCATED = ("EOFError", "truncated", "Ran out of input")


@dataclass(frozen=True)
class Failure:
    """One kind of refused upload: its error class and the sentence shown."""

    error: type[RegistryError]
    sentence: str

    @property
    def code(self) -> str:
        return self.error.code


FAILURES: dict[str, Failure] = {
    "unsupported_file_type": Failure(
        UnsupportedFileType,
        "This file type is not accepted: save the model as .skops, .joblib, "
        ".pkl or .pickle, or upload a zipped MLflow model as .zip.",
    ),
    "empty_file": Failure(
        InvalidModel,
        "This file is empty: upload the file that joblib.dump, pickle.dump or "
        "skops.io.dump wrote.",
    ),
    "too_large": Failure(
        ModelTooLarge,
        "This file is larger than the upload limit ({limit}): upload a smaller "
        "model, or ask an administrator to raise MODELHUB_MAX_MODEL_BYTES.",
    ),
    "text_file": Failure(
        InvalidModel,
        "This file is text, not a saved model: save the fitted estimator with "
        "joblib.dump(model, 'model.joblib') or skops.io.dump and upload that file.",
    ),
    "json_file": Failure(
        InvalidModel,
        "This file is JSON, not a saved model: save the fitted estimator with "
        "joblib.dump or skops.io.dump and put JSON in the metadata field.",
    ),
    "not_a_pickle": Failure(
        InvalidModel,
        "This file is not a scikit-learn model saved with joblib or pickle: it "
        "could not be read as a pickle.",
    ),
    "truncated": Failure(
        InvalidModel,
        "This file is cut short: it starts like a saved model but ends early; "
        "upload the complete file again.",
    ),
    "not_skops": Failure(
        InvalidModel,
        "This file is not a readable skops file: save the model with "
        "skops.io.dump and upload that file.",
    ),
    "untrusted_types": Failure(
        InvalidModel,
        "This skops file holds types the server does not trust ({types}): save "
        "the model with scikit-learn's own types, or ask an administrator to add "
        "these to MODELHUB_SKOPS_TRUSTED_TYPES if they trust them.",
    ),
    "missing_library": Failure(
        MissingLibrary,
        "This model needs the Python package {package!r}, which is not "
        "installed on this server: {how}.",
    ),
    "load_error": Failure(
        InvalidModel,
        "This file could not be loaded, it raised an error while loading: check "
        "that it was saved with the libraries and versions the server has.",
    ),
    "no_predict": Failure(
        InvalidModel,
        "This file holds a {held}, not a model: upload a fitted estimator or "
        "Pipeline that has a predict() method.",
    ),
    "smoke_test_failed": Failure(
        InvalidModel,
        "The model loaded but failed a test prediction: give an input_schema or "
        "input_example in the metadata that it accepts, or fix the model.",
    ),
    "timeout": Failure(
        InvalidModel,
        "Loading this file took longer than the {timeout} s limit: upload a "
        "smaller model, or ask an administrator to raise "
        "MODELHUB_PREFLIGHT_TIMEOUT if it is just slow to load.",
    ),
    "memory_limit": Failure(
        InvalidModel,
        "Loading this file needed more than the {memory_mb} MB memory limit: "
        "upload a smaller model, or ask an administrator to raise "
        "MODELHUB_PREFLIGHT_MEMORY_MB.",
    ),
    "crashed": Failure(
        InvalidModel,
        "Loading this file crashed the process that checks it: upload a model "
        "saved with the libraries and versions the server has.",
    ),
    "refused_action": Failure(
        InvalidModel,
        "This file was refused because it tried to change the server: loading "
        "or using a model must not write files, run commands or open network "
        "connections.",
    ),
    "altered": Failure(
        InvalidModel,
        "The stored file has changed since it was uploaded: upload the model "
        "again as a new version.",
    ),
    "unverified": Failure(
        InvalidModel,
        "This file could not be checked: the check's answer did not describe "
        "this file, so it was refused.",
    ),
    "reference_too_large": Failure(
        InvalidReference,
        "This drift reference is larger than the {limit} limit: upload a sample "
        "of the training data (10,000 rows are kept at most), or ask an "
        "administrator to raise MODELHUB_MAX_REFERENCE_BYTES.",
    ),
    "reference_unreadable": Failure(
        InvalidReference,
        "This drift reference could not be read as CSV: upload UTF-8 text with a "
        "header row of column names, then one line per row with as many fields "
        "as the header.",
    ),
    "reference_empty": Failure(
        InvalidReference,
        "This drift reference holds no rows: upload a CSV with a header row and "
        "at least one row of training data below it.",
    ),
    "reference_no_schema": Failure(
        InvalidReference,
        "The model's input features are unknown, so a drift reference cannot be "
        "matched to them: give an input_schema in the metadata, or upload "
        "without a reference.",
    ),
    "reference_missing_columns": Failure(
        InvalidReference,
        "This drift reference lacks columns the model needs ({missing}): give "
        "the CSV a column named after each of the model's features (other "
        "columns are ignored).",
    ),
    "reference_column_count": Failure(
        InvalidReference,
        "This drift reference has {given} columns but the model takes {expected} "
        "unnamed features: give the CSV one column per feature, in the order the "
        "model was trained on.",
    ),
    "reference_not_numbers": Failure(
        InvalidReference,
        "This drift reference has text in columns the model reads as numbers "
        "({columns}): write numbers there, and leave a missing value's cell empty.",
    ),
    "reference_predict_failed": Failure(
        InvalidReference,
        "The model failed to predict the drift reference's rows: give a sample "
        "of the data it was trained on, with the same columns and kinds of values.",
    ),
}


def refusal(reason: str, *, technical: str = "", **details: object) -> RegistryError:
    """The error for ``reason``: its class, its sentence (with ``details``
    filled in), the technical detail kept apart."""
    failure = FAILURES[reason]
    return failure.error(
        failure.sentence.format(**details), technical=technical, reason=reason
    )


def too_large(limit: int, *, technical: str = "") -> RegistryError:
    """The refusal of a file over ``limit`` bytes, the limit as people read it."""
    detail = technical or f"MODELHUB_MAX_MODEL_BYTES is {limit:,} bytes."
    return refusal("too_large", technical=detail, limit=readable_size(limit))


def readable_size(size: int) -> str:
    """A size limit as people read it ("50.0 MB"), in one line."""
    return filesizeformat(size).replace("\xa0", " ")


def technical_line(exc: RegistryError) -> str:
    """The folded-away side of a refusal, as the admin and loadmodel show it:
    ``[code: reason] exception`` (``[code]`` when they are one); empty for
    errors that have neither."""
    if not exc.reason:
        return exc.technical
    label = exc.code if exc.reason == exc.code else f"{exc.code}: {exc.reason}"
    return f"[{label}] {exc.technical}".rstrip()


def check_file_name(filename: str) -> None:
    """Refuse a name whose extension no loader reads, before reading a byte."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip().lower()
    suffixes = Path(name).suffixes
    if suffixes[-1:] and suffixes[-1] in COMPRESSED_EXTENSIONS:
        suffixes = suffixes[:-1] if suffixes[-2:-1] and suffixes[-2] in _PICKLED else []
    if suffixes and suffixes[-1] in (*MODEL_EXTENSIONS, *ARCHIVE_EXTENSIONS):
        return
    shown = "".join(c for c in name if c.isprintable())[:100]
    ending = f"ends in '{Path(shown).suffix}'" if Path(shown).suffix else "has none"
    raise refusal(
        "unsupported_file_type",
        technical=f"The file name '{shown}' {ending}; accepted: "
        f"{', '.join(MODEL_EXTENSIONS + ARCHIVE_EXTENSIONS)}, and joblib's "
        f"compressed {', '.join(COMPRESSED_EXTENSIONS)} after "
        f"{', '.join(_PICKLED)}.",
    )


def unreadable(path: Path, technical: str) -> RegistryError:
    """Why a file could not be deserialized, judged by what its bytes look like."""
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    return refusal(_unreadable_reason(head, technical), technical=technical)


def _unreadable_reason(head: bytes, technical: str) -> str:
    if head.startswith(_ZIP_MAGIC):
        return "not_skops"
    if _looks_pickled(head):
        truncated = any(t in technical for t in _TRUNCATED)
        return "truncated" if truncated else "load_error"
    text = _as_text(head)
    if text is not None:
        return "json_file" if text.lstrip()[:1] in ("{", "[") else "text_file"
    return "not_a_pickle"


def _looks_pickled(head: bytes) -> bool:
    """Pickle protocol 2+ (what joblib and pickle write today) opens with
    PROTO and its number."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _as_text(head: bytes) -> str | None:
    """The bytes as text, if they are UTF-8 without control characters."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sniffing limit is still text.
        if exc.start < len(head) - 3:
            return None
        text = head[: exc.start].decode("utf-8")
    if any(not c.isprintable() and c not in "\t\r\n\f" for c in text):
        return None
    return text
