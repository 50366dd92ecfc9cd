"""The request log and the metrics under real gunicorn: one row per request.

Every scenario runs as in production: gunicorn with several workers (sync or
gthread) on a private copy of a registry (SQLite, or PostgreSQL on the
PostgreSQL run) whose models were registered by ``manage.py loadmodel``.
The checks read the database and /metrics, never the process that answered.
All load is bounded in count and in time.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from collections import Counter
from collections.abc import Callable

import pytest

from monitoring import writer_lock
from monitoring.metrics import UNRESOLVED
from tests.servers import (
    IRIS_ROW,
    Install,
    Outcome,
    Server,
    Traffic,
    logged_rows,
    metric_samples,
    start_gunicorn,
)

WORKERS = 2
# Rows are written when the response is closed, just after the client has its
# bytes: give the last ones a moment to land.
ROWS_TIMEOUT = 10.0

# Request kinds by index: 6 in 8 valid, one a 400, one for an unknown slug.
VALID, BAD, UNKNOWN = "valid", "bad", "unknown"
EXPECTED_STATUS = {VALID: 200, BAD: 400, UNKNOWN: 404}
_BODIES = {
    VALID: ("/api/predict/iris/", {"data": IRIS_ROW}),
    BAD: ("/api/predict/iris/", {"data": {"sepal length (cm)": 5.0}}),
    UNKNOWN: ("/api/predict/ghost/", {"data": IRIS_ROW}),
}


def kind_of(index: int) -> str:
    return {6: BAD, 7: UNKNOWN}.get(index % 8, VALID)


def mixed_request(index: int) -> tuple[str, dict]:
    return _BODIES[kind_of(index)]


@pytest.fixture
def start(install: Install, gunicorn_servers: list[Server]) -> Callable[..., Server]:
    """Starts gunicorn on the test's install; every server is stopped after."""

    def start_server(
        *, workers: int = WORKERS, own_metrics_dir: bool = True, **overrides: str
    ) -> Server:
        run = install.run_dir / f"server{len(gunicorn_servers)}"
        (run / "tmp").mkdir(parents=True)
        # Without a metrics directory of its own, gunicorn.conf.py makes one
        # in TMPDIR: the run's tmp/.
        env = {**install.env, "TMPDIR": str(run / "tmp"), **overrides}
        server = start_gunicorn(
            env, run, workers=workers, own_metrics_dir=own_metrics_dir
        )
        server.extra["install"] = install
        server.extra["tmp"] = run / "tmp"
        gunicorn_servers.append(server)
        return server

    return start_server


def mixed_traffic(server: Server, prefix: str, count: int) -> Traffic:
    return Traffic(server, prefix, count, request_for=mixed_request)


def send_all(server: Server, prefix: str, count: int) -> list[Outcome]:
    return mixed_traffic(server, prefix, count).finish()


def assert_all_answered(outcomes: list[Outcome], server: Server) -> None:
    failed = [
        o
        for o in outcomes
        if o.status != EXPECTED_STATUS[kind_of(o.index)] or o.echoed_id != o.request_id
    ]
    assert not failed, (
        f"{len(failed)} of {len(outcomes)} requests failed, e.g. {failed[:5]}\n"
        + server.log_text()[-3000:]
    )


def logged_statuses(server: Server, prefix: str) -> dict[str, list[int]]:
    """Request id -> statuses of its rows, for ids starting with prefix."""
    rows = logged_rows(server.extra["install"], prefix)
    return {i: [status for status, _ in found] for i, found in rows.items()}


def assert_one_row_per_request(
    server: Server, prefix: str, outcomes: list[Outcome]
) -> None:
    """Each request id has exactly one row, with the status the client got.

    Rows are written as responses are closed, just after the client has its
    bytes, so the last few may take a moment.
    """
    expected = {o.request_id: [o.status] for o in outcomes}
    deadline = time.monotonic() + ROWS_TIMEOUT
    logged = logged_statuses(server, prefix)
    while logged != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        logged = logged_statuses(server, prefix)
    missing = sorted(set(expected) - set(logged))
    extra = sorted(set(logged) - set(expected))
    wrong = {i: (logged[i], s) for i, s in expected.items() if logged.get(i, s) != s}
    assert not missing, f"{len(missing)} request(s) without a row: {missing[:10]}"
    assert not extra, f"rows for requests never sent: {extra[:10]}"
    assert not wrong, f"rows (got, expected): {dict(list(wrong.items())[:10])}"


def assert_clean_log(server: Server) -> None:
    log = server.log_text()
    for sign in ("database is locked", "request log:", "Traceback", "[ERROR]"):
        assert sign not in log, log[-3000:]


def stat_totals(server: Server) -> dict[bool, int]:
    """Rollup counts (RequestStat) by error flag; every resolution must agree.

    Read as the dashboard reads them: after folding the rows not yet folded.
    """
    install = server.extra["install"]
    install.shell("from monitoring import rollup\nrollup.refresh()")
    rows = install.query(
        'SELECT resolution, error, SUM("count") FROM api_requeststat '
        "GROUP BY resolution, error"
    )
    by_resolution: dict[str, dict[bool, int]] = {}
    for resolution, error, total in rows:
        by_resolution.setdefault(resolution, {})[bool(error)] = int(total)
    assert sorted(by_resolution) == ["d", "h", "m"]
    assert by_resolution["m"] == by_resolution["h"] == by_resolution["d"]
    return by_resolution["m"]


def assert_metrics_count(server: Server, outcomes: list[Outcome]) -> None:
    """/metrics counts every request once, whichever worker (alive or not) took it.

    Counters of retired workers stay in their files; the live-sum gauges drop
    them once the master has reaped them, which may lag the last response.
    """
    sent = Counter(
        (UNRESOLVED if kind_of(o.index) == UNKNOWN else "iris", str(o.status))
        for o in outcomes
    )
    deadline = time.monotonic() + ROWS_TIMEOUT
    while True:
        loaded = [v for _, v in metric_samples(server, "modelhub_models_loaded")]
        if loaded == [WORKERS] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert loaded == [WORKERS], "one iris per live worker"
    assert [v for _, v in metric_samples(server, "modelhub_log_rows_buffered")] == [0]

    counted: Counter[tuple[str, str]] = Counter()
    for labels, value in metric_samples(server, "modelhub_predictions_total"):
        counted[labels["model"], labels["status"]] += int(value)
    assert counted == sent
    latency = metric_samples(server, "modelhub_request_latency_seconds_count")
    assert sum(v for _, v in latency) == len(outcomes)
    rows = sum(v for _, v in metric_samples(server, "modelhub_prediction_rows_total"))
    assert rows == sent["iris", "200"]
    # The generic django_http_* metrics leave predictions to modelhub_*.
    by_method = metric_samples(server, "django_http_requests_total_by_method_total")
    posts = [v for labels, v in by_method if labels["method"] == "POST"]
    assert sum(posts) == 0


@pytest.mark.slow
def test_log_has_one_row_per_request_under_concurrent_threaded_workers(start):
    server = start(MODELHUB_THREADS="2")
    outcomes = send_all(server, "conc", 400)

    assert_all_answered(outcomes, server)
    assert Counter(o.status for o in outcomes) == {200: 300, 400: 50, 404: 50}
    assert_one_row_per_request(server, "conc", outcomes)
    assert stat_totals(server) == {False: 300, True: 100}
    assert len(server.pids_that_served("conc-")) == WORKERS
    assert_clean_log(server)


@pytest.mark.slow
def test_sqlite_log_rows_wait_their_turn_on_the_writer_lock(start):
    """The test holds the lock that the workers' log writes queue on."""
    server = start()
    database = server.extra["install"].env["DATABASE_URL"]
    if not database.startswith("sqlite:"):
        pytest.skip("the writers' lock is for SQLite files")
    lock_file = database.removeprefix("sqlite:///") + writer_lock.SUFFIX
    lock = os.open(lock_file, os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        outcomes = send_all(server, "turn", 1)
        assert [o.status for o in outcomes] == [200]
        time.sleep(1.0)  # time enough for the row to land, were it not waiting
        assert logged_statuses(server, "turn") == {}
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    assert_one_row_per_request(server, "turn", outcomes)
    assert_clean_log(server)


@pytest.mark.slow
def test_reload_by_sighup_loses_no_request_and_no_row(start):
    server = start(MODELHUB_THREADS="2")
    traffic = mixed_traffic(server, "hup", 400)
    for reload, after in enumerate((100, 250), start=1):
        traffic.wait_until(after)
        server.proc.send_signal(signal.SIGHUP)
        # A reload boots a new set of workers, then retires the old set.
        server.wait_until_booted(WORKERS * (reload + 1))
    outcomes = traffic.finish()

    assert_all_answered(outcomes, server)
    assert_one_row_per_request(server, "hup", outcomes)
    assert len(set(server.booted_workers())) == WORKERS * 3
    assert_metrics_count(server, outcomes)
    assert_clean_log(server)


@pytest.mark.slow
def test_worker_recycling_loses_no_request_and_no_row(start):
    server = start(
        MODELHUB_THREADS="2",
        MODELHUB_MAX_REQUESTS="50",
        MODELHUB_MAX_REQUESTS_JITTER="10",
    )
    outcomes = send_all(server, "recycle", 200)

    assert_all_answered(outcomes, server)
    assert_one_row_per_request(server, "recycle", outcomes)
    # At most 60 requests per worker life: 200 requests took at least 4 lives.
    assert len(set(server.booted_workers())) >= 4
    assert "Autorestarting worker" in server.log_text()
    assert_metrics_count(server, outcomes)
    assert_clean_log(server)


def test_sigterm_keeps_the_row_of_every_answered_request(start):
    server = start(MODELHUB_THREADS="2")
    traffic = mixed_traffic(server, "term", 400)
    traffic.wait_until(100)
    assert server.stop() == 0, server.log_text()
    outcomes = traffic.finish()

    answered = [o for o in outcomes if o.status is not None]
    assert len(answered) >= 100
    assert_all_answered(answered, server)
    logged = logged_statuses(server, "term")
    missing = [o.request_id for o in answered if o.request_id not in logged]
    assert not missing, f"answered but not logged: {missing[:10]}"
    for o in answered:
        assert logged[o.request_id] == [o.status], o
    # A request may be logged though its response never reached the client.
    assert all(len(statuses) == 1 for statuses in logged.values())
    assert len(logged) >= len(answered)
    assert_clean_log(server)


def test_prometheus_metrics_sum_every_workers_requests(start):
    server = start()
    outcomes: list[Outcome] = []
    # Which worker accepts a connection is up to the kernel: send batches until
    # both have served some (at least 60 requests, at most 200).
    while len(outcomes) < 60 or len(server.pids_that_served("metrics-")) < WORKERS:
        assert len(outcomes) < 200, f"a worker took no request:\n{server.log_text()}"
        outcomes += send_all(server, f"metrics-{len(outcomes) // 20}", 20)
    assert_all_answered(outcomes, server)

    assert_metrics_count(server, outcomes)
    assert_one_row_per_request(server, "metrics", outcomes)
    assert_clean_log(server)


def test_directories_made_by_gunicorn_conf_are_removed_after_a_reload(start):
    server = start(workers=1, own_metrics_dir=False)
    (made,) = server.extra["tmp"].glob("modelhub-prometheus-*")
    (batch,) = server.extra["tmp"].glob("modelhub-batch-*")
    assert send_all(server, "own-dir", 8)
    assert any(made.glob("counter_*.db"))
    assert (batch / "batch.sock").is_socket()
    server.proc.send_signal(signal.SIGHUP)  # gunicorn runs its config file again
    server.wait_until_booted(2)

    assert server.stop() == 0
    assert not made.exists()
    assert not batch.exists()
