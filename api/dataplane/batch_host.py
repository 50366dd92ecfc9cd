"""One batch process per host, fed by every gunicorn worker.

In one process a forest's predict (a Python-level call per tree) and the
request threads take turns on one GIL, so an in-process batcher served less
than plain sync workers (bench/README.md). Across processes nothing is shared:
sync workers decode and validate requests in parallel and hand the rows to
this process, whose batchers (api.dataplane.batching.Batcher, one per
version) predict them together. Sync workers are unchanged otherwise, and a
model with batching off never comes here.

Two processes, both ending with the gunicorn master:

- the keeper, ``python -m api.dataplane.batch_host keep SOCKET MASTER_PID``,
  started by the master (modelhub/gunicorn.conf.py). Small and without
  Django, it binds the socket and starts the server the first time a worker
  connects (a host that never batches pays for no server), and again after
  the server died;
- the server, ``… serve FD KEEPER_PID``: Django, the model cache, a thread
  per connected worker thread and the batchers. It notes the prediction it
  is inside as a worker does (registry.inflight), so the watchdog ends it
  when a model hangs in native code; its workers then predict their requests
  alone, where a crash is settled as for any worker.

The wire is api.dataplane.batch_wire's: a length, then a pickle, on a
socket in a directory only this user can enter (tempfile.mkdtemp's 0700).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .batch_wire import reachable, receive, send

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.5
# A server that keeps dying is started again at most this often.
_RESTART_SECONDS = 1.0
_SWITCH_INTERVAL_SECONDS = 0.0002  # Python's default: 0.005
_PROJECT = Path(__file__).resolve().parent.parent.parent


def keep(path: str, master_pid: int) -> None:
    """Hold the socket and keep a server behind it while the master lives."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with reachable(path) as short:
        listener.bind(short)
    listener.listen(128)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server: subprocess.Popen | None = None
    started = -_RESTART_SECONDS
    try:
        while os.getppid() == master_pid:
            if server is not None:
                try:
                    server.wait(_POLL_SECONDS)
                except subprocess.TimeoutExpired:
                    continue
                _settle(server)
                server = None
            waiting, _, _ = select.select([listener], [], [], _POLL_SECONDS)
            if not waiting:
                continue
            pause = started + _RESTART_SECONDS - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            started = time.monotonic()
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "api.dataplane.batch_host",
                    "serve",
                    str(listener.fileno()),
                    str(os.getpid()),
                ],
                pass_fds=[listener.fileno()],
                cwd=_PROJECT,
            )
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(5)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _settle(server: subprocess.Popen) -> None:
    """A server that exited: its note goes (the workers it served predict
    their requests alone and settle them), and the exit is said."""
    from registry import inflight

    note = inflight.take(os.environ.get("MODELHUB_INFLIGHT_DIR", ""), server.pid)
    inside = f" inside {note['slug']} v{note['number']}" if note else ""
    logger.warning(
        "batch process %s exited (%s)%s; started again when a worker next connects",
        server.pid,
        server.returncode,
        inside,
    )


def _keeper_logging() -> None:
    """The keeper has no Django: its lines take settings.LOGGING's format by
    hand, so MODELHUB_LOG_FORMAT=json stays one JSON object per line."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("MODELHUB_LOG_FORMAT", "text") == "json":
        from modelhub.logformat import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def serve(fd: int, keeper_pid: int) -> None:
    """Accept workers' connections until the keeper is gone."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelhub.settings")
    import django

    django.setup()
    from .model_warnings import model_code_only

    model_code_only()
    # A worker's rows wait for the GIL while a batch predicts: handed over
    # sooner, they make the next batch sooner (bench/README.md).
    sys.setswitchinterval(_SWITCH_INTERVAL_SECONDS)
    # The keeper's SIGTERM exits through atexit: the shadows' log rows waiting
    # for their commit are committed (monitoring.requestlog).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.socket(fileno=fd)
    listener.settimeout(_POLL_SECONDS)
    while os.getppid() == keeper_pid:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        threading.Thread(
            target=_serve_connection,
            args=(conn,),
            name="modelhub-batch-connection",
            daemon=True,
        ).start()


def _serve_connection(conn: socket.socket) -> None:
    """One worker thread's requests, one at a time, as it sends them."""
    from ..errors import ModelRejectedInput, PredictionTimeout
    from .batching import Batcher, Job

    expected: Batcher | None = None
    failure = ""
    try:
        while True:
            message = receive(conn)
            kind = message[0]
            if kind == "expect":
                expected, failure = _batcher(*message[1:])
                if expected is not None:
                    expected.expect()
            elif kind == "unexpect":
                if expected is not None:
                    expected.unexpect()
                expected = None
            elif kind == "shadows":
                from .shadow import queue

                queue.offer(message[1])
            elif kind == "predict":
                batcher, expected = expected, None
                if batcher is None:
                    send(conn, ("unavailable", failure))
                    continue
                _, data, rows, proba, request_id = message
                try:
                    job = batcher.predict(Job(data, rows, proba, request_id))
                except ModelRejectedInput as exc:
                    send(conn, ("rejected", str(exc)))
                except PredictionTimeout as exc:
                    send(conn, ("timeout", str(exc)))
                except Exception as exc:  # noqa: BLE001 - the worker predicts alone
                    logger.exception("batch of %s failed", batcher.loaded.ref.slug)
                    send(conn, ("unavailable", repr(exc)))
                else:
                    send(
                        conn,
                        (
                            "ok",
                            job.predictions,
                            job.probabilities,
                            job.batch_size,
                            job.model_ms,
                        ),
                    )
    except (EOFError, OSError):
        pass  # the worker went (or dropped a request past its patience)
    finally:
        if expected is not None:
            expected.unexpect()
        conn.close()


def _batcher(ref: Any, max_rows: int, max_wait_ms: float) -> tuple[Any, str]:
    """The batcher of ``ref`` loaded here, or why it could not be loaded."""
    from registry.cache import model_cache
    from registry.exceptions import ModelUnavailable

    from .batching import local_batcher
    from .model_warnings import model_code_only

    try:
        loaded = model_cache.get(ref)
    except ModelUnavailable as exc:
        return None, str(exc)
    model_code_only()  # a first load imports the model's modules
    return local_batcher(loaded, max_rows, max_wait_ms), ""


if __name__ == "__main__":
    if sys.argv[1] == "keep":
        _keeper_logging()
        keep(sys.argv[2], int(sys.argv[3]))
    else:
        serve(int(sys.argv[2]), int(sys.argv[3]))
