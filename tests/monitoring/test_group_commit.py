"""Group commit: a row is committed at most one window after its response.

The writer's own behaviour is checked in process on a real database; the
promises about exits are checked under real gunicorn, with windows long
enough (a minute) that only the path under test can have committed a row:
every graceful exit commits the open window, a SIGKILL loses that window and
nothing before it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from monitoring.models import RequestLog
from monitoring.requestlog import LogEntry, RequestLogWriter
from tests.servers import (
    IRIS_ROW,
    Install,
    Server,
    logged_rows,
    start_gunicorn,
    wait_for_rows,
)
from tests.test_faults import slow_model_install  # noqa: F401 - a fixture

A_MINUTE_MS = "60000"


def entry(request_id: str) -> LogEntry:
    return LogEntry(
        created_at=datetime.now(UTC),
        slug="iris",
        version=1,
        status=200,
        error_code="",
        rows=1,
        latency_ms=1.0,
        model_ms=0.5,
        request_id=request_id,
    )


def committed(prefix: str) -> int:
    return RequestLog.objects.filter(request_id__startswith=prefix).count()


def eventually(count: Callable[[], int], expected: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while (found := count()) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


@pytest.fixture
def writer() -> Iterator[RequestLogWriter]:
    """A writer of its own: its window thread writes on its own connection,
    which sees only committed data (hence transactional_db below)."""
    own = RequestLogWriter()
    yield own
    own.close()


@pytest.mark.django_db(transaction=True)
def test_rows_wait_for_their_window_then_commit_without_another_request(
    writer, settings
):
    settings.MODELHUB_LOG_COMMIT_MS = 50
    writer.submit(entry("idle-0"))
    writer.submit(entry("idle-1"))

    assert eventually(lambda: committed("idle-"), 2) == 2
    assert writer.pending() == 0


@pytest.mark.django_db(transaction=True)
def test_a_full_window_commits_before_its_time_is_up(writer, settings):
    settings.MODELHUB_LOG_COMMIT_MS = int(A_MINUTE_MS)
    settings.MODELHUB_LOG_COMMIT_ROWS = 3
    writer.submit(entry("full-0"))
    writer.submit(entry("full-1"))
    time.sleep(0.2)
    assert committed("full-") == 0, "two rows of three wait for the window"

    writer.submit(entry("full-2"))

    assert eventually(lambda: committed("full-"), 3) == 3


@pytest.mark.django_db(transaction=True)
def test_close_commits_the_open_window(writer, settings):
    settings.MODELHUB_LOG_COMMIT_MS = int(A_MINUTE_MS)
    for i in range(5):
        writer.submit(entry(f"close-{i}"))
    assert committed("close-") == 0

    writer.close()

    assert committed("close-") == 5


@pytest.mark.django_db(transaction=True)
def test_a_zero_window_commits_each_row_in_the_requests_own_thread(writer, settings):
    settings.MODELHUB_LOG_COMMIT_MS = 0
    writer.submit(entry("strict-0"))
    assert committed("strict-") == 1


@pytest.mark.django_db(transaction=True)
def test_sync_mode_commits_before_the_response_whatever_the_window(writer, settings):
    settings.MODELHUB_LOG_COMMIT_MS = int(A_MINUTE_MS)
    writer.submit(entry("sync-0"), now=True)
    assert committed("sync-") == 1


# Under real gunicorn -------------------------------------------------------


def one_by_one(server: Server, prefix: str, count: int) -> None:
    for i in range(count):
        response = server.post(
            "/api/predict/iris/",
            {"data": IRIS_ROW},
            headers={"X-Request-ID": f"{prefix}-{i}"},
        )
        assert response.status == 200, response.text


def rows(install: Install, prefix: str) -> int:
    return sum(map(len, logged_rows(install, prefix).values()))


def start(
    install: Install, servers: list[Server], *, workers: int = 1, **env: str
) -> Server:
    env = {
        "MODELHUB_LOG_COMMIT_MS": A_MINUTE_MS,
        "MODELHUB_LOG_COMMIT_ROWS": "1000",
        **env,
    }
    server = start_gunicorn({**install.env, **env}, install.run_dir, workers=workers)
    servers.append(server)
    return server


def test_sigkill_loses_the_open_window_and_nothing_before_it(install, gunicorn_servers):
    server = start(install, gunicorn_servers)
    one_by_one(server, "kill", 5)
    assert server.get("/readyz").status == 200  # readiness commits what waits
    assert rows(install, "kill") == 5
    one_by_one(server, "kill-open", 3)  # the open window: a minute long
    time.sleep(0.5)
    assert rows(install, "kill") == 5

    (worker,) = server.booted_workers()
    os.kill(int(worker), signal.SIGKILL)
    server.wait_until_booted(2)
    one_by_one(server, "after", 1)  # the new worker serves

    # rows("kill") counts "kill-open-*" too: exactly the open window is lost.
    assert rows(install, "kill") == 5


def test_sigterm_commits_the_open_window(install, gunicorn_servers):
    server = start(install, gunicorn_servers, workers=2)
    one_by_one(server, "term", 15)
    assert rows(install, "term") == 0

    assert server.stop() == 0, server.log_text()

    assert rows(install, "term") == 15


@pytest.mark.slow
def test_reload_by_sighup_commits_the_open_window(install, gunicorn_servers):
    server = start(install, gunicorn_servers, workers=2)
    one_by_one(server, "hup", 15)
    assert rows(install, "hup") == 0

    server.proc.send_signal(signal.SIGHUP)
    server.wait_until_booted(4)

    assert wait_for_rows(install, "hup", 15) and rows(install, "hup") == 15


@pytest.mark.slow
def test_worker_recycling_commits_the_open_window(install, gunicorn_servers):
    server = start(install, gunicorn_servers, MODELHUB_MAX_REQUESTS="10")
    one_by_one(server, "recycle", 25)

    # Each life ended after ten requests (a /healthz among them) and committed
    # its rows, though its window was a minute: only the last life's wait.
    assert len(server.booted_workers()) >= 3
    assert wait_for_rows(install, "recycle", 15) and rows(install, "recycle") >= 15
    assert server.stop() == 0
    assert rows(install, "recycle") == 25


@pytest.mark.slow
def test_a_worker_aborted_by_gunicorns_timeout_commits_its_window(
    slow_model_install,  # noqa: F811
    gunicorn_servers,
):
    install = slow_model_install
    server = start(
        install,
        gunicorn_servers,
        MODELHUB_PREDICT_TIMEOUT="0",  # no limit of ModelHub's own
        MODELHUB_WORKER_TIMEOUT="2",
    )
    one_by_one(server, "before-abort", 5)
    assert rows(install, "before-abort") == 0

    # The client's answer, if any, is not the point here: the rows are.
    with contextlib.suppress(OSError, http.client.HTTPException):
        server.post("/api/predict/sleepy/", {"data": [[20]]}, timeout=30)

    server.wait_for(lambda: "WORKER TIMEOUT" in server.log_text(), "the abort")
    assert wait_for_rows(install, "before-abort", 5)
    assert rows(install, "before-abort") == 5


def test_a_reminder_to_run_later_never_holds_a_rows_window_open():
    """Drift counts owed ask the window to run again within a second
    (``soon``); a row arriving meanwhile is still committed in its own
    window, not at the reminder."""
    import threading

    from monitoring.commit_window import CommitWindow

    ran = threading.Event()

    def commit() -> bool:
        ran.set()
        return False

    window = CommitWindow(commit)
    try:
        window.row_added(1, 0.0, 256)  # starts the thread: runs at once
        assert ran.wait(5)
        ran.clear()
        window.soon(30.0)
        window.row_added(1, 0.01, 256)
        assert ran.wait(5), "the row waited for the 30 s reminder"
    finally:
        window.close()
