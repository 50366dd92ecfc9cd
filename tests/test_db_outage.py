"""The database going away under real gunicorn, and coming back.

PostgreSQL is cut by a TCP proxy between gunicorn and the server; SQLite by
making its files immutable (``chattr +i``). Warm workers must keep serving
the version they last resolved, every request must end up with exactly one
request-log row once the database is back, /readyz must say "not ready"
during the outage and "ready" after it, and nothing may need a restart.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import (
    IRIS_ROW,
    PROJECT_ROOT,
    Install,
    Server,
    copy_install,
    database_name,
    free_port,
    make_install,
    postgres_available,
    postgres_database,
    report_gate,
    start_gunicorn,
    suite_uses_postgres,
)

POSTGRES = ("127.0.0.1", 5432)
CLIENTS = 8
RECOVERY_TIMEOUT = 30.0
ROWS_TIMEOUT = 15.0

needs_postgres = pytest.mark.skipif(
    not postgres_available(),
    reason="no PostgreSQL server answers on 127.0.0.1:5432 (user postgres)",
)


class TcpProxy:
    """127.0.0.1:<port> -> PostgreSQL, with a switch that cuts every connection.

    ``cut()`` closes the listening socket (new connects are refused at once)
    and every open connection pair; ``restore()`` listens on the same port.
    """

    def __init__(self, target: tuple[str, int] = POSTGRES) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._muted: set[socket.socket] = set()
        # Once a client sends this, the server's replies to it are swallowed:
        # the statement runs (and commits) but its acknowledgement never comes.
        self.mute_replies_after: bytes | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            _shut(listener)  # wakes the accept() blocked in the other thread
        with self._lock:
            sockets, self._sockets = self._sockets, set()
            self._muted.clear()
        for sock in sockets:
            _shut(sock)

    def close(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                _shut(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _shut(client)
                    _shut(upstream)
                    continue
                self._sockets |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(src, dst, src is client), daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, request: bool) -> None:
        try:
            while data := src.recv(65536):
                marker = self.mute_replies_after
                if request and marker and marker in data:
                    self._muted.add(src)
                if not request and dst in self._muted:
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets -= {src, dst}
            _shut(src)
            _shut(dst)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@dataclass(frozen=True)
class Outcome:
    request_id: str
    status: int | None  # None: no response at all
    version: int | None = None
    predictions: Any = None
    code: str | None = None
    content_type: str = ""
    error: str = ""


def predict(server: Server, request_id: str, slug: str = "iris") -> Outcome:
    """One prediction for IRIS_ROW; connection failures are returned, not raised."""
    try:
        response = server.post(
            f"/api/predict/{slug}/",
            {"data": IRIS_ROW},
            headers={"X-Request-ID": request_id},
        )
    except OSError as exc:
        return Outcome(request_id, None, error=repr(exc))
    content_type = response.headers.get("Content-Type", "")
    body = response.json() if content_type.startswith("application/json") else {}
    return Outcome(
        request_id,
        response.status,
        body.get("version"),
        body.get("predictions"),
        body.get("code"),
        content_type,
    )


def predict_many(server: Server, prefix: str, count: int) -> list[Outcome]:
    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(lambda i: predict(server, f"{prefix}-{i}"), range(count)))


def warm_every_worker(server: Server, prefix: str = "warm") -> list[Outcome]:
    """Predictions until each worker has served iris (at most 200)."""
    outcomes: list[Outcome] = []
    while len(server.pids_that_served(f"{prefix}-")) < server.workers:
        assert len(outcomes) < 200, f"a worker took no request:\n{server.log_text()}"
        outcomes += predict_many(server, f"{prefix}-{len(outcomes) // 10}", 10)
    return outcomes


def assert_served(outcomes: list[Outcome], version: int, prediction: str) -> None:
    wrong = [
        o
        for o in outcomes
        if (o.status, o.version, o.predictions) != (200, version, [prediction])
    ]
    assert not wrong, f"{len(wrong)} of {len(outcomes)} wrong, e.g. {wrong[:3]}"


def wait_until(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not seen after {timeout}s"
        time.sleep(0.1)


def readyz(server: Server) -> tuple[int, dict[str, Any]]:
    response = server.get("/readyz")
    assert response.headers["Content-Type"].startswith("application/json")
    return response.status, response.json()


def wait_until_ready(server: Server, consecutive: int = 6) -> None:
    """/readyz answers 200 several times in a row (each poll hits one worker)."""
    streak = 0

    def ready() -> bool:
        nonlocal streak
        streak = streak + 1 if readyz(server)[0] == 200 else 0
        return streak >= consecutive

    wait_until(ready, f"{consecutive} consecutive /readyz 200", RECOVERY_TIMEOUT)


def metric(server: Server, name: str) -> float:
    response = server.get("/metrics")
    assert response.status == 200
    values = [
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == name
    ]
    return sum(values)


def assert_clean_log(server: Server, booted: list[str]) -> None:
    log = server.log_text()
    assert server.booted_workers() == booted, "a worker was restarted"
    for sign in ("Traceback", "database is locked", "[ERROR]", "WORKER TIMEOUT"):
        assert sign not in log, log[-4000:]


# --- PostgreSQL ---------------------------------------------------------------


@dataclass
class LogRow:
    status: int
    version: int | None
    error_code: str


def postgres_rows(install: Install, query: str) -> list[tuple]:
    """Rows straight from the server, not through the proxy."""
    import psycopg

    name = database_name(install.env["DATABASE_URL"])
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}") as conn:
        return conn.execute(query).fetchall()


def postgres_log(install: Install) -> dict[str, list[LogRow]]:
    logged: dict[str, list[LogRow]] = {}
    for request_id, status, version, code in postgres_rows(
        install, "SELECT request_id, status, version, error_code FROM api_requestlog"
    ):
        logged.setdefault(request_id, []).append(LogRow(status, version, code))
    return logged


def assert_one_row_per_request(
    logged: dict[str, list[LogRow]], outcomes: list[Outcome]
) -> None:
    twice = {rid: rows for rid, rows in logged.items() if len(rows) > 1}
    assert not twice, f"logged more than once: {twice}"
    assert sorted(logged) == sorted(o.request_id for o in outcomes)
    for o in outcomes:
        (row,) = logged[o.request_id]
        assert (row.status, row.version) == (o.status, o.version), o


@pytest.fixture(scope="module")
def postgres_source(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Install]:
    """The module's registry in PostgreSQL, whatever backend the suite runs on."""
    if not postgres_available():
        pytest.skip("no PostgreSQL server answers on 127.0.0.1:5432")
    if suite_uses_postgres():
        yield request.getfixturevalue("iris_install")
        return
    with postgres_database() as url:
        yield make_install(tmp_path_factory.mktemp("postgres-install"), url)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy()
    yield proxy
    proxy.close()


@pytest.fixture
def proxied_install(
    postgres_source: Install, proxy: TcpProxy, tmp_path: Path
) -> Iterator[Install]:
    """A private copy of the registry whose DATABASE_URL goes through the proxy."""
    with copy_install(
        postgres_source, tmp_path / "install", db_port=proxy.port
    ) as copied:
        yield copied


def manage_exit_code(env: dict[str, str], *args: str) -> int:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    ).returncode


@needs_postgres
@pytest.mark.slow
def test_postgres_cut_keeps_warm_workers_serving_and_logs_every_request_after_recovery(
    proxied_install: Install, proxy: TcpProxy, tmp_path: Path, gunicorn_servers
) -> None:
    install = proxied_install
    v1, v2 = install.predictions[1], install.predictions[2]
    server = start_gunicorn(
        {**install.env, "MODELHUB_THREADS": "2"}, tmp_path, workers=2
    )
    gunicorn_servers.append(server)
    warm = warm_every_worker(server)
    assert_served(warm, 1, v1)
    booted = server.booted_workers()

    proxy.cut()
    ghost = predict(server, "ghost-0", slug="ghost")
    outage = predict_many(server, "outage", 200)
    not_ready, body = readyz(server)
    alive = server.get("/healthz")
    activation_exit = manage_exit_code(
        install.env,
        "shell",
        "-c",
        "from registry import actions\nfrom registry.models import ModelVersion\n"
        "actions.activate(ModelVersion.objects.get(model__slug='iris', number=2))",
    )

    assert_served(outage, 1, v1)
    assert len(server.pids_that_served("outage-")) == 2
    assert (ghost.status, ghost.code) == (503, "registry_unavailable"), ghost
    assert ghost.content_type.startswith("application/json")
    assert not_ready == 503
    assert body["status"] == "not ready"
    assert body["database"] == "unavailable"
    # Counts to an anonymous probe: the one model still serves from memory.
    assert body["counts"] == {"models": 1, "serving": 1, "failing": 0}
    assert (alive.status, alive.json()) == (200, {"status": "alive"})
    assert activation_exit != 0, "an activation cannot be stored without a database"

    proxy.restore()
    after: list[Outcome] = []

    def every_worker_served_after_restore() -> bool:
        after.extend(predict_many(server, f"after-{len(after) // 4}", 4))
        return len(server.pids_that_served("after-")) == 2

    wait_until(every_worker_served_after_restore, "both workers", RECOVERY_TIMEOUT)
    wait_until_ready(server)
    assert_served(after, 1, v1)
    sent = [*warm, ghost, *outage, *after]
    wait_until(
        lambda: sum(map(len, postgres_log(install).values())) >= len(sent),
        f"{len(sent)} log rows",
        ROWS_TIMEOUT,
    )
    logged = postgres_log(install)
    assert_one_row_per_request(logged, sent)
    assert logged["ghost-0"][0].error_code == "registry_unavailable"
    assert postgres_rows(install, "SELECT dropped FROM api_loggap") == []
    assert metric(server, "modelhub_log_rows_buffered") == 0

    # Recovered without a restart: a new activation is served at once.
    install.shell("actions.activate(model.versions.get(number=2))")
    assert_served(predict_many(server, "activated", 16), 2, v2)
    assert_clean_log(server, booted)
    report_gate(
        "PostgreSQL cut by a TCP proxy",
        requests_during_outage=len(outage),
        errors_during_outage=0,
        unknown_slug_status=503,
        requests_total=len(sent),
        rows=len(sent),
        dropped=0,
        worker_restarts=0,
    )


@needs_postgres
def test_postgres_outage_buffers_up_to_the_limit_and_records_the_overflow_as_a_gap(
    proxied_install: Install, proxy: TcpProxy, tmp_path: Path, gunicorn_servers
) -> None:
    install = proxied_install
    server = start_gunicorn(
        {**install.env, "MODELHUB_LOG_BUFFER_SIZE": "20"}, tmp_path, workers=1
    )
    gunicorn_servers.append(server)
    warm = [predict(server, f"warm-{i}") for i in range(5)]
    booted = server.booted_workers()
    # Rows are written just after each response: let the last one land first.
    wait_until(lambda: len(postgres_log(install)) == 5, "warm rows", ROWS_TIMEOUT)

    cut_at = datetime.now(UTC)
    proxy.cut()
    outage = [predict(server, f"outage-{i}") for i in range(60)]
    dropped_during_outage = metric(server, "modelhub_log_rows_dropped_total")
    buffered_during_outage = metric(server, "modelhub_log_rows_buffered")
    proxy.restore()
    after = predict(server, "after-0")

    assert_served([*warm, *outage, after], 1, install.predictions[1])
    assert dropped_during_outage == 40
    assert buffered_during_outage == 20
    # The first 20 outage rows waited in the buffer; the last 40 had no room.
    kept = [*warm, *outage[:20], after]
    wait_until(
        lambda: len(postgres_log(install)) >= len(kept), "log rows", ROWS_TIMEOUT
    )
    assert_one_row_per_request(postgres_log(install), kept)
    ((dropped, since, created_at),) = postgres_rows(
        install, "SELECT dropped, since, created_at FROM api_loggap"
    )
    assert dropped == 40
    assert cut_at <= since <= created_at <= datetime.now(UTC)
    assert metric(server, "modelhub_log_rows_dropped_total") == 40
    assert metric(server, "modelhub_log_rows_buffered") == 0
    assert readyz(server)[0] == 200
    # ... and the stats count it (the last line: `shell` may print a banner).
    window = install.shell(
        "from datetime import timedelta\nfrom django.utils import timezone\n"
        "from monitoring import rollup, stats\n"
        "now = timezone.now()\nrollup.refresh()\n"
        "print(stats.summary(now - timedelta(hours=1), now)['totals'])"
    )
    totals = ast.literal_eval(window.strip().splitlines()[-1])
    assert totals["dropped_log_rows"] == 40
    assert totals["requests"] == len(kept)
    assert_clean_log(server, booted)


@needs_postgres
def test_postgres_cut_between_a_commit_and_its_acknowledgement_logs_the_row_once(
    proxied_install: Install, proxy: TcpProxy, tmp_path: Path, gunicorn_servers
) -> None:
    install = proxied_install
    server = start_gunicorn(install.env, tmp_path, workers=1)
    gunicorn_servers.append(server)
    warm = predict(server, "warm-0")
    wait_until(lambda: "warm-0" in postgres_log(install), "warm row", ROWS_TIMEOUT)
    booted = server.booted_workers()

    # The log row's own INSERT (not the rollup's, folded after the warm row).
    proxy.mute_replies_after = b'INSERT INTO "api_requestlog"'
    unacknowledged = predict(server, "unacknowledged-0")
    # The row is committed; the worker still waits for the server's answer.
    wait_until(
        lambda: "unacknowledged-0" in postgres_log(install),
        "the committed row",
        ROWS_TIMEOUT,
    )
    proxy.cut()
    proxy.mute_replies_after = None
    proxy.restore()
    after = predict(server, "after-0")
    wait_until(lambda: "after-0" in postgres_log(install), "after row", ROWS_TIMEOUT)

    sent = [warm, unacknowledged, after]
    assert_served(sent, 1, install.predictions[1])
    assert_one_row_per_request(postgres_log(install), sent)
    install.shell("from monitoring import rollup\nrollup.refresh()")  # as readers do
    rollup = postgres_rows(
        install,
        'SELECT resolution, SUM("count") FROM api_requeststat GROUP BY resolution',
    )
    assert sorted(rollup) == [("d", 3), ("h", 3), ("m", 3)]
    wait_until_ready(server, consecutive=2)
    assert_clean_log(server, booted)


# --- SQLite -------------------------------------------------------------------


def chattr(flag: str, *paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["chattr", flag, *map(str, paths)], capture_output=True, timeout=10
    )


def immutable_files_supported(directory: Path) -> bool:
    if os.geteuid() != 0:
        return False
    probe = directory / "chattr-probe"
    probe.write_text("probe")
    try:
        return chattr("+i", probe).returncode == 0
    finally:
        chattr("-i", probe)
        probe.unlink()


def sqlite_log(db: Path) -> dict[str, list[LogRow]]:
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT request_id, status, version, error_code FROM api_requestlog"
        ).fetchall()
    finally:
        conn.close()
    logged: dict[str, list[LogRow]] = {}
    for request_id, status, version, code in rows:
        logged.setdefault(request_id, []).append(LogRow(status, version, code))
    return logged


def test_sqlite_made_read_only_keeps_serving_and_writes_buffered_rows_once_writable(
    install: Install, tmp_path: Path, gunicorn_servers
) -> None:
    if not install.env["DATABASE_URL"].startswith("sqlite"):
        pytest.skip("SQLite files made immutable: runs on the SQLite suite only")
    if not immutable_files_supported(tmp_path):
        pytest.skip("needs root and `chattr +i` on the temporary directory")
    db = Path(install.env["DATABASE_URL"].removeprefix("sqlite:///"))
    wal = db.with_name(db.name + "-wal")
    server = start_gunicorn(
        {**install.env, "MODELHUB_THREADS": "2"}, tmp_path, workers=2
    )
    gunicorn_servers.append(server)
    warm = warm_every_worker(server)
    booted = server.booted_workers()
    assert wal.exists()

    # Not the -shm file: SQLite maps it, and an immutable mapping is a SIGBUS.
    assert chattr("+i", db, wal).returncode == 0
    try:
        outage = predict_many(server, "outage", 100)
        not_ready, body = readyz(server)
        alive = server.get("/healthz")
    finally:
        assert chattr("-i", db, wal).returncode == 0

    assert_served([*warm, *outage], 1, install.predictions[1])
    assert len(server.pids_that_served("outage-")) == 2
    assert not_ready == 503
    assert body["status"] == "not ready"
    assert body["request_log"].endswith("row(s) buffered"), body
    assert (alive.status, alive.json()) == (200, {"status": "alive"})

    after: list[Outcome] = []
    sent = [*warm, *outage]

    def every_buffered_row_landed() -> bool:
        after.extend(predict_many(server, f"after-{len(after) // 4}", 4))
        logged = sqlite_log(db)
        return all(o.request_id in logged for o in sent)

    wait_until(every_buffered_row_landed, "every buffered row", RECOVERY_TIMEOUT)
    # The last requests' rows wait for their commit window.
    wait_until(
        lambda: len(sqlite_log(db)) >= len(sent) + len(after),
        "every log row",
        RECOVERY_TIMEOUT,
    )
    wait_until_ready(server)
    assert_served(after, 1, install.predictions[1])
    assert_one_row_per_request(sqlite_log(db), [*sent, *after])
    assert_clean_log(server, booted)
    report_gate(
        "SQLite file made read-only",
        requests_during_outage=len(outage),
        errors_during_outage=0,
        requests_total=len(sent) + len(after),
        rows=len(sent) + len(after),
        worker_restarts=0,
    )
