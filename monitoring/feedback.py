"""Ground truth: labels sent for rows that were predicted, joined to what each
version answered them (the log rows' kept predictions, monitoring.kept).

One path for every way labels arrive (POST /api/feedback/<slug>/, the
admin's CSV upload): ``read_document`` or ``read_csv`` turn the body into
labels, ``record`` joins and stores them. A label names its row by index or
by the id the request carried; it is stored once per log row that answered
it (the client's, and a shadow's), so quality per version and route is read
from the Feedback table alone. Sending the same (request, row) again
replaces its label.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from . import feedback_rollup, writer_lock
from .exceptions import InvalidFeedback, TooManyLabels
from .kept import kept_values
from .models import Feedback, RequestLog

SHADOW = "shadow"
_MAX_REQUEST_ID = 128
_LABEL_TYPES = (str, int, float, bool)
_MAX_LABEL_CHARS = 1000
_QUERY_CHUNK = 500  # request ids per IN (...), under SQLite's parameter limit


@dataclass(frozen=True, slots=True)
class Label:
    """One row's true value, named by its index or by its id."""

    request_id: str
    label: Any
    row: int | None = None
    id: Any = None

    def where(self) -> dict[str, Any]:
        """How the label named its row, for a rejection."""
        named = {"row": self.row} if self.row is not None else {"id": self.id}
        return {"request_id": self.request_id, **named}


@dataclass
class Outcome:
    """The answer: labels stored, request ids not found, labels refused."""

    accepted: int = 0
    unknown: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "unknown": self.unknown,
            "rejected": self.rejected,
        }

    def reject(self, label: Label, code: str, detail: str) -> None:
        self.rejected.append({**label.where(), "code": code, "detail": detail})


def read_document(doc: Any) -> list[Label]:
    """A JSON body in one of its three shapes; InvalidFeedback otherwise."""
    if not isinstance(doc, dict):
        raise InvalidFeedback(
            'The body must be a JSON object: {"request_id": ..., "labels": [...]}, '
            'with "ids" naming the rows, or {"feedback": [{"request_id": ..., '
            '"row": 0, "label": ...}, ...]}.'
        )
    if "feedback" in doc:
        _only(doc, {"feedback"})
        items = doc["feedback"]
        if not isinstance(items, list) or not items:
            raise InvalidFeedback("'feedback' must be a non-empty list of objects.")
        _check_count(len(items))
        return [_item(item, position) for position, item in enumerate(items)]
    if "request_id" not in doc or "labels" not in doc:
        raise InvalidFeedback(
            "Send 'request_id' and 'labels' (one per row, in order; or with "
            "'ids' naming the rows), or 'feedback': a list of "
            '{"request_id", "row" or "id", "label"}.'
        )
    _only(doc, {"request_id", "labels", "ids"})
    request_id = _request_id(doc["request_id"], "'request_id'")
    labels = doc["labels"]
    if not isinstance(labels, list) or not labels:
        raise InvalidFeedback("'labels' must be a non-empty list.")
    _check_count(len(labels))
    checked = [_label(value, f"labels[{i}]") for i, value in enumerate(labels)]
    if "ids" not in doc:
        return [Label(request_id, value, row=i) for i, value in enumerate(checked)]
    ids = doc["ids"]
    if not isinstance(ids, list) or len(ids) != len(labels):
        raise InvalidFeedback(
            f"'ids' must be a list as long as 'labels' ({len(labels)})."
        )
    for i, value in enumerate(ids):
        _id(value, f"ids[{i}]")
    return [
        Label(request_id, value, id=ident)
        for ident, value in zip(ids, checked, strict=True)
    ]


def read_csv(text: str) -> list[Label]:
    """``request_id,row,label`` or ``request_id,id,label`` rows under that
    header. Labels stay text: a regressor's are read as numbers when joined."""
    reader = csv.reader(io.StringIO(text))
    header = [cell.strip().lower() for cell in next(reader, [])]
    if header not in (["request_id", "row", "label"], ["request_id", "id", "label"]):
        raise InvalidFeedback(
            "The CSV's first line must be 'request_id,row,label' or "
            "'request_id,id,label'."
        )
    by_id = header[1] == "id"
    labels = []
    for line, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != 3:
            raise InvalidFeedback(f"Line {line} has {len(cells)} cells, not 3.")
        _check_count(len(labels) + 1)
        request_id = _request_id(cells[0].strip(), f"line {line}'s request_id")
        label = _label(cells[2], f"line {line}'s label")
        if by_id:
            labels.append(Label(request_id, label, id=cells[1].strip()))
            continue
        try:
            row = int(cells[1])
        except ValueError:
            raise InvalidFeedback(f"Line {line}'s row is not a whole number.") from None
        labels.append(Label(request_id, label, row=_row(row, f"line {line}'s row")))
    if not labels:
        raise InvalidFeedback("The CSV holds no labels.")
    return labels


def record(slug: str, labels: list[Label], *, now: datetime | None = None) -> Outcome:
    """Join ``labels`` to ``slug``'s log rows and store them."""
    now = now or timezone.now()
    outcome = Outcome()
    served = _served(slug, {label.request_id for label in labels})
    kinds = _kinds(slug, {row.version for rows in served.values() for row in rows})
    stored: dict[tuple[int, int], Feedback] = {}
    unknown: dict[str, None] = {}
    for label in labels:
        rows = served.get(label.request_id)
        if rows is None:
            unknown[label.request_id] = None
            continue
        if not rows:
            outcome.reject(
                label, "request_failed", "The request was answered with an error."
            )
            continue
        found = _joined(label, rows, kinds, outcome)
        if found is None:
            continue
        index, value = found
        outcome.accepted += 1
        for log in rows:
            kept = log.kept()
            if index >= len(kept):
                continue
            predicted = kept[index]
            stored[log.id, index] = Feedback(
                log_id=log.id,
                row=index,
                slug=slug,
                version=log.version,
                route=log.route,
                request_id=label.request_id,
                predicted_at=log.created_at,
                received_at=now,
                label=_text(value),
                predicted=_text(predicted),
                error=_error(predicted, value) if isinstance(value, float) else None,
            )
    outcome.unknown = list(unknown)
    _store(list(stored.values()))
    return outcome


@dataclass
class _Served:
    """A successful log row of the request: the client's or a shadow's."""

    id: int
    version: int
    route: str
    created_at: datetime
    rows: int
    predictions: str | None
    row_ids: str | None
    _kept: list[Any] | None = None

    def kept(self) -> list[Any]:
        if self._kept is None:
            self._kept = kept_values(self.predictions)
        return self._kept


def _served(slug: str, request_ids: set[str]) -> dict[str, list[_Served]]:
    """Per request id: its client row first (the latest that succeeded),
    then each shadow version's latest. A request id that only failed maps
    to an empty list, as one never seen does not appear."""
    found: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    ids = sorted(request_ids)
    for start in range(0, len(ids), _QUERY_CHUNK):
        rows = RequestLog.objects.filter(
            slug=slug, request_id__in=ids[start : start + _QUERY_CHUNK]
        ).values_list(
            "request_id",
            "id",
            "version",
            "route",
            "created_at",
            "rows",
            "predictions",
            "row_ids",
            "status",
        )
        for row in rows:
            found[row[0]].append(row[1:])
    served: dict[str, list[_Served]] = {}
    for request_id, rows in found.items():
        latest: dict[Any, _Served] = {}
        for log_id, version, route, at, count, kept, ids_text, status in sorted(
            rows, key=lambda r: r[0]
        ):
            if status >= 400 or version is None:
                continue
            key = (SHADOW, version) if route == SHADOW else "client"
            latest[key] = _Served(log_id, version, route, at, count, kept, ids_text)
        client = latest.pop("client", None)
        served[request_id] = [client, *latest.values()] if client else []
    return served


def _kinds(slug: str, versions: set[int]) -> dict[int, tuple[str, set[str] | None]]:
    """Each version's kind and its classes as text."""
    from registry.models import ModelVersion

    found = ModelVersion.objects.filter(
        model__slug=slug, number__in=versions
    ).values_list("number", "kind", "classes")
    return {
        number: (kind, {_text(c) for c in classes} if classes else None)
        for number, kind, classes in found
    }


def _joined(
    label: Label,
    rows: list[_Served],
    kinds: dict[int, tuple[str, set[str] | None]],
    outcome: Outcome,
) -> tuple[int, Any] | None:
    """The row index the label names and the label as its version compares
    it; None (and a rejection) when it cannot be joined."""
    client = rows[0]
    if client.predictions is None:
        outcome.reject(
            label,
            "predictions_not_kept",
            "Its predictions were not kept: the model's keep_predictions is off, "
            "or it answers more than one value per row.",
        )
        return None
    if label.row is not None:
        index = label.row
        if index >= client.rows:
            outcome.reject(
                label,
                "row_out_of_range",
                f"The request had {client.rows} row(s); rows count from 0.",
            )
            return None
    else:
        ids = [_text(i) for i in kept_values(client.row_ids)]
        wanted = _text(label.id)
        if wanted not in ids:
            outcome.reject(
                label,
                "unknown_id",
                "The request named no row by this id."
                if client.row_ids
                else "The request named no rows by id: send 'row' indexes.",
            )
            return None
        index = ids.index(wanted)
    if index >= len(client.kept()):
        outcome.reject(
            label,
            "row_not_kept",
            "This row's prediction was past MODELHUB_LOG_PREDICTIONS_BYTES "
            "and was not kept.",
        )
        return None
    kind, classes = kinds.get(client.version, ("other", None))
    if kind == "regressor":
        value = _number(label.label)
        if value is None:
            outcome.reject(
                label, "invalid_label", "A regressor's label must be a finite number."
            )
            return None
        return index, value
    if (
        kind == "classifier"
        and classes is not None
        and _text(label.label) not in classes
    ):
        shown = ", ".join(sorted(classes)[:20])
        outcome.reject(
            label,
            "label_not_in_classes",
            f"{_text(label.label)[:100]!r} is not one of the classes: {shown}.",
        )
        return None
    return index, _text(label.label)


def _store(rows: list[Feedback]) -> None:
    """Insert, or replace the label of a (log row, row) sent before."""
    if not rows:
        return
    db = connections[DEFAULT_DB_ALIAS]
    with writer_lock.held(db), transaction.atomic(using=db.alias):
        replaced = _stored_before(rows)
        Feedback.objects.bulk_create(
            rows,
            batch_size=500,
            update_conflicts=True,
            unique_fields=["log_id", "row"],
            update_fields=["label", "predicted", "error", "received_at"],
        )
        feedback_rollup.add(rows, replaced)


def _stored_before(rows: list[Feedback]) -> list[Feedback]:
    """The labels ``rows`` replace: their rollup counts are taken back."""
    wanted = {(row.log_id, row.row) for row in rows}
    log_ids = sorted({log_id for log_id, _ in wanted})
    found = []
    for start in range(0, len(log_ids), _QUERY_CHUNK):
        found += [
            stored
            for stored in Feedback.objects.filter(
                log_id__in=log_ids[start : start + _QUERY_CHUNK]
            )
            if (stored.log_id, stored.row) in wanted
        ]
    return found


def _text(value: Any) -> str:
    """A label as labels are compared: str(), as probabilities are keyed."""
    return value if isinstance(value, str) else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _error(predicted: Any, truth: float) -> float | None:
    number = _number(predicted)
    return None if number is None else number - truth


def _only(doc: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(doc) - allowed)
    if extra:
        raise InvalidFeedback(f"Unknown field '{str(extra[0])[:100]}'.")


def _check_count(count: int) -> None:
    limit = settings.MODELHUB_MAX_ROWS
    if count > limit:
        raise TooManyLabels(
            f"More than {limit:,} labels in one body (MODELHUB_MAX_ROWS)."
        )


def _item(item: Any, position: int) -> Label:
    where = f"feedback[{position}]"
    if not isinstance(item, dict):
        raise InvalidFeedback(f"{where} must be an object.")
    extra = sorted(set(item) - {"request_id", "row", "id", "label"})
    if extra:
        raise InvalidFeedback(f"{where} has an unknown field '{str(extra[0])[:100]}'.")
    if "request_id" not in item or "label" not in item:
        raise InvalidFeedback(f"{where} needs 'request_id' and 'label'.")
    if ("row" in item) == ("id" in item):
        raise InvalidFeedback(f"{where} needs one of 'row' or 'id'.")
    request_id = _request_id(item["request_id"], f"{where}.request_id")
    label = _label(item["label"], f"{where}.label")
    if "row" in item:
        return Label(request_id, label, row=_row(item["row"], f"{where}.row"))
    return Label(request_id, label, id=_id(item["id"], f"{where}.id"))


def _request_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_REQUEST_ID:
        raise InvalidFeedback(f"{where} must be a request id (1 to 128 characters).")
    return value


def _row(value: Any, where: str) -> int:
    if type(value) is not int or value < 0:
        raise InvalidFeedback(f"{where} must be a row index: a whole number from 0.")
    return value


def _id(value: Any, where: str) -> Any:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise InvalidFeedback(f"{where} must be a string or a whole number.")
    return value


def _label(value: Any, where: str) -> Any:
    if not isinstance(value, _LABEL_TYPES) or (
        isinstance(value, str) and len(value) > _MAX_LABEL_CHARS
    ):
        raise InvalidFeedback(
            f"{where} must be a label: a string, a number or true/false "
            f"(at most {_MAX_LABEL_CHARS} characters)."
        )
    return value
