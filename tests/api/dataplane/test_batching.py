"""Adaptive batching (api.dataplane.batching): requests to one version
predicted in one call, each getting exactly the bits it would get alone.

Batches are made deterministic by announcing every request first
(``expect``): the batcher waits for all announced requests, so N threads
make one batch of N.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification

from api.dataplane import batching
from api.dataplane.batching import Batcher, Job
from api.errors import ModelRejectedInput, PredictionTimeout
from registry.loading import LoadedModel, VersionRef


def loaded(estimator: Any, *, version_id: int = 1, number: int = 1) -> LoadedModel:
    ref = VersionRef(
        id=version_id,
        slug="forest",
        number=number,
        sha256="0" * 64,
        file_name="forest.joblib",
        format="joblib",
        kind="classifier",
        input_schema={},
        classes=None,
        batch_max_rows=32,
        batch_max_wait_ms=2.0,
    )
    has_proba = hasattr(estimator, "predict_proba")
    return LoadedModel(
        ref=ref, estimator=estimator, has_proba=has_proba, load_seconds=0
    )


@pytest.fixture(scope="module")
def forest():
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(500, 20, random_state=0)
    return RandomForestClassifier(50, random_state=0).fit(x, y)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(12, 20)) * 2


def together(batcher: Batcher, jobs: list[Job]) -> list[Job | BaseException]:
    """Every job announced, then all sent at once: one batch (or retries)."""
    for _ in jobs:
        batcher.expect()

    def send(job: Job) -> Job | BaseException:
        try:
            return batcher.predict(job)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            return exc

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(send, jobs))


def job(data: np.ndarray, *, proba: bool = True, request_id: str = "r") -> Job:
    return Job(data, len(data), proba, request_id)


def test_a_batch_gives_every_request_the_bits_it_gets_alone(forest, rows):
    batcher = Batcher(loaded(forest), max_rows=32, max_wait_ms=2000)
    done = together(batcher, [job(rows[i : i + 1]) for i in range(len(rows))])

    assert [j.batch_size for j in done] == [len(rows)] * len(rows)
    for i, result in enumerate(done):
        alone = rows[i : i + 1]
        assert result.predictions.tobytes() == forest.predict(alone).tobytes()
        assert result.probabilities.tobytes() == forest.predict_proba(alone).tobytes()


def test_requests_of_several_rows_get_their_own_rows_back(forest, rows):
    batcher = Batcher(loaded(forest), max_rows=32, max_wait_ms=2000)
    parts = [rows[0:3], rows[3:4], rows[4:9]]
    done = together(batcher, [job(part) for part in parts])

    for part, result in zip(parts, done, strict=True):
        assert result.batch_size == 3
        assert result.predictions.tobytes() == forest.predict(part).tobytes()


def test_probabilities_go_only_to_requests_that_asked(forest, rows):
    batcher = Batcher(loaded(forest), max_rows=32, max_wait_ms=2000)
    asked, not_asked = together(
        batcher, [job(rows[0:1], proba=True), job(rows[1:2], proba=False)]
    )
    assert asked.probabilities is not None
    assert not_asked.probabilities is None


def test_a_batch_stops_at_its_row_limit(forest, rows):
    batcher = Batcher(loaded(forest), max_rows=4, max_wait_ms=2000)
    done = together(batcher, [job(rows[i : i + 1]) for i in range(8)])

    assert all(j.batch_size <= 4 for j in done)
    assert sum(1 / j.batch_size for j in done) >= 2  # two batches at least


def test_a_lone_request_does_not_wait_for_company(forest, rows):
    batcher = Batcher(loaded(forest), max_rows=32, max_wait_ms=60_000)
    batcher.expect()
    started = time.monotonic()
    result = batcher.predict(job(rows[0:1]))
    assert result.batch_size == 1
    assert time.monotonic() - started < 30  # not the minute it may wait


def test_one_bad_request_fails_alone_and_the_others_are_answered(forest, rows):
    bad = rows[0:1].copy()
    bad[0, 0] = np.inf  # the forest refuses infinity: the whole call raises
    batcher = Batcher(loaded(forest), max_rows=32, max_wait_ms=2000)
    done = together(batcher, [job(rows[1:2]), job(bad), job(rows[2:3])])

    assert isinstance(done[1], ModelRejectedInput)
    for alone, result in ((rows[1:2], done[0]), (rows[2:3], done[2])):
        assert result.predictions.tobytes() == forest.predict(alone).tobytes()


def test_a_failed_batch_is_split_in_halves_so_the_innocent_still_share_calls(
    forest, rows
):
    bad = rows[0:1].copy()
    bad[0, 0] = np.inf
    batcher = Batcher(loaded(forest), max_rows=32, max_wait_ms=2000)
    sent = [job(rows[i : i + 1]) for i in range(1, 8)]
    sent.insert(5, job(bad))  # eight requests, the sixth refused
    done = together(batcher, sent)

    assert isinstance(done[5], ModelRejectedInput)
    good = [d for i, d in enumerate(done) if i != 5]
    for result, index in zip(good, range(1, 8), strict=True):
        alone = rows[index : index + 1]
        assert result.predictions.tobytes() == forest.predict(alone).tobytes()
    # 8 -> 4 + 4 (the first half answered together) -> 2 + 2 -> 1 + 1
    assert sorted(r.batch_size for r in good) == [1, 2, 2, 4, 4, 4, 4]


class SlowOnMarker:
    """Busy in Python (interruptible) while a row's first value is 99."""

    n_features_in_ = 2

    def predict(self, x):
        x = np.asarray(x)
        if (x[:, 0] == 99).any():
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                pass
        return x[:, 1] * 2


def test_a_slow_request_times_out_alone_inside_a_batch(settings):
    settings.MODELHUB_PREDICT_TIMEOUT = 0.3
    batcher = Batcher(loaded(SlowOnMarker()), max_rows=32, max_wait_ms=2000)
    fast_one, slow, fast_two = together(
        batcher,
        [
            job(np.array([[1.0, 5.0]]), proba=False),
            job(np.array([[99.0, 1.0]]), proba=False),
            job(np.array([[2.0, 7.0]]), proba=False),
        ],
    )
    assert isinstance(slow, PredictionTimeout)
    assert list(fast_one.predictions) == [10.0]
    assert list(fast_two.predictions) == [14.0]


def test_versions_never_share_a_batch(forest, rows, settings):
    settings.MODELHUB_THREADS = 8
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(500, 20, random_state=1)
    other = RandomForestClassifier(10, random_state=1).fit(x, y)
    v1, v2 = loaded(forest, version_id=101), loaded(other, version_id=102, number=2)
    first, second = batching.batcher_for(v1, v1.ref), batching.batcher_for(v2, v2.ref)

    assert first is not second
    assert first.loaded is v1 and second.loaded is v2
    results: dict[str, Any] = {}

    def send(name: str, batcher: Batcher) -> None:
        batcher.expect()
        results[name] = batcher.predict(job(rows[0:1]))

    threads = [
        threading.Thread(target=send, args=("v1", first)),
        threading.Thread(target=send, args=("v2", second)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results["v1"].predictions.tobytes() == forest.predict(rows[0:1]).tobytes()
    assert results["v2"].predictions.tobytes() == other.predict(rows[0:1]).tobytes()


def test_no_batcher_for_one_request_at_a_time_or_a_model_whose_bits_would_move(
    forest, settings
):
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(100, 20, random_state=0)
    linear = loaded(LogisticRegression().fit(x, y), version_id=201)
    settings.MODELHUB_THREADS = 1
    assert (
        batching.batcher_for(loaded(forest, version_id=202), loaded(forest).ref) is None
    )
    settings.MODELHUB_THREADS = 8
    assert batching.batcher_for(linear, linear.ref) is None


def test_a_route_with_batching_off_has_no_batcher(forest, settings):
    settings.MODELHUB_THREADS = 8
    model = loaded(forest, version_id=301)
    off = VersionRef(**{**model.ref.__dict__, "batch_max_rows": 0})
    assert batching.batcher_for(model, off) is None


def test_new_settings_make_a_new_batcher(forest, settings):
    settings.MODELHUB_THREADS = 8
    model = loaded(forest, version_id=401)
    first = batching.batcher_for(model, model.ref)
    assert batching.batcher_for(model, model.ref) is first
    wider = VersionRef(**{**model.ref.__dict__, "batch_max_rows": 64})
    second = batching.batcher_for(model, wider)
    assert second is not first and second.max_rows == 64


def test_a_fractional_wait_keeps_its_batcher(forest, settings):
    """Compared as given: 63.7 ms, not 63.7 / 1000 * 1000 (63.699999...)."""
    settings.MODELHUB_THREADS = 8
    model = loaded(forest, version_id=501)
    short = VersionRef(**{**model.ref.__dict__, "batch_max_wait_ms": 63.7})
    assert batching.batcher_for(model, short) is batching.batcher_for(model, short)
