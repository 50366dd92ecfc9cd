"""A version's features as the data plane needs them, whatever the protocol.

The input schema prepared once per loaded version (InputSpec), the decoded
input both protocols hand to the model (DecodedInput), and the checks and
assembly they share: row counts, names quoted in errors, columns into the
float array (fast) or the DataFrame (when the estimator needs one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from ..errors import EmptyInput, TooManyFeatures, TooManyRows

ID_KEY = "id"
MAX_NAMED = 10
_MAX_NAME_CHARS = 100


@dataclass(frozen=True)
class InputSpec:
    """A version's input schema prepared once for the hot path."""

    names: tuple[str, ...]
    index: dict[str, int]
    string_positions: frozenset[int]
    allow_nan: bool
    needs_frame: bool

    @property
    def known(self) -> bool:
        return bool(self.names)

    @property
    def takes_ids(self) -> bool:
        return ID_KEY not in self.index


def prepare_spec(
    schema: dict[str, Any],
    *,
    selects_by_name: bool,
    fitted_names: list[str] | None = None,
) -> InputSpec:
    """``fitted_names`` (the estimator's feature_names_in_) fix the column order.

    A schema from metadata or an edit may list features in another order; a
    float array must follow the fitted order. If the names differ from the
    fitted ones, a DataFrame is sent so sklearn itself checks them.
    """
    features = list(schema.get("features") or [])
    named = bool(schema.get("named"))
    mismatch = False
    if fitted_names:
        by_name = {str(f["name"]): f for f in features}
        if set(by_name) == set(fitted_names):
            features = [by_name[name] for name in fitted_names]
        else:
            mismatch = True
    names = tuple(str(f["name"]) for f in features)
    strings = frozenset(i for i, f in enumerate(features) if f.get("type") == "string")
    return InputSpec(
        names=names,
        index={name: i for i, name in enumerate(names)},
        string_positions=strings,
        allow_nan=bool(schema.get("allow_nan")),
        needs_frame=mismatch or (named and (bool(strings) or selects_by_name)),
    )


@dataclass
class DecodedInput:
    data: Any
    rows: int
    ids: list[Any] | None
    params: dict[str, Any]


def check_rows(count: int, max_rows: int, *, holder: str) -> None:
    """Between one row and MODELHUB_MAX_ROWS; ``holder`` names what was sent."""
    if count == 0:
        raise EmptyInput(f"The {holder} holds no rows.")
    if count > max_rows:
        raise TooManyRows(
            f"{count} rows is more than the limit of {max_rows} per request."
        )


def check_features(count: int, spec: InputSpec, *, holder: str = "") -> None:
    """At most MODELHUB_MAX_FEATURES columns, features or inputs, and never
    fewer than the model's own (with an id): checked before anything walks
    them, so a 100,000-column body is refused at once."""
    limit = max(settings.MODELHUB_MAX_FEATURES, len(spec.names) + 1)
    if count > limit:
        what = f"{holder} has" if holder else "The request has"
        raise TooManyFeatures(
            f"{what} {count:,} columns; the limit is {limit:,} per request."
        )


def assemble(columns: list[np.ndarray], spec: InputSpec, rows: int) -> Any:
    """Checked columns, in schema order, as the model's input."""
    if spec.needs_frame:
        import pandas as pd

        return pd.DataFrame(dict(zip(spec.names, columns, strict=True)))
    if not spec.string_positions:
        return np.column_stack(columns)
    data = np.empty((rows, len(columns)), dtype=object)
    for position, column in enumerate(columns):
        data[:, position] = column
    return data


def short(name: Any) -> str:
    """A name as an error echoes it: a 100 KB key must not come back whole."""
    text = str(name)
    return text if len(text) <= _MAX_NAME_CHARS else text[:_MAX_NAME_CHARS] + "…"


def quote(names: list[Any]) -> str:
    shown = ", ".join(f"'{short(n)}'" for n in names[:MAX_NAMED])
    more = len(names) - MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "")
