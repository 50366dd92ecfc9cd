"""Adaptive batching as deployed: gthread workers, a forest registered with
``loadmodel --batch-max-rows``, concurrent clients over HTTP. Each request
gets the forest's own answer for its row, its own log row with the batch
size it rode in, and /metrics counts the batches."""

from __future__ import annotations

from collections import Counter

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
    """Every eighth request is malformed (a row too short): a 400 of its own."""
    row = ROWS[index % len(ROWS)].tolist()
    return "/api/predict/forest/?proba=1", {"inputs": [row[:-1] if bad(index) else row]}


def bad(index: int) -> bool:
    return index % 8 == 7


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(
    forest_install, gunicorn_servers
):
    install, forest = forest_install
    server: Server = start_gunicorn(
        {**install.env, "MODELHUB_THREADS": "8", "MODELHUB_LOG_COMMIT_MS": "0"},
        install.run_dir,
        workers=2,
    )
    gunicorn_servers.append(server)
    outcomes = Traffic(
        server, "batch", 160, request_for=forest_request, clients=16
    ).finish()

    assert Counter(o.status for o in outcomes) == {200: 140, 400: 20}
    for o in outcomes:
        assert o.status == (400 if bad(o.index) else 200), o
        if bad(o.index):
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
    refused = {size for status, size in sizes if status == 400}
    assert refused == {None}, "a refused request never joins a batch"
    batched = [size for status, size in sizes if status == 200]
    assert all(size is not None and 1 <= size <= 32 for size in batched), batched
    assert max(batched) > 1, "sixteen clients never shared a batch"

    batches = sum(v for _, v in metric_samples(server, "modelhub_batch_size_count"))
    requests = sum(v for _, v in metric_samples(server, "modelhub_batch_size_sum"))
    assert requests == 140
    assert batches < 140
