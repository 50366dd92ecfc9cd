"""Several gunicorn workers sharing one registry: warm-up and activation.

Everything runs as in production: real gunicorn with two workers, one SQLite
file, versions registered and switched by other processes (manage.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import joblib
import pytest

from tests.test_serving import GUNICORN, free_port
from tests.test_settings import PROJECT_ROOT, clean_env

WORKERS = 2
START_TIMEOUT = 20.0
REQUEST_TIMEOUT = 10.0
# A virginica flower: the logistic regression (v1) says virginica, the
# one-split tree (v2) can only say setosa or versicolor.
ROW = {
    "sepal length (cm)": 6.7,
    "sepal width (cm)": 3.0,
    "petal length (cm)": 5.2,
    "petal width (cm)": 2.3,
}


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Cluster:
    base_url: str
    env: dict[str, str]
    log: Path
    predictions: dict[int, str]

    def request(
        self, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        """One request over its own connection; error statuses are returned."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as resp:
                return Response(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, exc.headers, exc.read())

    def predict(self, request_id: str) -> Response:
        return self.request(
            "/api/predict/iris/", {"data": ROW}, {"X-Request-ID": request_id}
        )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def worker_pids(self) -> set[str]:
        return set(re.findall(r"Booting worker with pid: (\d+)", self.log_text()))

    def pids_that_served(self, prefix: str) -> set[str]:
        """Worker pids from access-log lines whose request id starts with prefix."""
        pattern = rf"^ACCESS <(\d+)> {re.escape(prefix)}\S* \d+$"
        return set(re.findall(pattern, self.log_text(), flags=re.MULTILINE))


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"manage.py {args[0]} failed:\n{result.stderr}"
    return result.stdout


def switch(env: dict[str, str], statement: str) -> None:
    """Changes the active version from a process that is not a web worker."""
    manage(
        env,
        "shell",
        "-c",
        "from registry import artifacts\n"
        "from registry.models import MLModel\n"
        "model = MLModel.objects.get(slug='iris')\n" + statement,
    )


def train(tmp: Path) -> tuple[dict[int, Path], dict[int, str]]:
    """Two different iris models saved as files, and what each says for ROW."""
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
    row = pd.DataFrame([ROW])
    predictions = {n: str(m.predict(row)[0]) for n, m in models.items()}
    paths = {n: tmp / f"iris-v{n}.joblib" for n in models}
    for number, model in models.items():
        joblib.dump(model, paths[number])
    return paths, predictions


def wait_for(condition, what: str, cluster: Cluster, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"gunicorn exited with {proc.returncode}:\n{cluster.log_text()}"
            )
        try:
            if condition():
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    pytest.fail(f"{what} not seen after {START_TIMEOUT}s:\n{cluster.log_text()}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("multiprocess")
    port = free_port()
    env = clean_env(
        tmp,
        MODELHUB_BIND=f"127.0.0.1:{port}",
        MODELHUB_WORKERS=str(WORKERS),
        MODELHUB_GRACEFUL_TIMEOUT="5",
        MODELHUB_ACCESS_LOG="-",
        MODELHUB_LOG_LEVEL="INFO",
    )
    files, predictions = train(tmp)
    assert predictions[1] != predictions[2]
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    loaded = manage(env, "loadmodel", str(files[1]), "--slug", "iris")
    assert loaded.strip() == "iris v1"
    loaded = manage(env, "loadmodel", str(files[2]), "--slug", "iris", "--no-activate")
    assert loaded.strip() == "iris v2"

    log = tmp / "gunicorn.log"
    cluster = Cluster(f"http://127.0.0.1:{port}", env, log, predictions)
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                str(GUNICORN),
                "--config",
                "modelhub/gunicorn.conf.py",
                # pid and request id per line: which worker served which request.
                "--access-logformat",
                "ACCESS %(p)s %({x-request-id}i)s %(s)s",
                # The default socket lives in $HOME, shared with any other server.
                "--no-control-socket",
            ],
            cwd=PROJECT_ROOT,
            # Metric files in this directory, not one gunicorn.conf.py makes in /tmp.
            env={**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus")},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: cluster.request("/healthz").status == 200, "/healthz", cluster, proc
        )
        wait_for(
            lambda: cluster.log_text().count("preloaded iris v1") >= WORKERS,
            "a preload per worker",
            cluster,
            proc,
        )
        yield cluster
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def assert_every_worker_serves(cluster: Cluster, version: int, tag: str) -> None:
    """Every request answers with ``version``, whichever worker takes it.

    Each request has its own connection, sent a few at a time; which worker
    accepts is up to the kernel, so batches go on until each worker has
    answered some (at least 20 requests, at most 200).
    """
    workers = cluster.worker_pids()
    sent = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        while sent < 20 or cluster.pids_that_served(f"{tag}-") != workers:
            assert sent < 200, f"a worker took no request:\n{cluster.log_text()}"
            ids = [f"{tag}-{i}" for i in range(sent, sent + 20)]
            for request_id, response in zip(
                ids, pool.map(cluster.predict, ids), strict=True
            ):
                assert response.status == 200, response.body
                body = response.json()
                assert body["version"] == version, request_id
                assert response.headers["X-Model-Version"] == str(version)
                assert response.headers["X-Request-ID"] == request_id
                assert body["predictions"] == [cluster.predictions[version]]
            sent += len(ids)


def test_gunicorn_workers_preload_active_version_at_start(cluster):
    log = cluster.log_text()
    assert len(cluster.worker_pids()) == WORKERS
    assert log.count("preloaded iris v1") == WORKERS
    # Each worker's single load of v1 was the preload, not a first request.
    assert log.count("loaded iris v1 in") == WORKERS
    assert "preloaded iris v2" not in log
    assert "could not preload" not in log


def test_activation_by_another_process_reaches_every_worker(cluster):
    assert_every_worker_serves(cluster, 1, "before")
    workers = cluster.worker_pids()

    switch(cluster.env, "artifacts.activate(model.versions.get(number=2))")
    assert_every_worker_serves(cluster, 2, "activated")

    switch(cluster.env, "artifacts.rollback(model)")
    assert_every_worker_serves(cluster, 1, "rolled-back")
    assert cluster.worker_pids() == workers, "a worker was restarted"


def test_readyz_and_model_list_report_the_model(cluster):
    listing = cluster.request("/api/models/")
    assert listing.status == 200
    (iris,) = listing.json()
    assert iris["slug"] == "iris"
    assert iris["kind"] == "classifier"
    active = iris["active_version"]
    assert active in (1, 2)

    ready = cluster.request("/readyz")
    assert ready.status == 200
    assert ready.json() == {
        "status": "ready",
        "database": "ok",
        "models": {"iris": {"status": "ok", "version": active}},
    }
