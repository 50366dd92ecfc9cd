"""Files that ModelHub keeps beside a SQLite database file.

Every process that uses such a database can write next to it (SQLite's own
``-wal`` and ``-shm`` live there), and every writer is on this machine: the
writers' lock (monitoring.writer_lock) and the registry's generation
(registry.generation) rely on both.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper


def beside(db: BaseDatabaseWrapper, suffix: str) -> str | None:
    """``<database file><suffix>``, or None unless ``db`` is a SQLite file."""
    if db.vendor != "sqlite" or db.is_in_memory_db():
        return None
    return str(db.settings_dict["NAME"]) + suffix
