"""gunicorn settings for bench/batching_wsgi.py: the reference's (ModelHub's
own, MODELHUB_WORKERS and MODELHUB_THREADS picking sync or gthread workers),
and with BENCH_BATCH_MODE=host the host's inference process, started by the
master before its workers and stopped with it.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import time
from pathlib import Path

from gunicorn.config import KNOWN_SETTINGS

_ROOT = Path(__file__).resolve().parent.parent
_REFERENCE = runpy.run_path(str(_ROOT / "bench" / "reference_gunicorn.py"))
_NAMES = {setting.name for setting in KNOWN_SETTINGS}
globals().update(
    {n: v for n, v in _REFERENCE.items() if n in _NAMES and not callable(v)}
)
wsgi_app = "bench.batching_wsgi:application"
_host: subprocess.Popen | None = None


def when_ready(server) -> None:  # noqa: ANN001 - gunicorn's hook signature
    global _host
    if os.environ.get("BENCH_BATCH_MODE") != "host":
        return
    path = os.environ["BENCH_BATCH_SOCKET"]
    _host = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.batching_host",
            path,
            os.environ["BENCH_REFERENCE_MODELS"],
            os.environ["BENCH_BATCH_STATS_DIR"],
            os.environ.get("BENCH_BATCH_MAX_ROWS", "32"),
            os.environ.get("BENCH_BATCH_WAIT_MS", "2"),
            str(os.getpid()),
        ],
        cwd=_ROOT,
    )
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if _host.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the inference process did not start")
        time.sleep(0.05)


def post_fork(server, worker) -> None:  # noqa: ANN001
    global _host
    _host = None  # the master's


def on_exit(server) -> None:  # noqa: ANN001
    if _host is not None:
        _host.terminate()
        _host.wait(timeout=10)
