"""gunicorn settings for ModelHub, each overridable from the environment.

Memory: every worker keeps its own cache of loaded models, so resident memory
is roughly workers x cached models x model size, less what the workers share:
the arrays of memory-mapped joblib files (MODELHUB_MODEL_MMAP) and the models
the master loaded before forking (MODELHUB_SHARE_MODELS). Bound it with
MODELHUB_WORKERS and the model cache size settings.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# gunicorn reads this file before it imports the app: the project must be
# importable for the settings' own readers of the environment.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelhub.env import env_bool, env_choice, env_int, env_str  # noqa: E402

# Prometheus multiprocess mode: every worker writes its metrics to files in
# this directory and /metrics sums them. Set before any worker imports
# prometheus_client; an operator may point it elsewhere. gunicorn runs this
# file again on HUP, when the variable is already set: which directory is ours
# is kept in the environment too, or on_exit would leave it behind.
_OWN_METRICS_DIR_VAR = "_MODELHUB_CREATED_PROMETHEUS_DIR"
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
        prefix="modelhub-prometheus-"
    )
    os.environ[_OWN_METRICS_DIR_VAR] = os.environ["PROMETHEUS_MULTIPROC_DIR"]


# Each worker notes the prediction it is inside here (registry/inflight.py), for
# the watchdog that kills a worker hung in native code and for child_exit.
_OWN_INFLIGHT_DIR_VAR = "_MODELHUB_CREATED_INFLIGHT_DIR"
if "MODELHUB_INFLIGHT_DIR" not in os.environ:
    os.environ["MODELHUB_INFLIGHT_DIR"] = tempfile.mkdtemp(prefix="modelhub-inflight-")
    os.environ[_OWN_INFLIGHT_DIR_VAR] = os.environ["MODELHUB_INFLIGHT_DIR"]
_watchdog: subprocess.Popen | None = None

# The host's batch process listens here (api/dataplane/batch_host.py); the
# directory is made 0700, so only this user's processes reach it.
_OWN_BATCH_DIR_VAR = "_MODELHUB_CREATED_BATCH_DIR"
if "MODELHUB_BATCH_SOCKET" not in os.environ:
    _batch_dir = tempfile.mkdtemp(prefix="modelhub-batch-")
    os.environ["MODELHUB_BATCH_SOCKET"] = os.path.join(_batch_dir, "batch.sock")
    os.environ[_OWN_BATCH_DIR_VAR] = _batch_dir
_batch_keeper: subprocess.Popen | None = None

bind = env_str("MODELHUB_BIND", "127.0.0.1:8000")
workers = env_int("MODELHUB_WORKERS", 2, minimum=1)
threads = env_int("MODELHUB_THREADS", 1, minimum=1)
# gunicorn's own refusals (a bad request line, oversized headers) as JSON.
worker_class = (
    "modelhub.workers.JsonErrorsThreadWorker"
    if threads > 1
    else "modelhub.workers.JsonErrorsSyncWorker"
)
# Worker recycling caps slow leaks in user model code; jitter avoids all
# workers restarting at once.
max_requests = env_int("MODELHUB_MAX_REQUESTS", 0)
max_requests_jitter = env_int("MODELHUB_MAX_REQUESTS_JITTER", 0)
timeout = env_int("MODELHUB_WORKER_TIMEOUT", 60)
graceful_timeout = env_int("MODELHUB_GRACEFUL_TIMEOUT", 30)
keepalive = env_int("MODELHUB_KEEPALIVE", 5)
# What gunicorn reads before Django runs, refused with a JSON 414 or 431
# (modelhub/workers.py): the request line (method, path and query), the number
# of headers, and each header's size. ModelHub's URLs are short and its
# clients send a handful of headers; a token or a cookie fits in 8 KiB.
limit_request_line = env_int("MODELHUB_LIMIT_REQUEST_LINE", 4094, minimum=256)
limit_request_fields = env_int("MODELHUB_LIMIT_REQUEST_FIELDS", 100, minimum=16)
limit_request_field_size = env_int(
    "MODELHUB_LIMIT_REQUEST_FIELD_SIZE", 8190, minimum=1024
)
# The app is imported once in the master and forked: a new worker (after a
# crash, max_requests or HUP) serves within milliseconds instead of paying
# Django's and scikit-learn's imports again, and shares their memory. Code
# changes then need a restart (or USR2), not HUP.
preload_app = env_bool("MODELHUB_PRELOAD_APP", True)
accesslog = env_str("MODELHUB_ACCESS_LOG") or None
errorlog = "-"
# One JSON object per line for gunicorn's own lines too (modelhub/logformat.py).
if env_choice("MODELHUB_LOG_FORMAT", "text", ("text", "json")) == "json":
    logger_class = "modelhub.logformat.GunicornJsonLogger"
# gunicorn's control socket lives in $HOME and would be shared by every
# instance on the machine; ModelHub is managed with signals instead.
control_socket_disable = True
wsgi_app = "modelhub.wsgi:application"


def on_starting(server) -> None:  # noqa: ANN001 - gunicorn's hook signature
    """Start from empty metric files: counters restart with the master."""
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


def when_ready(server) -> None:  # noqa: ANN001
    """Start the watchdog: a process of its own, so a worker holding the
    interpreter in native code cannot stop it; it ends with the master."""
    global _watchdog, _batch_keeper
    if preload_app:
        # The app itself does not import scikit-learn; the first model a
        # worker loads does (~2 s, 6 s with two workers at once on 2 cores:
        # most of a second start). Imported once here, before the fork, and
        # shared by every worker.
        import sklearn.base  # noqa: F401

        # The active versions too: every worker forked afterwards shares their
        # pages (registry/forkshare.py).
        from registry.forkshare import preload_before_fork

        preload_before_fork()

    _watchdog = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "registry.inflight",
            os.environ["MODELHUB_INFLIGHT_DIR"],
            str(os.getpid()),
        ],
        cwd=Path(__file__).resolve().parent.parent,
    )
    # The batch process's keeper: it starts the batch process itself, when a
    # worker first has rows to batch.
    _batch_keeper = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.dataplane.batch_host",
            "keep",
            os.environ["MODELHUB_BATCH_SOCKET"],
            str(os.getpid()),
        ],
        cwd=Path(__file__).resolve().parent.parent,
    )


def on_reload(server) -> None:  # noqa: ANN001
    """HUP: the new workers share what is active now, not what was at start."""
    if preload_app:
        from registry.forkshare import preload_before_fork

        preload_before_fork()


def on_exit(server) -> None:  # noqa: ANN001
    for helper in (_watchdog, _batch_keeper):
        if helper is not None:
            helper.terminate()
            helper.wait(timeout=5)
    batch_dir = os.environ.get(_OWN_BATCH_DIR_VAR)
    if batch_dir and os.path.dirname(os.environ["MODELHUB_BATCH_SOCKET"]) == batch_dir:
        shutil.rmtree(batch_dir, ignore_errors=True)
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if os.environ.get(_OWN_METRICS_DIR_VAR) == directory:
        shutil.rmtree(directory, ignore_errors=True)
    inflight = os.environ["MODELHUB_INFLIGHT_DIR"]
    if os.environ.get(_OWN_INFLIGHT_DIR_VAR) == inflight:
        shutil.rmtree(inflight, ignore_errors=True)


def post_fork(server, worker) -> None:  # noqa: ANN001
    """Never share a database connection the master may have opened."""
    global _watchdog, _batch_keeper
    # The watchdog and the keeper are the master's. Dropped here, the
    # worker's copy of each handle goes quietly; kept, it went at the worker's
    # exit, when Python prints "subprocess … is still running" raw on stderr,
    # past the log's formatting (a stray line in MODELHUB_LOG_FORMAT=json).
    _watchdog = _batch_keeper = None
    if preload_app:
        from django.db import connections

        connections.close_all()


def post_worker_init(worker) -> None:  # noqa: ANN001
    """Load every active model before the worker takes its first request."""
    from registry.warmup import preload

    preload()


def worker_exit(server, worker) -> None:  # noqa: ANN001
    """Every exit where Python still runs (TERM, HUP, max_requests, the
    worker timeout's abort, an error): commit the rows of the open window and
    any buffered ones, and fold them into the dashboard's rollup."""
    from monitoring import rollup
    from monitoring.requestlog import writer

    writer.close()
    rollup.refresh()
    # The worker's copies of the listening sockets, closed before Python's
    # exit would warn about them on stderr; the master's stay open.
    for sock in worker.sockets:
        sock.close()


def child_exit(server, worker) -> None:  # noqa: ANN001
    """A worker that died inside a prediction: its row, and the crash counted
    against the model (monitoring/crashes.py)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    import django

    django.setup()  # a no-op with the app preloaded
    from monitoring.crashes import settle_worker

    settle_worker(worker.pid)
