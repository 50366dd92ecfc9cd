"""The shadow process: where the batch process's shadow jobs are predicted.

A shadow competes with the host's workers for the CPU. As a thread of the
batch process, even at nice 19, it competed for that process's GIL too, and
batched requests waited behind it (bench/README.md). Here it has an
interpreter of its own, scheduled SCHED_IDLE: it runs on the CPU time
nothing else wants, and when it is starved only shadows wait. It decodes and
predicts; the batch process, at normal priority, counts and logs what it
answers, so a process that may not run for seconds never holds a lock the
workers need (the request log's database, the metrics files).

A child of the batch server (``python -m api.dataplane.shadow_host FD``),
started on the first shadow job and again after it died, at most once a
second. It ends when the batch server does (its socket closes). A model that
ends it or hangs in it is settled as for a worker (monitoring.crashes): the
job's row says so and the crash counts against the version.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .batch_wire import receive, send

if TYPE_CHECKING:
    from monitoring.requestlog import LogEntry

    from .shadow import ShadowJob

logger = logging.getLogger(__name__)

_RESTART_SECONDS = 1.0
_PROJECT = Path(__file__).resolve().parent.parent.parent


class ShadowProcess:
    """The batch server's handle on its shadow process; one caller at a
    time (the shadow queue's thread)."""

    def __init__(self) -> None:
        self._child: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._started = -_RESTART_SECONDS

    def predict(self, jobs: list[ShadowJob]) -> tuple[list[LogEntry], float] | None:
        """The jobs' log rows as the shadow process predicted them (or as its
        crash settled them) and the CPU seconds it spent; None when no
        process could take them."""
        sock = self._running()
        if sock is None:
            return None
        try:
            send(sock, ("shadows", jobs))
            _, entries, cpu_seconds = receive(sock)
        except (EOFError, OSError):
            return self._lost(jobs), 0.0
        return entries, cpu_seconds

    def _running(self) -> socket.socket | None:
        if self._child is not None and self._child.poll() is None:
            return self._sock
        self._close()
        if time.monotonic() < self._started + _RESTART_SECONDS:
            return None
        self._started = time.monotonic()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "api.dataplane.shadow_host",
                    str(theirs.fileno()),
                ],
                pass_fds=[theirs.fileno()],
                cwd=_PROJECT,
            )
        except OSError:
            logger.exception("could not start the shadow process")
            ours.close()
            return None
        finally:
            theirs.close()
        self._sock = ours
        return ours

    def _lost(self, jobs: list[ShadowJob]) -> list[LogEntry]:
        """The process died inside ``jobs``: settled as a worker's crash (504
        past its time limit, else 503, counted once against the version);
        none of them has an answer."""
        from monitoring.crashes import settle_worker

        child = self._child
        assert child is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(5)
        self._close()
        logger.error(
            "shadow process %s exited (%s) inside %s job(s), the first %s",
            child.pid,
            child.returncode,
            len(jobs),
            jobs[0].request_id,
        )
        from .shadow import failed_entry

        outcome = settle_worker(child.pid, log_row=False)
        status, code = outcome or (503, "model_crashed")
        return [failed_entry(job, status, code) for job in jobs]

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        if self._child is not None and self._child.poll() is None:
            self._child.kill()
            self._child.wait()
        self._child = None


def _idle() -> None:
    """Every thread of this process takes the CPU last: set before any
    thread starts, the policy is inherited by those that do."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, 19)


def serve(fd: int) -> None:
    """Predict the batches of jobs the batch server sends until it goes."""
    _idle()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelhub.settings")
    import django

    django.setup()
    from . import shadow
    from .model_warnings import model_code_only

    model_code_only()
    sock = socket.socket(fileno=fd)
    while True:
        try:
            _, jobs = receive(sock)
        except (EOFError, OSError):
            return
        started = time.process_time()
        entries = shadow.predicted_together(jobs)
        model_code_only()  # a first load imports the model's modules
        send(sock, ("entries", entries, time.process_time() - started))


if __name__ == "__main__":
    serve(int(sys.argv[1]))
