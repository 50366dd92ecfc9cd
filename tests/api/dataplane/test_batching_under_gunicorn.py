"""Adaptive batching as deployed: gunicorn workers handing decoded rows to
the host's batch process, a forest registered with ``loadmodel
--batch-max-rows``, concurrent clients over HTTP. Each request gets the
forest's own answer for its row, its own log row with the batch size it rode
in, and /metrics counts the batches; the batch process starts when first
needed, and its death costs no request."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from tests.servers import (
    Install,
    Server,
    Traffic,
    manage,
    metric_samples,
    send_all,
    start_gunicorn,
    wait_for_rows,
)

FEATURES = 20
ROWS = np.random.default_rng(5).normal(size=(64, FEATURES)).round(6)


@pytest.fixture
def forest_install(install: Install) -> tuple[Install, RandomForestClassifier]:
    x, y = make_classification(800, FEATURES, random_state=0)
    forest = RandomForestClassifier(60, random_state=0).fit(x, y)
    path = install.run_dir / "forest.joblib"
    joblib.dump(forest, path)
    out = manage(
        install.env,
        "loadmodel",
        str(path),
        "--slug",
        "forest",
        "--batch-max-rows",
        "32",
        "--batch-max-wait-ms",
        "5",
    )
    assert out.strip() == "forest v1"
    return install, forest


def forest_request(index: int) -> tuple[str, dict]:
    """Every eighth request is malformed (a row too short): a 400 of its own.
    Every eighth from the fourth holds a number the forest refuses (past
    float32): its batch fails, and only it gets a 422 when each request is
    predicted again alone."""
    row = ROWS[index % len(ROWS)].tolist()
    if bad(index):
        row = row[:-1]
    elif refused(index):
        row = [1e300, *row[1:]]
    return "/api/predict/forest/?proba=1", {"inputs": [row]}


def bad(index: int) -> bool:
    return index % 8 == 7


def refused(index: int) -> bool:
    return index % 8 == 3


def expected_status(index: int) -> int:
    return 400 if bad(index) else 422 if refused(index) else 200


def batch_servers(server: Server) -> set[int]:
    """The pids of the batch process behind ``server``: the children of its
    master's keeper that serve."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            keeper = int(
                (Path("/proc") / str(parent) / "stat")
                .read_text()
                .rsplit(")", 1)[1]
                .split()[1]
            )
        except (OSError, ValueError, IndexError):
            continue
        serving = b"api.dataplane.batch_host" in command and b"serve" in command
        if serving and keeper == server.proc.pid:
            found.add(int(entry.name))
    return found


@pytest.mark.parametrize(
    ("workers", "threads"), [(4, "1"), (2, "8")], ids=["sync", "gthread"]
)
def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(
    forest_install, gunicorn_servers, workers, threads
):
    install, forest = forest_install
    server: Server = start_gunicorn(
        {**install.env, "MODELHUB_THREADS": threads, "MODELHUB_LOG_COMMIT_MS": "0"},
        install.run_dir,
        workers=workers,
    )
    gunicorn_servers.append(server)
    outcomes = Traffic(
        server, "batch", 160, request_for=forest_request, clients=16
    ).finish()

    assert Counter(o.status for o in outcomes) == {200: 120, 400: 20, 422: 20}
    for o in outcomes:
        assert o.status == expected_status(o.index), o
        if o.status == 422:
            assert o.json()["code"] == "model_error"
            assert "too large for dtype('float32')" in o.json()["detail"]
        if o.status != 200:
            continue
        row = ROWS[o.index % len(ROWS)].reshape(1, -1)
        body = o.json()
        assert body["predictions"] == forest.predict(row).tolist()
        expected = dict(
            zip(map(str, forest.classes_), forest.predict_proba(row)[0], strict=True)
        )
        assert body["probabilities"] == [expected]  # to the last bit, via JSON

    logged = wait_for_rows(install, "batch", 160)
    assert sorted(logged) == sorted(o.request_id for o in outcomes)
    sizes = install.query(
        "SELECT status, batch_size FROM api_requestlog WHERE request_id LIKE 'batch-%%'"
    )
    malformed = {size for status, size in sizes if status == 400}
    assert malformed == {None}, "a malformed request never joins a batch"
    batched = [size for status, size in sizes if status == 200]
    assert all(size is not None and 1 <= size <= 32 for size in batched), batched
    assert max(batched) > 1, "sixteen clients never shared a batch"
    assert len(batch_servers(server)) == 1
    log = server.log_text()
    assert "Traceback" not in log and "batch process lost" not in log, log[-3000:]
    assert log.count("too large for dtype") <= 1, "a model's warning, once"

    batches = sum(v for _, v in metric_samples(server, "modelhub_batch_size_count"))
    requests = sum(v for _, v in metric_samples(server, "modelhub_batch_size_sum"))
    assert requests == 120  # batches that failed are not counted
    assert batches < 120


def test_the_batch_process_starts_when_a_batched_model_is_first_asked(
    forest_install, gunicorn_servers
):
    install, _ = forest_install
    server = start_gunicorn(install.env, install.run_dir, workers=2)
    gunicorn_servers.append(server)
    assert send_all(server, "iris", 20)  # iris: batching off
    assert batch_servers(server) == set(), "a host that never batches runs none"

    assert server.post(*forest_request(0)).status == 200
    assert len(batch_servers(server)) == 1


def test_a_killed_batch_process_costs_no_request_and_is_started_again(
    forest_install, gunicorn_servers
):
    install, forest = forest_install
    server = start_gunicorn(
        {**install.env, "MODELHUB_LOG_COMMIT_MS": "0"}, install.run_dir, workers=4
    )
    gunicorn_servers.append(server)
    assert send_all(server, "warm", 8, request_for=forest_request)
    (first,) = batch_servers(server)

    traffic = Traffic(server, "kill", 400, request_for=forest_request, clients=8)
    traffic.wait_until(100)
    os.kill(first, signal.SIGKILL)
    outcomes = traffic.finish()

    assert Counter(o.status for o in outcomes) == {200: 300, 400: 50, 422: 50}
    for o in outcomes:
        if o.status == 200:
            row = ROWS[o.index % len(ROWS)].reshape(1, -1)
            assert o.json()["predictions"] == forest.predict(row).tolist()
    assert "batch process" in server.log_text()

    deadline = time.monotonic() + 30
    while not (batch_servers(server) - {first}):
        assert time.monotonic() < deadline, "no batch process after the kill"
        assert server.post(*forest_request(0)).status == 200
        time.sleep(0.2)
    after = Traffic(server, "after", 80, request_for=forest_request, clients=8)
    assert {o.status for o in after.finish()} == {200, 400, 422}
    wait_for_rows(install, "after", 80)
    sizes = install.query(
        "SELECT batch_size FROM api_requestlog "
        "WHERE request_id LIKE 'after-%%' AND status = 200"
    )
    assert max(size for (size,) in sizes) > 1, "no batch after the restart"
