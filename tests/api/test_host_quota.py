"""The host quota's counter file, as two workers of a host use it."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from api.access.quota import HostQuota


def test_a_burst_is_allowed_then_each_refusal_names_the_wait(tmp_path: Path) -> None:
    quota = HostQuota(str(tmp_path / "quota.sqlite3"))
    answers = [quota.take("caller", "5/minute") for _ in range(6)]
    assert answers[:5] == [None] * 5
    assert answers[5] is not None and 0 < answers[5] <= 12


def test_a_worker_that_waited_for_the_lock_never_asks_more_than_the_interval(
    tmp_path: Path,
) -> None:
    """Another worker advanced the counter from a later clock while this one
    waited for the file's lock: the wait is measured from after the lock."""
    path = str(tmp_path / "quota.sqlite3")
    quota = HostQuota(path)
    assert quota.take("caller", "1/minute") is None  # creates the row
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    answer: list[float | None] = []
    waiting = threading.Thread(
        target=lambda: answer.append(quota.take("late", "1/minute"))
    )
    waiting.start()
    time.sleep(0.2)  # the take is now blocked on the lock
    other.execute(
        "INSERT INTO quota (ident, tat) VALUES ('late', ?)", (time.time() + 60,)
    )
    other.execute("COMMIT")
    waiting.join(5)
    assert answer and answer[0] is not None
    assert answer[0] <= 60


def test_workers_share_one_count(tmp_path: Path) -> None:
    path = str(tmp_path / "quota.sqlite3")
    first, second = HostQuota(path), HostQuota(path)
    answers = [q.take("caller", "4/minute") for q in (first, second) * 3]
    assert answers.count(None) == 4
