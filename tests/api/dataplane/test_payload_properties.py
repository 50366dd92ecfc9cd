"""Properties of request decoding (api/payloads.py), checked with hypothesis.

Whatever the bytes, decoding either yields model input of the right shape or
raises a PayloadError (a 4xx); well-formed records come out in schema order
with the values that went in, whatever shape and key order carried them.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from api.dataplane import features as inputspec
from api.dataplane import payloads
from api.errors import PayloadError

MAX_ROWS = 50
IRIS = (
    "sepal length (cm)",
    "sepal width (cm)",
    "petal length (cm)",
    "petal width (cm)",
)
RESERVED = {*payloads.FORMAT_KEYS, "params", inputspec.ID_KEY}
JSON = "application/json"
CSV = "text/csv"


def spec(
    features: list[tuple[str, str]],
    *,
    named: bool = True,
    allow_nan: bool = False,
    selects_by_name: bool = False,
) -> inputspec.InputSpec:
    """A spec built the way api.dataplane.infer.spec_for builds one."""
    schema = {
        "features": [{"name": n, "type": t} for n, t in features],
        "named": named,
        "allow_nan": allow_nan,
    }
    return inputspec.prepare_spec(schema, selects_by_name=selects_by_name)


SPECS = {
    "iris": spec([(n, "number") for n in IRIS]),
    "iris-nan": spec([(n, "number") for n in IRIS], allow_nan=True),
    "iris-frame": spec([(n, "number") for n in IRIS], selects_by_name=True),
    "mixed": spec([("age", "number"), ("city", "string"), ("plan", "string")]),
    "mixed-nan": spec([("age", "number"), ("city", "string")], allow_nan=True),
    "one-feature": spec([("x", "number")], named=False),
    "feature-named-data": spec([("data", "number"), ("params", "number")]),
    "feature-named-id": spec([("id", "number"), ("y", "string")]),
    "no-schema": inputspec.prepare_spec({}, selects_by_name=False),
}


# --- strategies -----------------------------------------------------------------

# Every code point, lone surrogates and U+0000 included.
any_text = st.text(st.characters(codec=None, min_codepoint=0), max_size=12)
hostile_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()  # nan, inf, -inf, -0.0, subnormals
    | st.sampled_from([1e308, -1e308, 5e-324, 2**63, 2**64, -(2**63) - 1])
    | any_text
    | st.sampled_from(IRIS)
)
feature_keys = st.sampled_from(
    [*IRIS, *payloads.FORMAT_KEYS, "params", "id", "age", "city", "x", "columns"]
)
json_values = st.recursive(
    hostile_scalars,
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(feature_keys | any_text, children, max_size=6)
    ),
    max_leaves=30,
)


def wire(value: Any) -> bytes:
    """JSON text as a hostile client may write it: NaN, huge ints, \\ud800."""
    return json.dumps(value, allow_nan=True).encode()


def check_decoded(decoded: inputspec.DecodedInput, spec: inputspec.InputSpec) -> None:
    """What the model receives is consistent, whatever the input was."""
    assert 1 <= decoded.rows <= MAX_ROWS
    assert isinstance(decoded.params, dict)
    assert decoded.ids is None or len(decoded.ids) == decoded.rows
    assert len(decoded.data) == decoded.rows
    if spec.known:
        assert decoded.data.shape == (decoded.rows, len(spec.names))
    if isinstance(decoded.data, pd.DataFrame):
        assert tuple(decoded.data.columns) == spec.names
    elif decoded.data.dtype == np.float64:
        finite = np.isfinite(decoded.data)
        assert finite.all() or (spec.allow_nan and not np.isinf(decoded.data).any())


def decode_or_refuse(
    body: bytes, content_type: str, spec: inputspec.InputSpec
) -> inputspec.DecodedInput | None:
    try:
        decoded = payloads.decode(body, content_type, spec, max_rows=MAX_ROWS)
    except PayloadError as exc:
        assert exc.code and exc.message
        return None
    check_decoded(decoded, spec)
    return decoded


# --- (a) anything in: model input or a PayloadError, nothing else ---------------


@settings(max_examples=200, deadline=None)
@given(value=json_values, name=st.sampled_from(sorted(SPECS)))
def test_any_json_value_decodes_or_raises_payload_error(value: Any, name: str) -> None:
    decode_or_refuse(wire(value), JSON, SPECS[name])


@settings(max_examples=150, deadline=None)
@given(
    value=json_values,
    name=st.sampled_from(sorted(SPECS)),
    wrapper=st.sampled_from([*payloads.FORMAT_KEYS, "record"]),
    params=st.none() | json_values,
)
def test_any_value_under_a_format_key_decodes_or_raises_payload_error(
    value: Any, name: str, wrapper: str, params: Any
) -> None:
    """Reach past the top level: hostile values where rows and cells belong."""
    if wrapper == "record":
        doc: dict[str, Any] = {n: value for n in SPECS[name].names}
    else:
        doc = {wrapper: value}
    if params is not None:
        doc["params"] = params
    decode_or_refuse(wire(doc), JSON, SPECS[name])


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=200),
    content_type=st.sampled_from(
        [JSON, CSV, "", "application/csv", "application/x+json", "text/plain"]
    ),
    name=st.sampled_from(sorted(SPECS)),
)
def test_any_bytes_decode_or_raise_payload_error(
    body: bytes, content_type: str, name: str
) -> None:
    decode_or_refuse(body, content_type, SPECS[name])


csv_cells = st.text(st.characters(codec=None, min_codepoint=0), max_size=8) | (
    st.floats().map(repr)
)


@settings(max_examples=200, deadline=None)
@given(
    header=st.lists(st.sampled_from([*IRIS, "age", "city", "x", "a"]), max_size=5),
    rows=st.lists(st.lists(csv_cells, max_size=5), max_size=5),
    name=st.sampled_from(sorted(SPECS)),
)
def test_any_csv_table_decodes_or_raises_payload_error(
    header: list[str], rows: list[list[str]], name: str
) -> None:
    out = io.StringIO(newline="")
    csv.writer(out).writerows([header, *rows])
    body = out.getvalue().encode("utf-8", errors="surrogatepass")
    decode_or_refuse(body, CSV, SPECS[name])


# --- (b) well-formed records round-trip ----------------------------------------

names = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00\ufeff"),
    min_size=1,
    max_size=10,
).filter(lambda n: n not in RESERVED)
numbers = st.integers(min_value=-(2**53), max_value=2**53) | st.floats(
    allow_nan=False, allow_infinity=False
)
strings = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=10)


@st.composite
def schemas_and_records(draw: st.DrawFn) -> tuple[list[tuple[str, str]], list[dict]]:
    features = draw(
        st.lists(
            st.tuples(names, st.sampled_from(["number", "string"])),
            min_size=1,
            max_size=6,
            unique_by=lambda f: f[0],
        )
    )
    value = {"number": numbers, "string": strings}
    records = draw(
        st.lists(
            st.tuples(*(value[t] for _, t in features)).map(
                lambda values: dict(zip([n for n, _ in features], values, strict=True))
            ),
            min_size=1,
            max_size=MAX_ROWS,
        )
    )
    return features, records


def shuffled(record: dict[str, Any], order: list[int]) -> dict[str, Any]:
    items = list(record.items())
    return dict(items[i] for i in order)


def encode(shape: str, records: list[dict], columns: list[str]) -> tuple[bytes, str]:
    """The same rows as each accepted wire shape, columns in the given order."""
    if shape == "csv":
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([[r[c] for c in columns] for r in records])
        return out.getvalue().encode(), CSV
    reordered = [{c: r[c] for c in columns} for r in records]
    doc: Any = {
        "records": {"dataframe_records": reordered},
        "data": {"data": reordered},
        "instances": {"instances": reordered},
        "bare-list": reordered,
        "split": {
            "dataframe_split": {
                "columns": columns,
                "data": [[r[c] for c in columns] for r in records],
            }
        },
        "columns": {"inputs": {c: [r[c] for r in records] for c in columns}},
    }[shape]
    return json.dumps(doc).encode(), JSON


def as_rows(data: Any, names: tuple[str, ...]) -> list[list[Any]]:
    if isinstance(data, pd.DataFrame):
        assert tuple(data.columns) == names
        return data.to_numpy(dtype=object).tolist()
    return np.asarray(data, dtype=object).tolist()


def same(decoded: Any, sent: Any) -> bool:
    if isinstance(sent, str):
        return decoded == sent
    return float(decoded) == float(sent) and math.copysign(
        1, float(decoded)
    ) == math.copysign(1, float(sent))


@settings(max_examples=200, deadline=None)
@given(
    drawn=schemas_and_records(),
    shape=st.sampled_from(
        ["records", "data", "instances", "bare-list", "split", "columns", "csv"]
    ),
    named=st.booleans(),
    selects_by_name=st.booleans(),
    data=st.data(),
)
def test_well_formed_records_round_trip_in_schema_order(
    drawn: tuple[list[tuple[str, str]], list[dict]],
    shape: str,
    named: bool,
    selects_by_name: bool,
    data: st.DataObject,
) -> None:
    features, records = drawn
    if shape == "csv":
        # A CSV cell is text: an empty string reads as a missing number.
        assume(all(r[n] != "" for r in records for n, t in features if t == "number"))
    the_spec = spec(features, named=named, selects_by_name=selects_by_name)
    order = data.draw(st.permutations(range(len(features))), label="column order")
    columns = [features[i][0] for i in order]
    body, content_type = encode(shape, records, columns)

    decoded = payloads.decode(body, content_type, the_spec, max_rows=MAX_ROWS)

    check_decoded(decoded, the_spec)
    assert decoded.rows == len(records)
    assert decoded.ids is None
    expected = [[r[n] for n, _ in features] for r in records]
    rows = as_rows(decoded.data, the_spec.names)
    assert all(
        same(got, sent)
        for got_row, sent_row in zip(rows, expected, strict=True)
        for got, sent in zip(got_row, sent_row, strict=True)
    ), (rows, expected)
    if not the_spec.string_positions and not the_spec.needs_frame:
        assert isinstance(decoded.data, np.ndarray)
        assert decoded.data.dtype == np.float64


@settings(max_examples=100, deadline=None)
@given(drawn=schemas_and_records(), ids=st.data())
def test_record_ids_come_back_aligned_with_rows(
    drawn: tuple[list[tuple[str, str]], list[dict]], ids: st.DataObject
) -> None:
    features, records = drawn
    # orjson reads integers beyond 64 bits as floats (the README says so).
    int_ids = st.integers(min_value=-(2**63), max_value=2**64 - 1)
    given_ids = ids.draw(
        st.lists(int_ids | strings, min_size=len(records), max_size=len(records))
    )
    with_ids = [{"id": i, **r} for i, r in zip(given_ids, records, strict=True)]
    body = json.dumps({"dataframe_records": with_ids}).encode()
    decoded = payloads.decode(body, JSON, spec(features), max_rows=MAX_ROWS)
    assert decoded.ids == given_ids


@settings(max_examples=50, deadline=None)
@given(drawn=schemas_and_records())
def test_one_row_more_than_the_limit_is_refused_with_413(
    drawn: tuple[list[tuple[str, str]], list[dict]],
) -> None:
    features, records = drawn
    body = json.dumps({"dataframe_records": records}).encode()
    limit = len(records) - 1
    if limit == 0:
        return
    with pytest.raises(PayloadError) as refused:
        payloads.decode(body, JSON, spec(features), max_rows=limit)
    assert refused.value.status_code == 413


# --- (c) the same through HTTP: 200 or a JSON 4xx, never a 500 -----------------

iris_values = (
    st.floats(min_value=0, max_value=10)
    | st.integers(min_value=0, max_value=10)
    | hostile_scalars
)
iris_records = st.fixed_dictionaries(
    {},
    optional={
        **{name: iris_values for name in IRIS},
        "id": st.integers() | st.text(max_size=5),
        "colour": any_text,
    },
)
valid_iris_records = st.fixed_dictionaries(
    {name: st.floats(min_value=0, max_value=10) for name in IRIS}
)
iris_bodies = st.one_of(
    st.lists(valid_iris_records, min_size=1, max_size=5).map(
        lambda records: wire({"dataframe_records": records})
    ),
    valid_iris_records.map(wire),
    json_values.map(wire),
    iris_records.map(wire),
    st.tuples(st.sampled_from(payloads.FORMAT_KEYS), st.lists(iris_records)).map(
        lambda kv: wire({kv[0]: kv[1]})
    ),
    st.lists(st.lists(iris_values, min_size=4, max_size=4), max_size=4).map(
        lambda rows: wire({"inputs": rows, "params": {"proba": True}})
    ),
)


@pytest.mark.django_db
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=iris_bodies, query=st.sampled_from(["", "?proba=1", "?version=1"]))
def test_any_json_body_gets_200_or_json_4xx(
    client, publish, iris_classifier, body: bytes, query: str
) -> None:
    """Against a real trained model, through every middleware."""
    client.raise_request_exception = False
    if not hasattr(client, "iris"):
        client.iris = publish(iris_classifier, "iris")
    response = client.post(f"/api/predict/iris/{query}", body, content_type=JSON)
    assert response["Content-Type"].startswith("application/json")
    answer = response.json()
    event(f"{response.status_code} {answer.get('code', '')}")
    if response.status_code == 200:
        assert len(answer["predictions"]) >= 1
        assert set(answer["predictions"]) <= {"setosa", "versicolor", "virginica"}
    else:
        assert 400 <= response.status_code < 500, answer
        assert isinstance(answer["detail"], str) and isinstance(answer["code"], str)
