"""Real gunicorn masters for the serving, logging and fault tests.

One way to start, talk to and stop a ModelHub instance as production runs
it: ``gunicorn --config modelhub/gunicorn.conf.py`` in its own directory,
with every setting from the environment. Requests go to 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
# Generous: a slow answer on a loaded machine is not a failure (tests assert
# counts, never timings); a lost request still shows as a timeout.
REQUEST_TIMEOUT = 60.0
# pid and request id per access-log line: which worker served what.
ACCESS_FORMAT = "ACCESS %(p)s %({x-request-id}i)s %(s)s"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def clean_env(tmp: Path, **overrides: str) -> dict[str, str]:
    """The caller's environment minus every setting, pointed at files in ``tmp``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "MODELHUB_"))
        and key not in ("DATABASE_URL", "REDIS_URL")
    }
    env["DJANGO_SETTINGS_MODULE"] = "modelhub.settings"
    env["DATABASE_URL"] = f"sqlite:///{tmp / 'db.sqlite3'}"
    env["MODELHUB_SECRET_KEY_FILE"] = str(tmp / "secret_key")
    env["MODELHUB_MEDIA_ROOT"] = str(tmp / "media")
    env["MODELHUB_STATIC_ROOT"] = str(tmp / "static")
    env["MODELHUB_MODEL_COPY_DIR"] = str(tmp / "model-copies")
    env.update(overrides)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Runs ``manage.py`` as an operator would; fails the test on a non-zero exit."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"manage.py {' '.join(args)} failed:\n{result.stderr}"
    )
    return result.stdout


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    env: dict[str, str]
    log: Path
    workers: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> Response:
        """One request on its own connection, redirects not followed.

        Error statuses are returned; a connection failure raises OSError or
        http.client.HTTPException.
        """
        data = body if body is None or isinstance(body, bytes) else json.dumps(body)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(
                method,
                path,
                body=data,
                headers={
                    "Content-Type": "application/json",
                    "Connection": "close",
                    **(headers or {}),
                },
            )
            response = conn.getresponse()
            return Response(response.status, response.headers, response.read())
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> Response:
        return self.request("POST", path, body, **kwargs)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def booted_workers(self) -> list[str]:
        return re.findall(r"Booting worker with pid: (\d+)", self.log_text())

    def pids_that_served(self, prefix: str) -> set[str]:
        """Worker pids from access-log lines whose request id starts with prefix."""
        pattern = rf"^ACCESS <(\d+)> {re.escape(prefix)}\S* \d+$"
        return set(re.findall(pattern, self.log_text(), flags=re.MULTILINE))

    def wait_for(
        self, condition: Any, what: str, timeout: float = START_TIMEOUT
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"gunicorn exited early:\n{self.log_text()[-4000:]}")
            try:
                if condition():
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        pytest.fail(f"{what} not seen after {timeout}s:\n{self.log_text()[-4000:]}")

    def wait_until_booted(self, count: int) -> None:
        self.wait_for(lambda: len(self.booted_workers()) >= count, f"{count} boots")

    def stop(self) -> int:
        """SIGTERM, gunicorn's graceful shutdown; returns the master's exit code."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            pytest.fail(f"gunicorn still running {STOP_TIMEOUT}s after SIGTERM")


def start_gunicorn(
    env: dict[str, str],
    run_dir: Path,
    *,
    workers: int,
    args: tuple[str, ...] = ("--access-logformat", ACCESS_FORMAT),
    wait: bool = True,
    own_metrics_dir: bool = True,
) -> Server:
    """gunicorn on a free port of 127.0.0.1, logging to ``run_dir/gunicorn.log``.

    With ``wait``, returns once /healthz answers and every worker has booted
    (the preload runs before a worker accepts).
    """
    port = free_port()
    env = {
        **env,
        "MODELHUB_BIND": f"127.0.0.1:{port}",
        "MODELHUB_WORKERS": str(workers),
    }
    env.setdefault("MODELHUB_GRACEFUL_TIMEOUT", "10")
    env.setdefault("MODELHUB_ACCESS_LOG", "-")
    if own_metrics_dir:
        # Metric files in the run's directory, not one gunicorn.conf.py makes.
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(run_dir / "prometheus"))
    else:
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = run_dir / f"gunicorn-{port}.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [str(GUNICORN), "--config", "modelhub/gunicorn.conf.py", *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = Server(proc, port, env, log, workers)
    _RUNNING.append(server)
    if wait:
        try:
            server.wait_for(
                lambda: (
                    server.get("/healthz").status == 200
                    and len(server.booted_workers()) >= workers
                ),
                "/healthz and every worker",
            )
        except BaseException:
            _terminate(server)
            raise
    return server


def _terminate(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=5)


# Every master started, so none outlives the test that started it.
_RUNNING: list[Server] = []


@pytest.fixture
def gunicorn_servers() -> Iterator[list[Server]]:
    """The servers a test starts: each one started during the test (listed
    here or not) is stopped after it."""
    before = len(_RUNNING)
    started: list[Server] = []
    yield started
    for server in [*started, *_RUNNING[before:]]:
        _terminate(server)
    del _RUNNING[before:]


def postgres_available() -> bool:
    try:
        import psycopg

        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
    except Exception:  # noqa: BLE001 - any failure means "not here"
        return False
    return True


@contextmanager
def postgres_database(
    host: str = "127.0.0.1", port: int = 5432, template: str | None = None
) -> Iterator[str]:
    """A fresh PostgreSQL database (a copy of ``template`` if given); dropped
    afterwards. Yields its URL through ``host:port`` (a proxy, say)."""
    import psycopg

    name = f"modelhub_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{copy}')
    try:
        yield f"postgres://postgres@{host}:{port}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# A virginica flower: the logistic regression (v1) says virginica, the
# one-split tree (v2) can only say setosa or versicolor.
IRIS_ROW = {
    "sepal length (cm)": 6.7,
    "sepal width (cm)": 3.0,
    "petal length (cm)": 5.2,
    "petal width (cm)": 2.3,
}


def train_iris_versions(directory: Path) -> tuple[dict[int, Path], dict[int, str]]:
    """Two different iris models saved as files, and what each says for IRIS_ROW."""
    import joblib
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    data = load_iris(as_frame=True)
    x = data.data
    y = data.target.map(dict(enumerate(data.target_names)))
    models = {
        1: LogisticRegression(max_iter=500).fit(x, y),
        2: DecisionTreeClassifier(max_depth=1, random_state=0).fit(x, y),
    }
    row = pd.DataFrame([IRIS_ROW])
    predictions = {n: str(m.predict(row)[0]) for n, m in models.items()}
    paths = {n: directory / f"iris-v{n}.joblib" for n in models}
    for number, model in models.items():
        joblib.dump(model, paths[number])
    assert predictions[1] != predictions[2]
    return paths, predictions


@dataclass
class Install:
    """A migrated registry: iris v1 active, v2 registered but not active."""

    env: dict[str, str]
    run_dir: Path
    predictions: dict[int, str]

    @property
    def media(self) -> Path:
        return Path(self.env["MODELHUB_MEDIA_ROOT"])

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Reads the registry's database directly ("%s" placeholders)."""
        return query(self.env["DATABASE_URL"], sql, params)

    def staff_key(self) -> str:
        """A management-read API key of a new staff user: sees health detail."""
        return self.shell(
            "from django.contrib.auth.models import User\n"
            "from api.access import issuing\n"
            "owner = User.objects.create_user('ops', is_staff=True)\n"
            "print(issuing.create_key(name='ops', owner=owner, management='read')[1])"
        ).split()[-1]

    def shell(self, statement: str) -> str:
        """Runs registry code from a process that is not a web worker."""
        return manage(
            self.env,
            "shell",
            "-c",
            "from registry import actions\n"
            "from registry.models import MLModel, ModelVersion\n"
            "model = MLModel.objects.get(slug='iris')\n" + statement,
        )


def make_install(run_dir: Path, database_url: str | None = None, **env: str) -> Install:
    """``database_url`` defaults to a SQLite file in ``run_dir``."""
    (run_dir / "static").mkdir(parents=True, exist_ok=True)
    settings_env = clean_env(run_dir, MODELHUB_LOG_LEVEL="WARNING", **env)
    if database_url:
        settings_env["DATABASE_URL"] = database_url
    files, predictions = train_iris_versions(run_dir)
    manage(settings_env, "migrate", "--noinput", "--verbosity", "0")
    assert manage(
        settings_env, "loadmodel", str(files[1]), "--slug", "iris"
    ).strip() == ("iris v1")
    second = manage(
        settings_env, "loadmodel", str(files[2]), "--slug", "iris", "--no-activate"
    )
    assert second.strip() == "iris v2"
    return Install(settings_env, run_dir, predictions)


def corrupt_version_file(install: Install, number: int) -> None:
    """Flips one bit of iris v``number``'s file: its sha256 no longer matches."""
    ((name,),) = install.query(
        "SELECT v.file FROM registry_modelversion v "
        "JOIN registry_mlmodel m ON m.id = v.model_id "
        "WHERE m.slug = 'iris' AND v.number = %s",
        (number,),
    )
    path = install.media / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=20)
        try:
            return conn.execute(sql.replace("%s", "?"), params).fetchall()
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as conn:
        return conn.execute(sql, params).fetchall()


def suite_uses_postgres() -> bool:
    """Whether this test run is the PostgreSQL one (DATABASE_URL set by CI)."""
    return os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql"))


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


@pytest.fixture(scope="module")
def iris_install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    """Built once per module on the run's backend; tests take copies."""
    run_dir = tmp_path_factory.mktemp("iris-install")
    if not suite_uses_postgres():
        yield make_install(run_dir)
        return
    with postgres_database() as url:
        yield make_install(run_dir, url)


@contextmanager
def copy_install(
    source: Install, run_dir: Path, *, db_host: str = "127.0.0.1", db_port: int = 5432
) -> Iterator[Install]:
    """Its own database and media directory, copied from ``source``.

    PostgreSQL copies are made from the source database as a template; the
    URL goes through ``db_host:db_port`` (a proxy in front of the server, say).
    """
    import sqlite3

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "static").mkdir(exist_ok=True)
    shutil.copytree(source.media, run_dir / "media")
    env = clean_env(run_dir, MODELHUB_LOG_LEVEL="WARNING")
    url = source.env["DATABASE_URL"]
    if url.startswith("sqlite"):
        db = sqlite3.connect(Path(url.removeprefix("sqlite:///")))
        target = sqlite3.connect(run_dir / "db.sqlite3")
        try:
            db.backup(target)  # consistent even with a WAL file beside it
        finally:
            db.close()
            target.close()
        yield Install(env, run_dir, source.predictions)
        return
    with postgres_database(db_host, db_port, template=database_name(url)) as copied:
        env["DATABASE_URL"] = copied
        yield Install(env, run_dir, source.predictions)


@pytest.fixture
def install(iris_install: Install, tmp_path: Path) -> Iterator[Install]:
    """A private copy of the module's registry for one test."""
    with copy_install(iris_install, tmp_path / "install") as copied:
        yield copied


CLIENTS = 8
TRAFFIC_TIMEOUT = 180.0


@dataclass(frozen=True)
class Outcome:
    index: int
    request_id: str
    status: int | None  # None: no response (refused, reset, timed out)
    echoed_id: str | None = None
    version: str | None = None  # X-Model-Version
    body: bytes = b""
    error: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


def iris_request(index: int) -> tuple[str, Any]:
    return "/api/predict/iris/", {"data": IRIS_ROW}


class Traffic:
    """``count`` POSTs from CLIENTS threads in the background, one connection
    each; ``request_for(index)`` gives the path and JSON body of each."""

    def __init__(
        self,
        server: Server,
        prefix: str,
        count: int,
        *,
        request_for: Any = iris_request,
        clients: int = CLIENTS,
    ) -> None:
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._count = count
        self._pool = ThreadPoolExecutor(max_workers=clients)
        for index in range(count):
            path, body = request_for(index)
            self._pool.submit(self._one, server, index, f"{prefix}-{index}", path, body)

    def _one(
        self, server: Server, index: int, request_id: str, path: str, body: Any
    ) -> None:
        try:
            response = server.post(path, body, headers={"X-Request-ID": request_id})
            outcome = Outcome(
                index,
                request_id,
                response.status,
                response.headers.get("X-Request-ID"),
                response.headers.get("X-Model-Version"),
                response.body,
            )
        except (OSError, http.client.HTTPException) as exc:
            outcome = Outcome(index, request_id, None, error=repr(exc))
        with self._lock:
            self.outcomes.append(outcome)

    def done(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def wait_until(self, count: int, timeout: float = TRAFFIC_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while self.done() < count:
            if time.monotonic() > deadline:
                self._pool.shutdown(cancel_futures=True)
                pytest.fail(f"{self.done()} of {count} responses in {timeout}s")
            time.sleep(0.02)

    def finish(self) -> list[Outcome]:
        self.wait_until(self._count)
        self._pool.shutdown()
        return sorted(self.outcomes, key=lambda o: o.index)


def send_all(server: Server, prefix: str, count: int, **kwargs: Any) -> list[Outcome]:
    return Traffic(server, prefix, count, **kwargs).finish()


def logged_rows(install: Install, prefix: str) -> dict[str, list[tuple[int, Any]]]:
    """Request id -> (status, version) of its log rows, for ids with ``prefix``."""
    rows = install.query(
        "SELECT request_id, status, version FROM api_requestlog "
        "WHERE request_id LIKE %s",
        (prefix + "-%",),
    )
    logged: dict[str, list[tuple[int, Any]]] = {}
    for request_id, status, version in rows:
        logged.setdefault(request_id, []).append((status, version))
    return logged


def wait_for_rows(
    install: Install, prefix: str, expected: int, timeout: float = 15.0
) -> dict[str, list[tuple[int, Any]]]:
    """Rows land just after each response: give the last ones a moment."""
    deadline = time.monotonic() + timeout
    logged = logged_rows(install, prefix)
    while sum(map(len, logged.values())) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        logged = logged_rows(install, prefix)
    return logged


def metric_samples(server: Server, name: str) -> list[tuple[dict[str, str], float]]:
    """Samples of ``name`` on /metrics (summed over the workers by gunicorn mode)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = server.get("/metrics")
    assert response.status == 200
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == name
    ]


def assert_quota_held(responses: list[Response], *, allowed: int, wait: int) -> None:
    """``allowed`` answers, and every other request a 429 ``throttled`` whose
    Retry-After is at most ``wait`` (a rate's interval) seconds."""
    statuses = sorted(r.status for r in responses)
    expected = [200] * allowed + [429] * (len(responses) - allowed)
    assert statuses == expected, statuses
    for response in responses:
        if response.status == 429:
            assert response.json()["code"] == "throttled"
            assert 1 <= int(response.headers["Retry-After"]) <= wait


GATES_FILE = PROJECT_ROOT / "test-artifacts" / "gates.jsonl"


def report_gate(name: str, **figures: Any) -> None:
    """Appends a scenario's figures (requests, errors, rows) to a JSON-lines
    file, so a CI run leaves the numbers behind, not only a pass."""
    GATES_FILE.parent.mkdir(exist_ok=True)
    line = {
        "gate": name,
        "backend": "postgresql" if suite_uses_postgres() else "sqlite",
    }
    with GATES_FILE.open("a") as handle:
        handle.write(json.dumps({**line, **figures}) + "\n")
