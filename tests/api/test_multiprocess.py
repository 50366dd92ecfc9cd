"""Several gunicorn workers sharing one registry: warm-up and activation.

Everything runs as in production: real gunicorn with two workers, one
database, versions registered and switched by other processes (manage.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.servers import (
    IRIS_ROW,
    Install,
    Server,
    copy_install,
    start_gunicorn,
)

WORKERS = 2


@pytest.fixture(scope="module")
def cluster(
    iris_install: Install, tmp_path_factory
) -> Iterator[tuple[Server, Install]]:
    run_dir = tmp_path_factory.mktemp("multiprocess")
    with copy_install(iris_install, run_dir) as install:
        env = {
            **install.env,
            "MODELHUB_LOG_LEVEL": "INFO",
            # On SQLite, only the registry's generation can tell the workers
            # of an activation: no recheck interval runs out mid-test.
            "MODELHUB_ROUTE_RECHECK_MS": "3600000",
        }
        server = start_gunicorn(env, run_dir, workers=WORKERS)
        try:
            server.wait_for(
                lambda: server.log_text().count("preloaded iris v1") >= WORKERS,
                "a preload per worker",
            )
            yield server, install
        finally:
            server.stop()


def predict(server: Server, request_id: str):
    return server.post(
        "/api/predict/iris/", {"data": IRIS_ROW}, headers={"X-Request-ID": request_id}
    )


def assert_every_worker_serves(
    server: Server, install: Install, version: int, tag: str
) -> None:
    """Every request answers with ``version``, whichever worker takes it.

    Each request has its own connection, sent a few at a time; which worker
    accepts is up to the kernel, so batches go on until each worker has
    answered some (at least 20 requests, at most 200).
    """
    workers = set(server.booted_workers())
    sent = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        while sent < 20 or server.pids_that_served(f"{tag}-") != workers:
            assert sent < 200, f"a worker took no request:\n{server.log_text()}"
            ids = [f"{tag}-{i}" for i in range(sent, sent + 20)]
            responses = pool.map(lambda i: predict(server, i), ids)
            for request_id, response in zip(ids, responses, strict=True):
                assert response.status == 200, response.body
                body = response.json()
                assert body["version"] == version, request_id
                assert response.headers["X-Model-Version"] == str(version)
                assert response.headers["X-Request-ID"] == request_id
                assert body["predictions"] == [install.predictions[version]]
            sent += len(ids)


def test_gunicorn_workers_preload_active_version_at_start(cluster):
    server, _ = cluster
    log = server.log_text()
    assert len(server.booted_workers()) == WORKERS
    assert log.count("preloaded iris v1") == WORKERS
    # Each worker's single load of v1 was the preload, not a first request.
    assert log.count("loaded iris v1 in") == WORKERS
    assert "preloaded iris v2" not in log
    assert "could not preload" not in log


def test_activation_by_another_process_reaches_every_worker(cluster):
    server, install = cluster
    assert_every_worker_serves(server, install, 1, "before")
    workers = server.booted_workers()

    install.shell("actions.activate(model.versions.get(number=2))")
    assert_every_worker_serves(server, install, 2, "activated")

    install.shell("actions.rollback(model)")
    assert_every_worker_serves(server, install, 1, "rolled-back")
    assert server.booted_workers() == workers, "a worker was restarted"


def test_readyz_and_model_list_report_the_model(cluster):
    server, install = cluster
    listing = server.get("/api/models/")
    assert listing.status == 200
    (iris,) = listing.json()
    assert iris["slug"] == "iris"
    assert iris["kind"] == "classifier"
    active = iris["active_version"]
    assert active in (1, 2)

    counts = {"models": 1, "serving": 1, "failing": 0}
    anonymous = server.get("/readyz")
    assert anonymous.status == 200
    assert anonymous.json() == {
        "status": "ready",
        "database": "ok",
        "request_log": "ok",
        "counts": counts,
    }
    key = install.staff_key()
    ready = server.get("/readyz", headers={"Authorization": f"Api-Key {key}"})
    assert ready.status == 200
    assert ready.json() == {
        "status": "ready",
        "database": "ok",
        "request_log": "ok",
        "counts": counts,
        "models": {"iris": {"status": "ok", "version": active}},
    }
