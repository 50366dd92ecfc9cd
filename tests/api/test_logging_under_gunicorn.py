"""The request log and the metrics under real gunicorn: one row per request.

Every scenario runs as in production: gunicorn with several workers (sync or
gthread), one SQLite file, the model registered by ``manage.py loadmodel``.
The checks read the database file and /metrics, never the process that
answered. All load is bounded in count and in time.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import joblib
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.test_multiprocess import ROW, manage
from tests.test_serving import GUNICORN, free_port
from tests.test_settings import PROJECT_ROOT, clean_env

WORKERS = 2
CLIENTS = 8
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 15.0
# Rows are written when the response is closed, just after the client has its
# bytes: give the last ones a moment to land.
ROWS_TIMEOUT = 10.0
TRAFFIC_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0

# Request kinds by index: 6 in 8 valid, one a 400, one for an unknown slug.
VALID, BAD, UNKNOWN = "valid", "bad", "unknown"
EXPECTED_STATUS = {VALID: 200, BAD: 400, UNKNOWN: 404}
_BODIES = {
    VALID: ("/api/predict/iris/", {"data": ROW}),
    BAD: ("/api/predict/iris/", {"data": {"sepal length (cm)": 5.0}}),
    UNKNOWN: ("/api/predict/ghost/", {"data": ROW}),
}


def kind_of(index: int) -> str:
    return {6: BAD, 7: UNKNOWN}.get(index % 8, VALID)


@dataclass(frozen=True)
class Outcome:
    request_id: str
    kind: str
    status: int | None  # None: no response (connection refused, reset, timeout)
    echoed_id: str | None = None
    error: str = ""


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log: Path
    db: Path
    tmp: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def booted_workers(self) -> list[str]:
        return re.findall(r"Booting worker with pid: (\d+)", self.log_text())

    def pids_that_served(self, prefix: str) -> set[str]:
        pattern = rf"^ACCESS <(\d+)> {re.escape(prefix)}\S* \d+$"
        return set(re.findall(pattern, self.log_text(), flags=re.MULTILINE))

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def send(self, request_id: str, kind: str) -> Outcome:
        """One POST over its own connection; failures are returned, not raised."""
        path, body = _BODIES[kind]
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=REQUEST_TIMEOUT
        )
        try:
            conn.request(
                "POST",
                path,
                body=json.dumps(body).encode(),
                headers={
                    "Content-Type": "application/json",
                    "X-Request-ID": request_id,
                    "Connection": "close",
                },
            )
            response = conn.getresponse()
            response.read()
            return Outcome(
                request_id, kind, response.status, response.getheader("X-Request-ID")
            )
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(request_id, kind, None, error=repr(exc))
        finally:
            conn.close()


@dataclass
class Install:
    """A migrated database with iris v1 active, copied afresh for each server."""

    db: Path
    media: Path


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Install:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    tmp = tmp_path_factory.mktemp("logging-install")
    data = load_iris(as_frame=True)
    labels = data.target.map(dict(enumerate(data.target_names)))
    model = LogisticRegression(max_iter=1000).fit(data.data, labels)
    joblib.dump(model, tmp / "iris.joblib")

    env = clean_env(tmp, MODELHUB_LOG_LEVEL="WARNING")
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    loaded = manage(env, "loadmodel", str(tmp / "iris.joblib"), "--slug", "iris")
    assert loaded.strip() == "iris v1"
    return Install(db=tmp / "db.sqlite3", media=tmp / "media")


def _copy_install(install: Install, tmp: Path) -> None:
    source = sqlite3.connect(install.db)
    target = sqlite3.connect(tmp / "db.sqlite3")
    try:
        source.backup(target)  # consistent even if a WAL file is left over
    finally:
        source.close()
        target.close()
    shutil.copytree(install.media, tmp / "media")


@pytest.fixture
def start(install: Install, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts gunicorn on a copy of the install; every server is stopped after."""
    started: list[Server] = []

    def start_server(
        *, workers: int = WORKERS, own_metrics_dir: bool = True, **overrides: str
    ) -> Server:
        run = tmp_path / f"server{len(started)}"
        run.mkdir()
        (run / "static").mkdir()
        (run / "tmp").mkdir()
        _copy_install(install, run)
        port = free_port()
        env = clean_env(
            run,
            MODELHUB_BIND=f"127.0.0.1:{port}",
            MODELHUB_WORKERS=str(workers),
            MODELHUB_GRACEFUL_TIMEOUT="10",
            MODELHUB_ACCESS_LOG="-",
            MODELHUB_LOG_LEVEL="WARNING",
            **overrides,
        )
        # Metric files in this run's directory, or in the one gunicorn.conf.py
        # makes when none is given, which lands in the run's tmp/.
        env["TMPDIR"] = str(run / "tmp")
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if own_metrics_dir:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(run / "prometheus")
        log = run / "gunicorn.log"
        with log.open("wb") as log_file:
            proc = subprocess.Popen(
                [
                    str(GUNICORN),
                    "--config",
                    "modelhub/gunicorn.conf.py",
                    # pid and request id per line: which worker served what.
                    "--access-logformat",
                    "ACCESS %(p)s %({x-request-id}i)s %(s)s",
                    "--no-control-socket",
                ],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        server = Server(proc, port, log, run / "db.sqlite3", run / "tmp")
        started.append(server)
        _wait_until_all_workers_serve(server, workers)
        return server

    yield start_server
    for server in started:
        if server.proc.poll() is None:
            server.proc.terminate()
            try:
                server.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait(timeout=5)


def _wait_until_all_workers_serve(server: Server, workers: int) -> None:
    """/healthz answers and every worker has booted (preload runs before accept)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"gunicorn exited early:\n{server.log_text()}")
        try:
            if server.get("/healthz")[0] == 200 and (
                len(server.booted_workers()) >= workers
            ):
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    pytest.fail(f"gunicorn not serving after {START_TIMEOUT}s:\n{server.log_text()}")


def stop(server: Server) -> int:
    """SIGTERM, gunicorn's graceful shutdown; returns the master's exit code."""
    server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(timeout=5)
        pytest.fail(f"gunicorn still running {STOP_TIMEOUT}s after SIGTERM")


class Traffic:
    """CLIENTS threads sending ``count`` requests in the background."""

    def __init__(self, server: Server, prefix: str, count: int) -> None:
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=CLIENTS)
        for i in range(count):
            self._pool.submit(self._one, server, f"{prefix}-{i}", kind_of(i))
        self._count = count

    def _one(self, server: Server, request_id: str, kind: str) -> None:
        outcome = server.send(request_id, kind)
        with self._lock:
            self.outcomes.append(outcome)

    def done(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def wait_until(self, count: int) -> None:
        deadline = time.monotonic() + TRAFFIC_TIMEOUT
        while self.done() < count:
            if time.monotonic() > deadline:
                self._pool.shutdown(cancel_futures=True)
                pytest.fail(f"{self.done()} of {count} responses in {TRAFFIC_TIMEOUT}s")
            time.sleep(0.02)

    def finish(self) -> list[Outcome]:
        self.wait_until(self._count)
        self._pool.shutdown()
        return list(self.outcomes)


def send_all(server: Server, prefix: str, count: int) -> list[Outcome]:
    return Traffic(server, prefix, count).finish()


def assert_all_answered(outcomes: list[Outcome], server: Server) -> None:
    failed = [
        o
        for o in outcomes
        if o.status != EXPECTED_STATUS[o.kind] or o.echoed_id != o.request_id
    ]
    assert not failed, (
        f"{len(failed)} of {len(outcomes)} requests failed, e.g. {failed[:5]}\n"
        + server.log_text()[-3000:]
    )


def logged_statuses(db: Path, prefix: str) -> dict[str, list[int]]:
    """Request id -> statuses of its rows, for ids starting with prefix."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        rows = conn.execute(
            "SELECT request_id, status FROM api_requestlog WHERE request_id LIKE ?",
            (prefix + "-%",),
        ).fetchall()
    finally:
        conn.close()
    logged: dict[str, list[int]] = {}
    for request_id, status in rows:
        logged.setdefault(request_id, []).append(status)
    return logged


def assert_one_row_per_request(db: Path, prefix: str, outcomes: list[Outcome]) -> None:
    """Each request id has exactly one row, with the status the client got.

    Rows are written as responses are closed, just after the client has its
    bytes, so the last few may take a moment.
    """
    expected = {o.request_id: [o.status] for o in outcomes}
    deadline = time.monotonic() + ROWS_TIMEOUT
    logged = logged_statuses(db, prefix)
    while logged != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        logged = logged_statuses(db, prefix)
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


def stat_totals(db: Path) -> dict[bool, int]:
    """Rollup counts (RequestStat) by error flag; every resolution must agree."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        rows = conn.execute(
            'SELECT resolution, error, SUM("count") FROM api_requeststat '
            "GROUP BY resolution, error"
        ).fetchall()
    finally:
        conn.close()
    by_resolution: dict[str, dict[bool, int]] = {}
    for resolution, error, total in rows:
        by_resolution.setdefault(resolution, {})[bool(error)] = total
    assert sorted(by_resolution) == ["d", "h", "m"]
    assert by_resolution["m"] == by_resolution["h"] == by_resolution["d"]
    return by_resolution["m"]


def scrape(server: Server) -> str:
    status, body = server.get("/metrics")
    assert status == 200
    return body.decode()


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def assert_metrics_count(server: Server, outcomes: list[Outcome]) -> None:
    """/metrics counts every request once, whichever worker (alive or not) took it.

    Counters of retired workers stay in their files; the live-sum gauges drop
    them once the master has reaped them, which may lag the last response.
    """
    sent = Counter(
        ("ghost" if o.kind == UNKNOWN else "iris", str(o.status)) for o in outcomes
    )
    deadline = time.monotonic() + ROWS_TIMEOUT
    while True:
        text = scrape(server)
        loaded = [v for _, v in samples(text, "modelhub_models_loaded")]
        if loaded == [WORKERS] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert loaded == [WORKERS], "one iris per live worker"
    assert [v for _, v in samples(text, "modelhub_log_rows_buffered")] == [0]

    counted: Counter[tuple[str, str]] = Counter()
    for labels, value in samples(text, "modelhub_predictions_total"):
        counted[labels["model"], labels["status"]] += int(value)
    assert counted == sent
    latency = samples(text, "modelhub_request_latency_seconds_count")
    assert sum(v for _, v in latency) == len(outcomes)
    rows = sum(v for _, v in samples(text, "modelhub_prediction_rows_total"))
    assert rows == sent["iris", "200"]
    posts = [
        v
        for labels, v in samples(text, "django_http_requests_total_by_method_total")
        if labels["method"] == "POST"
    ]
    assert posts == [len(outcomes)]
    assert samples(text, "django_http_responses_total_by_status_total")


@pytest.mark.slow
def test_log_has_one_row_per_request_under_concurrent_threaded_workers(start):
    server = start(MODELHUB_THREADS="2")
    outcomes = send_all(server, "conc", 400)

    assert_all_answered(outcomes, server)
    assert Counter(o.status for o in outcomes) == {200: 300, 400: 50, 404: 50}
    assert_one_row_per_request(server.db, "conc", outcomes)
    assert stat_totals(server.db) == {False: 300, True: 100}
    assert len(server.pids_that_served("conc-")) == WORKERS
    assert_clean_log(server)


@pytest.mark.slow
def test_reload_by_sighup_loses_no_request_and_no_row(start):
    server = start(MODELHUB_THREADS="2")
    traffic = Traffic(server, "hup", 400)
    for reload, after in enumerate((100, 250), start=1):
        traffic.wait_until(after)
        server.proc.send_signal(signal.SIGHUP)
        # A reload boots a new set of workers, then retires the old set.
        deadline = time.monotonic() + START_TIMEOUT
        while len(server.booted_workers()) < WORKERS * (reload + 1):
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.05)
    outcomes = traffic.finish()

    assert_all_answered(outcomes, server)
    assert_one_row_per_request(server.db, "hup", outcomes)
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
    assert_one_row_per_request(server.db, "recycle", outcomes)
    # At most 60 requests per worker life: 200 requests took at least 4 lives.
    assert len(set(server.booted_workers())) >= 4
    assert "Autorestarting worker" in server.log_text()
    assert_metrics_count(server, outcomes)
    assert_clean_log(server)


def test_sigterm_keeps_the_row_of_every_answered_request(start):
    server = start(MODELHUB_THREADS="2")
    traffic = Traffic(server, "term", 400)
    traffic.wait_until(100)
    assert stop(server) == 0, server.log_text()
    outcomes = traffic.finish()

    answered = [o for o in outcomes if o.status is not None]
    assert len(answered) >= 100
    assert_all_answered(answered, server)
    logged = logged_statuses(server.db, "term")
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
    assert_one_row_per_request(server.db, "metrics", outcomes)
    assert_clean_log(server)


def test_metrics_directory_made_by_gunicorn_conf_is_removed_after_a_reload(start):
    server = start(workers=1, own_metrics_dir=False)
    (made,) = server.tmp.glob("modelhub-prometheus-*")
    assert send_all(server, "own-dir", 8)
    assert any(made.glob("counter_*.db"))
    server.proc.send_signal(signal.SIGHUP)  # gunicorn runs its config file again
    deadline = time.monotonic() + START_TIMEOUT
    while len(server.booted_workers()) < 2:
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.05)

    assert stop(server) == 0
    assert not made.exists()
