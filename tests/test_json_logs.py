"""MODELHUB_LOG_FORMAT=json: one JSON object per log line, Django's and
gunicorn's alike, naming the request, model and version that wrote it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from monitoring import logcontext
from monitoring.record import PredictionRecord
from tests.servers import (
    IRIS_ROW,
    PROJECT_ROOT,
    Install,
    Server,
    corrupt_version_file,
    start_gunicorn,
)

KEYS = {"time", "level", "logger", "message"}


def json_lines(text: str) -> list[dict]:
    """Every line of ``text`` as a JSON object; fails on the first that is not."""
    objects = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(value, dict), f"line {number}: {line!r}"
        assert KEYS <= value.keys(), f"line {number} lacks {KEYS - value.keys()}"
        objects.append(value)
    return objects


def test_json_logs_are_one_object_per_line_with_the_request_model_and_version(
    install: Install, gunicorn_servers: list[Server]
):
    """A pinned version whose file was altered: its load fails inside the
    request, and that error line names the request, model and version."""
    corrupt_version_file(install, 2)
    env = {**install.env, "MODELHUB_LOG_FORMAT": "json", "MODELHUB_LOG_LEVEL": "INFO"}
    server = start_gunicorn(env, install.run_dir, workers=2, args=())

    response = server.post("/api/predict/iris/v2/", {"data": IRIS_ROW})
    served = server.post("/api/predict/iris/", {"data": IRIS_ROW})
    assert server.stop() == 0

    assert response.status == 503
    assert response.json()["code"] == "model_unavailable"
    assert served.status == 200
    lines = json_lines(server.log_text())
    request_id = response.headers["X-Request-ID"]
    (error,) = [
        line
        for line in lines
        if line.get("request_id") == request_id and line["level"] == "ERROR"
    ]
    assert error["logger"] == "registry.loading"
    assert "sha256 mismatch for iris v2" in error["message"]
    assert (error["model"], error["version"]) == ("iris", 2)
    (access,) = [
        line
        for line in lines
        if line["logger"] == "gunicorn.access" and line.get("request_id") == request_id
    ]
    assert (access["method"], access["path"], access["status"]) == (
        "POST",
        "/api/predict/iris/v2/",
        503,
    )
    assert isinstance(access["duration_ms"], int)
    loggers = {line["logger"] for line in lines}
    assert {"gunicorn.error", "gunicorn.access", "registry.warmup"} <= loggers
    outside = [line for line in lines if line["logger"] == "registry.warmup"]
    assert all("request_id" not in line for line in outside)


def test_log_lines_outside_a_request_name_none(caplog):
    log = logging.getLogger("tests.json_logs")
    log.addFilter(logcontext.RequestContextFilter())
    with caplog.at_level(logging.INFO, logger="tests.json_logs"):
        log.info("before")
        with logcontext.request("abc"):
            log.info("inside, no prediction yet")
            logcontext.note_prediction(PredictionRecord(slug="iris"))
            log.info("resolving")
            logcontext.note_prediction(PredictionRecord(slug="iris", version=3))
            log.info("resolved")
        log.info("after")

    context = [
        {
            key: getattr(record, key)
            for key in ("request_id", "model", "version")
            if hasattr(record, key)
        }
        for record in caplog.records
    ]
    assert context == [
        {},
        {"request_id": "abc"},
        {"request_id": "abc", "model": "iris"},
        {"request_id": "abc", "model": "iris", "version": 3},
        {},
    ]


def test_an_unknown_log_format_refuses_to_start(tmp_path):
    from tests.servers import clean_env

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_ROOT,
        env=clean_env(tmp_path, MODELHUB_LOG_FORMAT="yaml"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "MODELHUB_LOG_FORMAT='yaml': expected one of text, json" in result.stderr
