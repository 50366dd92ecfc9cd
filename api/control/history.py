"""A model's history for API clients: its activations, version edits, alias
moves and traffic-policy changes, as one list, newest first.

The kinds live in four tables (registry.models.Change's subclasses).
History is a sequence that Django's Paginator can slice: a page reads at
most as many rows of each table as the page's end needs, and merges them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from registry.models import (
    Activation,
    AliasMove,
    Change,
    MLModel,
    PolicyChange,
    VersionEdit,
)


class History:
    """Everything that changed what ``model`` serves, newest first."""

    def __init__(self, model: MLModel) -> None:
        self.tables = [
            Activation.objects.filter(model=model),
            VersionEdit.objects.filter(model=model),
            AliasMove.objects.filter(model=model),
            PolicyChange.objects.filter(model=model),
        ]

    def count(self) -> int:
        return sum(table.count() for table in self.tables)

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list[dict[str, Any]]:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("History is read a page (a slice) at a time.")
        start, stop = index.start or 0, index.stop
        newest = heapq.merge(*(self._rows(t, stop) for t in self.tables), key=_age)
        return [_entry(row) for row in list(newest)[start:stop]]

    @staticmethod
    def _rows(queryset: Any, stop: int | None) -> Iterator[Change]:
        ordered = queryset.order_by("-created_at", "-id")
        return iter(ordered if stop is None else ordered[:stop])


_TABLE_ORDER = {VersionEdit: 0, Activation: 1, AliasMove: 2, PolicyChange: 3}


def _age(row: Change) -> tuple[float, int, int]:
    """Newest first; between the tables, a tie goes to the edit, then the
    activation (a promote writes both an activation and a policy change)."""
    return (-row.created_at.timestamp(), _TABLE_ORDER[type(row)], -row.pk)


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
    if isinstance(row, AliasMove):
        return {
            "type": "alias",
            **common,
            "alias": row.name,
            "from_version": row.from_number,
            "to_version": row.to_number,
        }
    if isinstance(row, PolicyChange):
        return {
            "type": "policy",
            **common,
            "action": row.action,
            "before": row.before,
            "after": row.after,
            "reason": row.reason or None,
        }
    return {"type": "edit", **common, "version": row.number, "changes": row.changes}
