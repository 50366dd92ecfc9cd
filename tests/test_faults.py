"""Serving through faults, under real gunicorn on 127.0.0.1.

Each scenario starts its own gunicorn master on a private copy of a registry
(iris v1 active, v2 registered; SQLite, or PostgreSQL on the PostgreSQL run),
drives bounded traffic and checks what clients got, what the request log
holds and what /metrics counts. Long load scenarios are marked slow.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest

from tests.servers import (
    CLIENTS,
    Install,
    Outcome,
    Server,
    Traffic,
    corrupt_version_file,
    metric_samples,
    report_gate,
    send_all,
    start_gunicorn,
    wait_for_rows,
)

ACTIVATE_V2 = "actions.activate(model.versions.get(number=2))"
ROLL_BACK = "actions.rollback(model)"


def start(install: Install, servers: list[Server], workers: int = 2, **env: str):
    server = start_gunicorn({**install.env, **env}, install.run_dir, workers=workers)
    servers.append(server)
    return server


def assert_served_by_named_version(outcomes: list[Outcome], install: Install) -> None:
    """Every response is a 200 whose body, header and prediction agree."""
    failed = [o for o in outcomes if o.status != 200]
    assert not failed, f"{len(failed)} of {len(outcomes)} failed, e.g. {failed[:3]}"
    for o in outcomes:
        body = o.json()
        assert o.echoed_id == o.request_id
        assert str(body["version"]) == o.version, o
        assert body["predictions"] == [install.predictions[body["version"]]], o


def assert_one_row_per_response(install: Install, prefix: str, outcomes) -> None:
    logged = wait_for_rows(install, prefix, len(outcomes))
    expected = {o.request_id: [(o.status, int(o.version))] for o in outcomes}
    assert logged == expected


@pytest.mark.slow
def test_version_swaps_under_load_lose_no_request_and_log_the_serving_version(
    install, gunicorn_servers
):
    server = start(install, gunicorn_servers, MODELHUB_THREADS="2")
    total, swaps = 2000, 6
    traffic = Traffic(server, "swap", total)
    for swap in range(swaps):
        traffic.wait_until((swap + 1) * total // (swaps + 2))
        install.shell(ROLL_BACK if swap % 2 else ACTIVATE_V2)
    outcomes = traffic.finish()

    assert_served_by_named_version(outcomes, install)
    served = Counter(o.version for o in outcomes)
    assert set(served) == {"1", "2"}, served
    assert_one_row_per_response(install, "swap", outcomes)
    history = install.query(
        "SELECT count(*) FROM registry_activation a "
        "JOIN registry_mlmodel m ON m.id = a.model_id WHERE m.slug = 'iris'"
    )
    assert history[0][0] == 1 + swaps  # the first activation, then each swap
    assert "Traceback" not in server.log_text()
    report_gate(
        "version swap under load",
        requests=total,
        swaps=swaps,
        non_2xx=0,
        connection_errors=0,
        served_v1=served["1"],
        served_v2=served["2"],
        rows=total,
    )


@pytest.mark.slow
def test_activated_version_that_fails_to_load_leaves_the_previous_one_serving(
    install, gunicorn_servers
):
    server = start(install, gunicorn_servers)
    corrupt_version_file(install, 2)
    install.shell(ACTIVATE_V2)

    outcomes = send_all(server, "broken", 200)
    assert_served_by_named_version(outcomes, install)
    assert {o.version for o in outcomes} == {"1"}
    assert_one_row_per_response(install, "broken", outcomes)

    # Visible: metric, gunicorn log, the version's row (shown in the admin),
    # readiness.
    fallbacks = metric_samples(server, "modelhub_model_fallbacks_total")
    assert [(s["failed_version"], v) for s, v in fallbacks] == [("2", 200.0)]
    assert "iris v2 cannot be served" in server.log_text()
    ((load_error,),) = install.query(
        "SELECT load_error FROM registry_modelversion WHERE number = 2"
    )
    assert "sha256" in load_error
    assert server.get("/readyz").json()["counts"]["serving"] == 1
    key = install.staff_key()
    ready = server.get("/readyz", headers={"Authorization": f"Api-Key {key}"})
    assert ready.status == 200
    assert ready.json()["models"]["iris"]["status"] == "fallback"

    # New workers (a reload) have no last good version in memory: they find
    # it in the activation history.
    booted = len(server.booted_workers())
    server.proc.send_signal(signal.SIGHUP)
    server.wait_until_booted(booted + 2)
    server.wait_for(
        lambda: server.log_text().count("v2 cannot be loaded; v1 serves instead") >= 2,
        "both new workers preloading the fallback",
    )
    after = send_all(server, "after-reload", 50)
    assert_served_by_named_version(after, install)
    assert {o.version for o in after} == {"1"}
    assert "Traceback" not in server.log_text()
    report_gate(
        "activated version fails to load",
        requests=len(outcomes) + len(after),
        errors=0,
        served_by_previous_version=len(outcomes) + len(after),
        fallbacks_counted=200,
        rows=len(outcomes),
    )


WINDOW_ROWS = 8


@pytest.mark.slow
def test_kill_9_of_a_worker_costs_at_most_its_open_connections(
    install, gunicorn_servers
):
    server = start(
        install,
        gunicorn_servers,
        MODELHUB_THREADS="2",
        MODELHUB_LOG_COMMIT_ROWS=str(WINDOW_ROWS),
    )
    first_workers = server.booted_workers()
    traffic = Traffic(server, "kill", 800)
    traffic.wait_until(200)
    victim = int(first_workers[0])
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    server.wait_until_booted(3)
    respawn_seconds = time.monotonic() - killed_at
    outcomes = traffic.finish()

    failed = [o for o in outcomes if o.status is None]
    answered = [o for o in outcomes if o.status is not None]
    # Each client has one request open at a time: only those could be lost.
    assert len(failed) <= CLIENTS, failed
    assert all(o.status == 200 for o in answered), Counter(o.status for o in answered)
    assert respawn_seconds < 10
    logged = wait_for_rows(install, "kill", len(answered))
    assert all(len(rows) == 1 for rows in logged.values()), "duplicate request ids"
    assert set(logged) <= {o.request_id for o in outcomes}
    # Rows are committed in windows (at most WINDOW_ROWS rows, or 10 ms): the
    # killed worker loses its open window, the one it was committing, and the
    # rows of the requests its two threads had just answered.
    unlogged = [o.request_id for o in answered if o.request_id not in logged]
    assert len(unlogged) <= 2 * WINDOW_ROWS + 2, unlogged
    assert all(o.status == 200 for o in send_all(server, "after-kill", 40))
    assert str(victim) not in server.pids_that_served("after-kill")
    report_gate(
        "kill -9 of a worker",
        requests=len(outcomes),
        connection_errors=len(failed),
        answered_without_row=len(unlogged),
        duplicate_ids=0,
        respawn_seconds=round(respawn_seconds, 2),
    )


SLOW_MODEL = '''
import os
import time

import numpy as np


class SleepsOnPredict:
    """Sleeps as many seconds as the first input value says, in short naps
    (Python code between them, where a time limit can interrupt a thread)."""

    n_features_in_ = 1

    def fit(self, x, y=None):
        return self

    def predict(self, x):
        seconds = float(np.asarray(x)[0][0])
        if seconds > 0 and os.environ.get("SLEEPY_STARTED"):
            open(os.environ["SLEEPY_STARTED"], "w").close()  # the test's cue
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.01)
        return np.zeros(len(x))
'''


@pytest.fixture
def slow_model_install(install: Install) -> Install:
    """``install`` plus a model that sleeps on request, from a plugin directory."""
    import sys

    import joblib

    plugins = install.run_dir / "plugins"
    plugins.mkdir()
    (plugins / "slowmodels.py").write_text(SLOW_MODEL)
    sys.path.insert(0, str(plugins))
    try:
        from slowmodels import SleepsOnPredict

        joblib.dump(SleepsOnPredict(), install.run_dir / "sleepy.joblib")
    finally:
        sys.path.remove(str(plugins))
        sys.modules.pop("slowmodels", None)
    install.env["MODELHUB_PLUGIN_DIRS"] = str(plugins)
    from tests.servers import manage

    path = str(install.run_dir / "sleepy.joblib")
    assert manage(install.env, "loadmodel", path, "--slug", "sleepy").strip() == (
        "sleepy v1"
    )
    return install


@pytest.mark.parametrize("threads", ["1", "4"], ids=["sync", "gthread"])
def test_model_slower_than_the_limit_gets_json_504_a_row_and_the_worker_lives(
    slow_model_install, gunicorn_servers, threads
):
    install = slow_model_install
    server = start(
        install,
        gunicorn_servers,
        workers=1,
        MODELHUB_PREDICT_TIMEOUT="1",
        MODELHUB_THREADS=threads,
    )
    (worker,) = server.booted_workers()

    started = time.monotonic()
    response = server.post(
        "/api/predict/sleepy/", {"inputs": [[5]]}, headers={"X-Request-ID": "slow-0"}
    )
    elapsed = time.monotonic() - started
    assert response.status == 504
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "prediction_timeout"
    assert elapsed < 4
    quick = server.post(
        "/api/predict/sleepy/", {"inputs": [[0]]}, headers={"X-Request-ID": "slow-1"}
    )
    assert quick.status == 200
    assert server.booted_workers() == [worker], "the worker was replaced"
    rows = wait_for_rows(install, "slow", 2)
    assert rows == {"slow-0": [(504, 1)], "slow-1": [(200, 1)]}
    report_gate(
        f"model slower than the limit ({threads} thread(s))",
        status=504,
        seconds=round(elapsed, 2),
    )


def test_sigterm_lets_an_in_flight_request_finish(slow_model_install, gunicorn_servers):
    install = slow_model_install
    started = install.run_dir / "sleepy-started"
    server = start(install, gunicorn_servers, workers=1, SLEEPY_STARTED=str(started))
    slow = Traffic(server, "in-flight", 1, request_for=lambda i: sleepy(2))
    server.wait_for(started.exists, "the request inside the model")
    assert server.stop() == 0
    (outcome,) = slow.finish()

    assert outcome.status == 200, outcome
    assert wait_for_rows(install, "in-flight", 1) == {"in-flight-0": [(200, 1)]}


def sleepy(seconds: float) -> tuple[str, dict]:
    return "/api/predict/sleepy/", {"inputs": [[seconds]]}
