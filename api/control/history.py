"""A model's history for API clients: its activations and version edits, as
one list, newest first.

The two kinds live in two tables (registry.models.Change's subclasses).
History is a sequence that Django's Paginator can slice: a page reads at
most as many rows of each table as the page's end needs, and merges them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from registry.models import Activation, Change, MLModel, VersionEdit


class History:
    """Everything that changed what ``model`` serves, newest first."""

    def __init__(self, model: MLModel) -> None:
        self.activations = Activation.objects.filter(model=model)
        self.edits = VersionEdit.objects.filter(model=model)

    def count(self) -> int:
        return self.activations.count() + self.edits.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list[dict[str, Any]]:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("History is read a page (a slice) at a time.")
        start, stop = index.start or 0, index.stop
        newest = heapq.merge(
            self._rows(self.activations, stop),
            self._rows(self.edits, stop),
            key=_age,
        )
        return [_entry(row) for row in list(newest)[start:stop]]

    @staticmethod
    def _rows(queryset: Any, stop: int | None) -> Iterator[Change]:
        ordered = queryset.order_by("-created_at", "-id")
        return iter(ordered if stop is None else ordered[:stop])


def _age(row: Change) -> tuple[float, int, int]:
    """Newest first; between the tables, a tie goes to the edit, then by id."""
    return (-row.created_at.timestamp(), isinstance(row, Activation), -row.pk)


def _entry(row: Change) -> dict[str, Any]:
    common = {
        "at": row.created_at,
        "user": row.username or None,
        "channel": row.channel,
    }
    if isinstance(row, Activation):
        return {
            "type": "rollback" if row.rollback else "activation",
            **common,
            "from_version": row.from_number,
            "to_version": row.to_number,
        }
    return {"type": "edit", **common, "version": row.number, "changes": row.changes}
