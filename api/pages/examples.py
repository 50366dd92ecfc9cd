"""The example row a version's snippets and Try it form send.

Its ``input_example`` (metadata) when it has one, read as the preflight reads
it; else a row of the right types under the version's real feature names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry.inspection import SchemaError, example_records, placeholder
from registry.models import ModelVersion

INPUT_EXAMPLE = "input_example"
PLACEHOLDERS = "placeholders"


@dataclass(frozen=True)
class Example:
    """One row, keyed by feature (``named``) or positional, and where it came from."""

    row: dict[str, Any] | list[Any]
    source: str

    @property
    def named(self) -> bool:
        return isinstance(self.row, dict)

    def rest_body(self) -> dict[str, Any]:
        """The /api/predict/ body: one record, or one positional row."""
        return {"data": self.row} if self.named else {"inputs": [self.row]}


def example_for(version: ModelVersion) -> Example:
    """A row the version accepts. Named models get a record in schema order;
    models without feature names a positional row, as the API's own
    example_request sends them."""
    schema = version.input_schema or {}
    features: list[dict[str, Any]] = list(schema.get("features") or [])
    named = bool(schema.get("named"))
    recorded = _first_record(version.metadata or {})
    if recorded is not None and _fits(recorded, features, named=named):
        return Example(_arranged(recorded, features, named=named), INPUT_EXAMPLE)
    placeholders = {str(f["name"]): placeholder(f, "") for f in features}
    row = placeholders if named else list(placeholders.values())
    return Example(row, PLACEHOLDERS)


def _first_record(metadata: dict[str, Any]) -> dict[str, Any] | list[Any] | None:
    try:
        records = example_records(metadata)
    except SchemaError:
        return None
    first = records[0] if records else None
    return first if isinstance(first, (dict, list)) else None


def _fits(
    record: dict[str, Any] | list[Any],
    features: list[dict[str, Any]],
    *,
    named: bool,
) -> bool:
    if not features:
        return True
    if isinstance(record, dict):
        return all(str(f["name"]) in record for f in features)
    return len(record) == len(features)


def _arranged(
    record: dict[str, Any] | list[Any],
    features: list[dict[str, Any]],
    *,
    named: bool,
) -> dict[str, Any] | list[Any]:
    """The record in schema order, shaped as the version takes it."""
    names = [str(f["name"]) for f in features]
    if isinstance(record, dict):
        if not names:
            return dict(record)
        values = [record[n] for n in names]
    else:
        values = list(record)
    if named and names:
        return dict(zip(names, values, strict=True))
    return values
