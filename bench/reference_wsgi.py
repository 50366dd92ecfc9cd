"""The floor of this stack: a bare WSGI app doing only JSON -> numpy ->
predict -> JSON, run by bench/suite.py under gunicorn with ModelHub's own
gunicorn settings (bench/reference_gunicorn.py).

    BENCH_REFERENCE_MODELS="iris=/path/iris.joblib,rf20=/path/rf20.joblib" \\
        gunicorn --config bench/reference_gunicorn.py

POST /predict/<name>/ with ``{"dataframe_records": [{feature: value, ...}]}``
(one or many records; the same body ModelHub and MLflow accept) answers
``{"predictions": [...]}``. Features go into a float array in the order the
model was fitted with (``feature_names_in_``). No validation, no logging, no
routing beyond a dict lookup: what is left is the cost of the HTTP server,
the JSON library ModelHub uses (orjson) and the model. GET /readyz answers
200 once the models are loaded.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import joblib
import numpy as np
import orjson

# ModelHub silences the same warning: arrays go to DataFrame-fitted models.
warnings.filterwarnings(
    "ignore", message="X does not have valid feature names", category=UserWarning
)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _load(spec: str) -> dict[str, tuple[Any, list[str]]]:
    models = {}
    for item in filter(None, spec.split(",")):
        name, path = item.split("=", 1)
        model = joblib.load(path)
        models[name] = (model, [str(n) for n in model.feature_names_in_])
    return models


MODELS = _load(os.environ.get("BENCH_REFERENCE_MODELS", ""))


def _answer(start_response: StartResponse, status: str, body: bytes) -> Iterable[bytes]:
    start_response(
        status,
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def application(
    environ: dict[str, Any], start_response: StartResponse
) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/readyz":
        return _answer(start_response, "200 OK", b"{}")
    name = path.removeprefix("/predict/").strip("/")
    if environ["REQUEST_METHOD"] != "POST" or name not in MODELS:
        return _answer(start_response, "404 Not Found", b"{}")
    model, names = MODELS[name]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    records = orjson.loads(environ["wsgi.input"].read(length))["dataframe_records"]
    rows = np.array([[record[n] for n in names] for record in records], dtype=float)
    predictions = model.predict(rows).tolist()
    return _answer(start_response, "200 OK", orjson.dumps({"predictions": predictions}))
