"""Models that misbehave in web workers while loading or predicting.

Each model passes the preflight (it behaves where DJANGO_SETTINGS_MODULE is
unset, as in the preflight's scrubbed environment) and misbehaves in the
workers of a gunicorn started with a 0.5 s prediction limit. Those that leave
the worker alive are held to ``Hostile.assert_refused``. Those that end or
hang it in native code cannot be answered by the worker: their tests assert
what is left instead — no HTTP response, a log row written by the master, the
worker replaced, the rest of the registry serving, and after
MODELHUB_MAX_MODEL_CRASHES crashes the version marked invalid (a JSON 503).
"""

from __future__ import annotations

import http.client
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import joblib
import pytest

from tests.adversarial.conftest import Hostile
from tests.servers import IRIS_ROW, Install, copy_install, manage, start_gunicorn

MISBEHAVING = '''
import os
import sys
import time

import numpy as np

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)",
            "petal width (cm)"]


def in_a_web_worker():
    return bool(os.environ.get("DJANGO_SETTINGS_MODULE"))


class Misbehaves:
    """Predicts zeros; in a web worker, misbehaves as ``how`` says first."""

    n_features_in_ = 4
    feature_names_in_ = np.array(FEATURES, dtype=object)

    def __init__(self, how):
        self.how = how

    def fit(self, x, y=None):
        return self

    def predict(self, x):
        if in_a_web_worker():
            getattr(self, self.how)()
        return np.zeros(len(x))

    def behaves(self):
        pass

    def exits(self):
        sys.exit(0)

    def interrupts(self):
        raise KeyboardInterrupt

    def swallows_the_limit(self):
        try:
            time.sleep(30)
        except BaseException:
            time.sleep(30)

    def hangs_in_native_code(self):
        sum(range(10**15))  # one C loop holding the GIL: no signal gets in

    def ends_its_process(self):
        os._exit(7)


def exits_while_loading(model):
    if in_a_web_worker():
        sys.exit(3)
    return model


class ExitsOnLoad:
    def __init__(self, model):
        self.model = model

    def __reduce__(self):
        return (exits_while_loading, (self.model,))
'''

HOW = (
    "exits",
    "interrupts",
    "swallows_the_limit",
    "hangs_in_native_code",
    "ends_its_process",
)


@pytest.fixture(scope="module")
def misbehaving_server(
    iris_install: Install, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hostile]:
    run_dir: Path = tmp_path_factory.mktemp("misbehaving")
    plugins = run_dir / "plugins"
    plugins.mkdir()
    (plugins / "misbehaving.py").write_text(MISBEHAVING)
    sys.path.insert(0, str(plugins))
    try:
        import misbehaving

        files = {how: run_dir / f"{how}.joblib" for how in HOW}
        for how, path in files.items():
            joblib.dump(misbehaving.Misbehaves(how), path)
        good = run_dir / "behaves.joblib"
        joblib.dump(misbehaving.Misbehaves("behaves"), good)
        exits_on_load = run_dir / "exits-on-load.joblib"
        joblib.dump(
            misbehaving.ExitsOnLoad(misbehaving.Misbehaves("behaves")), exits_on_load
        )
    finally:
        sys.path.remove(str(plugins))
        sys.modules.pop("misbehaving", None)
    with copy_install(iris_install, run_dir / "install") as install:
        install.env["MODELHUB_PLUGIN_DIRS"] = str(plugins)
        for how, path in files.items():
            manage(install.env, "loadmodel", str(path), "--slug", how)
        manage(install.env, "loadmodel", str(good), "--slug", "exits-on-load")
        manage(install.env, "loadmodel", str(exits_on_load), "--slug", "exits-on-load")
        env = {**install.env, "MODELHUB_PREDICT_TIMEOUT": "0.5"}
        server = start_gunicorn(env, run_dir, workers=2)
        try:
            yield Hostile(server, install)
        finally:
            server.stop()


@pytest.fixture
def hostile(misbehaving_server: Hostile) -> Hostile:
    return misbehaving_server


def predict(hostile: Hostile, slug: str):
    return hostile.send("POST", f"/api/predict/{slug}/", {"data": IRIS_ROW})


def test_pickle_that_exits_while_loading_is_refused_and_workers_keep_serving(
    hostile: Hostile,
) -> None:
    """Both workers preloaded it (and lived): v1, the last good, serves."""
    sent = predict(hostile, "exits-on-load")
    assert sent.response.status == 200, sent.response.text[:2000]
    assert sent.response.headers["X-Model-Version"] == "1"
    ((load_error,),) = hostile.install.query(
        "SELECT v.load_error FROM registry_modelversion v JOIN registry_mlmodel m "
        "ON m.id = v.model_id WHERE m.slug = 'exits-on-load' AND v.number = 2"
    )
    assert "SystemExit" in load_error
    assert hostile.server.get("/readyz").status == 200
    hostile.assert_still_serving()


@pytest.mark.parametrize("slug", ["exits", "interrupts"])
def test_predict_that_raises_systemexit_or_keyboardinterrupt_answers_422(
    hostile: Hostile, slug: str
) -> None:
    sent = predict(hostile, slug)
    hostile.assert_refused(sent, 422, "model_error")
    assert "SystemExit" in sent.response.text or "KeyboardInterrupt" in (
        sent.response.text
    )


def test_predict_that_swallows_the_time_limit_still_answers_504_in_time(
    hostile: Hostile,
) -> None:
    sent = predict(hostile, "swallows_the_limit")
    hostile.assert_refused(sent, 504, "prediction_timeout")


def no_response(hostile: Hostile, slug: str, request_id: str) -> float:
    """Sends one prediction the worker cannot answer; the seconds until the
    connection closed without a response."""
    started = time.monotonic()
    with pytest.raises((http.client.HTTPException, OSError)):
        hostile.server.post(
            f"/api/predict/{slug}/",
            {"data": IRIS_ROW},
            headers={"X-Request-ID": request_id},
            timeout=20,
        )
    return time.monotonic() - started


def wait_for_new_worker(hostile: Hostile, booted: int) -> None:
    """A replacement worker takes requests once its preload is done (every
    worker logs the exits-on-load fallback as it finishes preloading)."""
    server = hostile.server
    server.wait_until_booted(booted + 1)
    server.wait_for(
        lambda: server.log_text().count("preloaded exits-on-load") >= booted + 1,
        "the new worker's preload",
    )


def crashes_of(hostile: Hostile, slug: str) -> tuple[int, str]:
    ((crashes, status),) = hostile.install.query(
        "SELECT v.crashes, v.status FROM registry_modelversion v JOIN "
        "registry_mlmodel m ON m.id = v.model_id WHERE m.slug = %s",
        (slug,),
    )
    return crashes, status


def test_predict_hung_in_native_code_is_ended_by_the_watchdog_and_logged(
    hostile: Hostile,
) -> None:
    """Limit 0.5 s + 1 s grace: the watchdog SIGKILLs the worker; the master
    logs a 504 for the request and counts the crash; a new worker serves."""
    booted = len(hostile.server.booted_workers())
    seconds = no_response(hostile, "hangs_in_native_code", "native-hang-1")
    assert seconds < 5, f"ended after {seconds:.1f}s"
    assert hostile.logged_statuses("native-hang-1") == [504]
    ((code,),) = hostile.install.query(
        "SELECT error_code FROM api_requestlog WHERE request_id = 'native-hang-1'"
    )
    assert code == "prediction_timeout"
    assert crashes_of(hostile, "hangs_in_native_code") == (1, "ready")
    wait_for_new_worker(hostile, booted)
    hostile.assert_still_serving()


def test_model_that_ends_its_process_three_times_is_marked_invalid(
    hostile: Hostile,
) -> None:
    for attempt in range(3):
        booted = len(hostile.server.booted_workers())
        no_response(hostile, "ends_its_process", f"ends-{attempt}")
        assert hostile.logged_statuses(f"ends-{attempt}") == [503]
        wait_for_new_worker(hostile, booted)
    assert crashes_of(hostile, "ends_its_process") == (3, "invalid")
    sent = predict(hostile, "ends_its_process")
    hostile.assert_refused(sent, 503, "model_unavailable")
