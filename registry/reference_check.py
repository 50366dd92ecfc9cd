"""A drift reference's rows against the model, in the preflight child: its
columns matched to the input schema, converted to the schema's types, and
predicted by the model.

A named schema (a model fitted on a DataFrame) takes every feature from the
column of that name, whatever the order, and ignores other columns; so does
an unnamed one when the CSV names all its features. Otherwise an unnamed
schema takes exactly as many columns as it has features, in order.

Free of Django: it runs inside the preflight child, under its guard and
limits, since predicting runs the file's code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import numpy as np

from .inspection import NUMBER, STRING, InputSchema, frame_or_array
from .jsonvalues import to_json_value

# The reasons registry.upload_errors words for a reference the child refuses.
FAILURES = (
    "reference_no_schema",
    "reference_missing_columns",
    "reference_column_count",
    "reference_not_numbers",
    "reference_predict_failed",
)
_SHOWN = 10


class PredictedReference(TypedDict):
    """The reference's columns by feature name, in schema order, and what the
    model predicted for its rows (JSON values: NaN is None; the parent drops
    predictions that are not one value per row)."""

    columns: dict[str, list[Any]]
    predictions: list[Any] | None


class ReferenceMismatch(ValueError):
    """The reference does not fit the model; ``failure`` is one of FAILURES."""

    def __init__(
        self, failure: str, error: BaseException | str, **details: str
    ) -> None:
        super().__init__(str(error))
        self.failure = failure
        self.error = error
        self.details = details


def predict_reference(
    estimator: Any, schema: InputSchema, given: Mapping[str, list[str | None]]
) -> PredictedReference:
    """The model's predictions on the reference's rows; raise ReferenceMismatch."""
    columns = _typed(schema, _matched(schema, given))
    names = list(columns)
    rows = zip(*columns.values(), strict=True)
    records = [dict(zip(names, row, strict=True)) for row in rows]
    try:
        result = np.asarray(estimator.predict(frame_or_array(records, schema)))
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model's own failure to predict
        raise ReferenceMismatch("reference_predict_failed", exc) from None
    if result.shape[:1] != (len(records),):
        raise ReferenceMismatch(
            "reference_predict_failed",
            f"predict returned shape {result.shape} for {len(records)} rows",
        )
    return {
        "columns": {name: to_json_value(values) for name, values in columns.items()},
        "predictions": to_json_value(result),
    }


def _matched(
    schema: InputSchema, given: Mapping[str, list[str | None]]
) -> dict[str, list[str | None]]:
    """The CSV's column for each feature, by name or by position."""
    names = [feature["name"] for feature in schema["features"]]
    if not names:
        raise ReferenceMismatch(
            "reference_no_schema", "the model's input schema lists no features"
        )
    if schema["named"] or all(name in given for name in names):
        missing = [name for name in names if name not in given]
        if missing:
            raise ReferenceMismatch(
                "reference_missing_columns",
                f"the CSV's columns are {_shown(list(given))}; the model's "
                f"features are {_shown(names)}",
                missing=_shown(missing),
            )
        return {name: given[name] for name in names}
    if len(given) != len(names):
        raise ReferenceMismatch(
            "reference_column_count",
            f"the CSV's columns are {_shown(list(given))}; the model takes "
            f"{len(names)} features, unnamed",
            given=str(len(given)),
            expected=str(len(names)),
        )
    return dict(zip(names, given.values(), strict=True))


def _typed(
    schema: InputSchema, columns: dict[str, list[str | None]]
) -> dict[str, list[Any]]:
    """Number features' cells as floats (empty: None), string features' as
    they were written."""
    typed: dict[str, list[Any]] = {}
    not_numbers: list[str] = []
    example = ""
    for feature in schema["features"]:
        name = feature["name"]
        values = columns[name]
        if feature.get("type", NUMBER) == STRING:
            typed[name] = values
            continue
        try:
            typed[name] = [_number(value) for value in values]
        except ValueError as exc:
            not_numbers.append(name)
            example = example or f"column {name!r} holds {str(exc)[:50]!r}"
    if not_numbers:
        raise ReferenceMismatch(
            "reference_not_numbers",
            f"not a number: {example}",
            columns=_shown(not_numbers),
        )
    return typed


def _number(text: str | None) -> float | None:
    """A cell as a float; ValueError(the cell) for text that is not a number
    (Python's own spellings with underscores included)."""
    if text is None:
        return None
    if "_" in text:
        raise ValueError(text)
    try:
        return float(text)
    except ValueError:
        raise ValueError(text) from None


def _shown(names: Sequence[str]) -> str:
    """Names as one line of a message: the first few, and how many more."""
    shown = ", ".join(repr(str(name)[:100]) for name in names[:_SHOWN])
    more = len(names) - _SHOWN
    return f"{shown} and {more} more" if more > 0 else shown
