"""Bench-only prototype of the third request-log design: a buffered bulk writer.

Not used by ModelHub itself. Each worker keeps rows in memory and writes them
with the app's own multi-row write (one INSERT; rollup as the app folds it) once BATCH
rows are waiting or the oldest has waited MAX_AGE seconds — checked when a
row arrives, there is no timer thread. It breaks the design's contract ("a
request's row is committed before the worker takes its next request"): a
crash loses up to BATCH rows, and on an idle worker rows wait until the next
request or a graceful exit (gunicorn's worker_exit hook flushes). It exists
to price that trade-off. Import it only once Django is set up.

MODELHUB_BENCH_LOG_BATCH (default 64) and MODELHUB_BENCH_LOG_MAX_AGE
(seconds, default 1) tune it.
"""

from __future__ import annotations

import os
import time

from django.conf import settings

from monitoring.requestlog import LogEntry, RequestLogWriter

BATCH = int(os.environ.get("MODELHUB_BENCH_LOG_BATCH", "64"))
MAX_AGE = float(os.environ.get("MODELHUB_BENCH_LOG_MAX_AGE", "1"))


class BufferedWriter(RequestLogWriter):
    def __init__(self) -> None:
        super().__init__()
        self._oldest = 0.0

    def submit(self, entry: LogEntry) -> None:
        with self._rows:
            if len(self._pending) >= settings.MODELHUB_LOG_BUFFER_SIZE:
                self._drop()
            else:
                if not self._pending:
                    self._oldest = time.monotonic()
                self._pending.append(entry)
            due = (
                len(self._pending) >= BATCH
                or time.monotonic() - self._oldest >= MAX_AGE
            )
        if due:
            self.flush()


def install() -> BufferedWriter:
    """Make this process's request log use a BufferedWriter."""
    import monitoring.middleware
    import monitoring.requestlog

    writer = BufferedWriter()
    # The middleware looks its writer up at call time; gunicorn's worker_exit
    # hook flushes monitoring.requestlog.writer.
    monitoring.middleware.writer = writer
    monitoring.requestlog.writer = writer
    return writer
