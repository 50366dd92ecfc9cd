"""Request body -> model input, validated against the version's input schema.

Accepts every shape in DESIGN.md (MLflow's scoring-server shapes included)
and fails early with a precise error. Strict by design: booleans and numeric
strings in numeric columns are refused, as are NaN, infinities, U+0000 and
lone surrogates; `null` in a numeric column becomes NaN only where the
estimator accepts NaN.

MLflow's scoring server is laxer in three ways we keep refusing: it casts
numeric strings, drops unknown columns, and ignores unknown top-level keys.
It is stricter in two we keep allowing: bare lists of records, and
positional rows for a model with named features.

All-numeric inputs become a float64 array in schema order (fast); a
DataFrame is built only when the estimator needs one (string columns or
column selection by name).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from registry import jsondepth

from ..errors import (
    AmbiguousFormat,
    DuplicateFeatures,
    InvalidParams,
    InvalidShape,
    InvalidString,
    InvalidValue,
    MalformedCSV,
    MalformedJSON,
    MissingFeatures,
    NonFiniteNumber,
    NullValue,
    TooDeep,
    UnknownFeatures,
    UnsupportedMediaType,
    WrongType,
)
from .features import (
    ID_KEY,
    MAX_NAMED,
    DecodedInput,
    InputSpec,
    assemble,
    check_features,
    check_rows,
    quote,
    short,
)

FORMAT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs", "data")
_NUMBER_TYPES = (int, float)
# pandas' to_dict(orient="split") adds "index"; MLflow ignores it, and so do we.
_SPLIT_KEYS = frozenset({"columns", "data", "index"})
# A CSV number as JSON and pandas write one (ASCII digits, no '_', no spaces);
# the words float() reads as NaN or infinity pass, to be refused as such.
_CSV_NUMBER = re.compile(
    r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)",
    re.ASCII | re.IGNORECASE,
)


def decode(
    body: bytes, content_type: str, spec: InputSpec, *, max_rows: int
) -> DecodedInput:
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("", "application/json") or media.endswith("+json"):
        return decode_document(parse_json(body), spec, max_rows=max_rows)
    if media in ("text/csv", "application/csv"):
        return decode_csv(body, spec, max_rows=max_rows)
    raise UnsupportedMediaType(
        f"Unsupported content type '{media}': send application/json or text/csv."
    )


def parse_json(body: bytes) -> Any:
    """The document, nested no deeper than MODELHUB_MAX_JSON_DEPTH: every
    later walk over it (ids echoed, V2 data flattened) is then bounded."""
    if not body.strip():
        raise MalformedJSON("The request body is empty.")
    try:
        return jsondepth.loads(body)
    except jsondepth.TooDeep as exc:
        raise TooDeep(str(exc)) from None
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"Malformed JSON: {exc}") from None


# --- JSON shapes ----------------------------------------------------------------


def decode_document(doc: Any, spec: InputSpec, *, max_rows: int) -> DecodedInput:
    params: Any = {}
    if isinstance(doc, list):
        kind, payload = "data", doc
    elif isinstance(doc, dict):
        kind, payload, params = _split_format(doc, spec)
    else:
        raise InvalidShape(
            "The body must be a JSON object (a record, or one of "
            f"{', '.join(FORMAT_KEYS)}) or an array of records."
        )
    params = _check_params(params)
    if kind == "record":
        rows, ids = _from_records([payload], spec, max_rows)
    elif kind == "dataframe_split":
        rows, ids = _from_split(payload, spec, max_rows)
    elif kind == "dataframe_records":
        if not isinstance(payload, list):
            raise InvalidShape("'dataframe_records' must be a list of records.")
        rows, ids = _from_records(payload, spec, max_rows)
    elif kind == "inputs" and isinstance(payload, dict):
        rows, ids = _from_columns(payload, spec, max_rows)
    elif kind == "data" and isinstance(payload, dict):
        rows, ids = _from_records([payload], spec, max_rows)
    elif isinstance(payload, list):
        rows, ids = _from_list(payload, spec, max_rows, key=kind)
    else:
        raise InvalidShape(f"'{kind}' must be a list (or an object for one record).")
    return _build(rows, ids, spec, params)


def _split_format(doc: dict[str, Any], spec: InputSpec) -> tuple[str, Any, Any]:
    if spec.known and all(k in spec.index or k in (ID_KEY, "params") for k in doc):
        record = dict(doc)
        params = record.pop("params", {}) if "params" not in spec.index else {}
        return "record", record, params
    present = [key for key in FORMAT_KEYS if key in doc]
    if len(present) > 1:
        raise AmbiguousFormat(
            "Send exactly one of the format keys; got "
            + ", ".join(f"'{k}'" for k in present)
            + "."
        )
    if not present:
        params = doc.get("params", {}) if "params" not in spec.index else {}
        record = {
            k: v for k, v in doc.items() if k != "params" or "params" in spec.index
        }
        return "record", record, params
    key = present[0]
    unexpected = [k for k in doc if k not in (key, "params")]
    if unexpected:
        raise InvalidShape(
            f"Unexpected keys beside '{key}': "
            + ", ".join(repr(short(k)) for k in unexpected[:MAX_NAMED])
            + "."
        )
    return key, doc[key], doc.get("params", {})


def _check_params(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidParams("'params' must be an object.")
    proba = params.get("proba")
    if proba is not None and not isinstance(proba, bool):
        raise InvalidParams("'params.proba' must be true or false.")
    return params


def _from_list(
    items: list[Any], spec: InputSpec, max_rows: int, *, key: str
) -> tuple[list[list[Any]], list[Any] | None]:
    check_rows(len(items), max_rows, holder="payload")
    first = items[0]
    if isinstance(first, dict):
        return _from_records(items, spec, max_rows)
    if isinstance(first, list):
        return _from_positional(items, spec), None
    if len(spec.names) == 1 and not isinstance(first, (dict, list)):
        return _from_positional([[v] for v in items], spec), None
    raise InvalidShape(
        f"'{key}' must be a list of records (objects) or of rows (lists)."
    )


def _from_records(
    records: list[Any], spec: InputSpec, max_rows: int
) -> tuple[list[list[Any]], list[Any] | None]:
    check_rows(len(records), max_rows, holder="payload")
    if not spec.known:
        raise InvalidShape(
            "This model has no input schema, so records cannot be mapped to "
            "features: send positional rows, or add an input schema to the version."
        )
    if not isinstance(records[0], dict):
        raise InvalidShape("Row 0 is not an object.")
    names = spec.names
    plain = _plain_records(records, names)  # no ids: exactly the features
    if plain is not None:
        return plain, None
    width = len(names) + (1 if spec.takes_ids and ID_KEY in records[0] else 0)
    ids: list[Any] | None = [] if spec.takes_ids else None
    rows: list[Any] = []
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidShape(f"Row {position} is not an object.")
        if len(record) != width or not all(n in record for n in names):
            _check_keys(record, spec, position, len(records))
        if ids is not None:
            ids.append(record.get(ID_KEY))
        rows.append([record[n] for n in names])
    if ids is not None and all(i is None for i in ids):
        ids = None
    return rows, ids


def _plain_records(records: list[Any], names: tuple[str, ...]) -> list[Any] | None:
    """Rows of records that hold exactly the schema's keys, in schema order.

    The common case, done with C-level loops; None sends anything else
    (missing, extra or non-object rows) to the checks that name the problem.
    """
    width = len(names)
    if not all(type(r) is dict and len(r) == width for r in records):
        return None
    getter = itemgetter(*names)
    try:
        rows = list(map(getter, records))
    except KeyError:
        return None
    return rows if width > 1 else [(value,) for value in rows]


def _check_keys(record: dict[str, Any], spec: InputSpec, position: int, total: int):
    check_features(len(record), spec, holder=f"Row {position}" if total > 1 else "")
    where = f" in row {position}" if total > 1 else ""
    missing = [n for n in spec.names if n not in record]
    if missing:
        raise MissingFeatures(
            f"Missing features{where}: {quote(missing)}", features=missing[:MAX_NAMED]
        )
    unknown = [
        k
        for k in record
        if k not in spec.index and not (k == ID_KEY and spec.takes_ids)
    ]
    if unknown:
        raise UnknownFeatures(
            f"Unknown features{where}: {quote(unknown)}",
            features=[short(k) for k in unknown[:MAX_NAMED]],
        )


def _from_positional(rows: list[Any], spec: InputSpec) -> list[list[Any]]:
    width = len(spec.names)
    for position, row in enumerate(rows):
        if not isinstance(row, list):
            raise InvalidShape(f"Row {position} is not a list.")
        if spec.known and len(row) != width:
            raise InvalidShape(
                f"Row {position} has {len(row)} values; the model takes {width}."
            )
    if not spec.known:
        if len({len(r) for r in rows}) != 1:
            raise InvalidShape("Every row must have the same number of values.")
        check_features(len(rows[0]), spec, holder="Each row")
    return rows


def _from_split(
    payload: Any, spec: InputSpec, max_rows: int
) -> tuple[list[list[Any]], list[Any] | None]:
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise InvalidShape(
            "'dataframe_split' must be an object with 'columns' and 'data'."
        )
    data = payload["data"]
    columns = payload.get("columns")
    extra = [k for k in payload if k not in _SPLIT_KEYS]
    if extra:
        raise InvalidShape(
            "'dataframe_split' takes 'columns', 'data' and 'index'; got "
            + ", ".join(repr(short(k)) for k in extra[:MAX_NAMED])
            + "."
        )
    check_rows(len(data), max_rows, holder="payload")
    if columns is None:
        return _from_positional(data, spec), None
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidShape("'dataframe_split.columns' must be a list of names.")
    for position, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise InvalidShape(
                f"Row {position} of 'dataframe_split.data' must be a list of "
                f"{len(columns)} values."
            )
    return _reorder(columns, data, spec)


def _from_columns(
    payload: dict[str, Any], spec: InputSpec, max_rows: int
) -> tuple[list[list[Any]], list[Any] | None]:
    columns = list(payload)
    values = list(payload.values())
    if values and spec.known and _is_one_record(payload, spec):
        # MLflow reads {"inputs": {"a": 1, "b": 2}} as one row.
        return _from_records([payload], spec, max_rows)
    if not values or not all(isinstance(v, list) for v in values):
        raise InvalidShape("'inputs' as an object must map each feature to a list.")
    lengths = {len(v) for v in values}
    if len(lengths) != 1:
        raise InvalidShape("Every column in 'inputs' must have the same length.")
    check_rows(lengths.pop(), max_rows, holder="payload")
    return _reorder(columns, [list(row) for row in zip(*values, strict=True)], spec)


def _is_one_record(payload: dict[str, Any], spec: InputSpec) -> bool:
    """Every key a feature (or the id) and no value a list: a single row."""
    return all(
        (k in spec.index or (k == ID_KEY and spec.takes_ids))
        and not isinstance(v, list)
        for k, v in payload.items()
    )


def _reorder(
    columns: list[str], data: list[list[Any]], spec: InputSpec
) -> tuple[list[list[Any]], list[Any] | None]:
    """Rows given with their own column order -> rows in schema order."""
    check_features(len(columns), spec)
    duplicates = sorted(c for c, n in Counter(columns).items() if n > 1)
    if duplicates:
        raise DuplicateFeatures(f"Duplicate features: {quote(duplicates)}")
    if not spec.known:
        raise InvalidShape(
            "This model has no input schema: send positional rows instead."
        )
    position = {c: i for i, c in enumerate(columns)}
    _check_keys(position, spec, 0, 1)
    id_at = position.get(ID_KEY) if spec.takes_ids else None
    order = [position[n] for n in spec.names]
    rows = [[row[i] for i in order] for row in data]
    ids = [row[id_at] for row in data] if id_at is not None else None
    return rows, ids


# --- CSV ------------------------------------------------------------------------


def decode_csv(body: bytes, spec: InputSpec, *, max_rows: int) -> DecodedInput:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MalformedCSV("The CSV body is not valid UTF-8.") from None
    try:
        table = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise MalformedCSV(f"Malformed CSV: {exc}") from None
    table = [row for row in table if row]
    if not table:
        raise MalformedCSV("The CSV body is empty: send a header row and data rows.")
    header, data = table[0], table[1:]
    if header and header[0] == "" and "" not in spec.index:
        # pandas' to_csv() writes the index first, under an empty name;
        # MLflow's scoring server drops it, and so do we.
        header, data = header[1:], [row[1:] for row in data]
    check_rows(len(data), max_rows, holder="payload")
    for position, row in enumerate(data):
        if len(row) != len(header):
            raise MalformedCSV(
                f"CSV row {position + 1} has {len(row)} fields; the header has "
                f"{len(header)}."
            )
    rows, ids = _reorder(header, data, spec)
    converted = [[_csv_cell(row[i], i, spec) for i in range(len(row))] for row in rows]
    return _build(converted, ids, spec, {})


def _csv_cell(cell: str, position: int, spec: InputSpec) -> Any:
    if position in spec.string_positions:
        return cell
    if cell == "":
        return None
    if _CSV_NUMBER.fullmatch(cell):
        return float(cell)
    name = spec.names[position]
    try:
        float(cell)
    except ValueError:
        raise WrongType(
            f"Column '{name}' expects a number, got {cell[:40]!r}.", column=name
        ) from None
    raise InvalidValue(
        f"Column '{name}': {cell[:40]!r} is not a plain decimal number (ASCII "
        "digits, no '_' or spaces).",
        column=name,
    )


# --- typed matrix -----------------------------------------------------------------


def _build(
    rows: list[list[Any]], ids: list[Any] | None, spec: InputSpec, params: dict
) -> DecodedInput:
    if not spec.known:
        return DecodedInput(_untyped_array(rows), len(rows), ids, params)
    width = len(spec.names)
    flat = [value for row in rows for value in row]
    if not spec.string_positions and set(map(type, flat)) <= {float, int}:
        matrix = np.array(flat, dtype=np.float64).reshape(len(rows), width)
        if not np.isfinite(matrix).all():
            _raise_non_finite(matrix, spec)
        columns = None
    else:
        columns = [_column(flat[i::width], i, spec) for i in range(width)]
        matrix = None
    if matrix is None:
        data = assemble(columns, spec, len(rows))
    elif spec.needs_frame:
        import pandas as pd

        data = pd.DataFrame(matrix, columns=list(spec.names))
    else:
        data = matrix
    return DecodedInput(data, len(rows), ids, params)


def _column(values: list[Any], position: int, spec: InputSpec) -> Any:
    name = spec.names[position]
    if position in spec.string_positions:
        for row, value in enumerate(values):
            if isinstance(value, str):
                if "\x00" in value:
                    raise InvalidString(
                        f"Column '{name}' row {row}: strings may not contain U+0000.",
                        column=name,
                    )
            elif value is None:
                if not spec.allow_nan:
                    raise NullValue(
                        f"Column '{name}' row {row}: null is not accepted by this "
                        "model.",
                        column=name,
                    )
            else:
                raise WrongType(
                    f"Column '{name}' row {row}: expected a string, got "
                    f"{_json_type(value)}.",
                    column=name,
                )
        return np.array(values, dtype=object)
    out = np.empty(len(values), dtype=np.float64)
    for row, value in enumerate(values):
        kind = type(value)
        if kind is float or kind is int:
            if not math.isfinite(value):
                raise NonFiniteNumber(
                    f"Column '{name}' row {row}: {value} is not a finite number.",
                    column=name,
                )
            out[row] = value
        elif value is None:
            if not spec.allow_nan:
                raise NullValue(
                    f"Column '{name}' row {row}: null is not accepted by this model "
                    "(it does not handle missing values).",
                    column=name,
                )
            out[row] = np.nan
        else:
            raise WrongType(
                f"Column '{name}' row {row}: expected a number, got "
                f"{_json_type(value)}.",
                column=name,
            )
    return out


def _raise_non_finite(matrix: np.ndarray, spec: InputSpec) -> None:
    row, col = (int(i) for i in np.argwhere(~np.isfinite(matrix))[0])
    name = spec.names[col]
    raise NonFiniteNumber(
        f"Column '{name}' row {row}: the number is too large for a double.",
        column=name,
    )


def _untyped_array(rows: list[list[Any]]) -> np.ndarray:
    flat = [value for row in rows for value in row]
    if not set(map(type, flat)) <= {float, int}:
        raise WrongType("This model has no input schema, so only numbers are accepted.")
    matrix = np.array(rows, dtype=np.float64)
    if not np.isfinite(matrix).all():
        raise NonFiniteNumber("The input holds a number too large for a double.")
    return matrix


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"a string ({value[:20]!r})"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return type(value).__name__
