"""MLflow models saved by mlflow itself, and what MLflow's scoring server answers."""

from __future__ import annotations

import functools
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.pyfunc.scoring_server import invocations

# mlflow warns on every pickle save; the tests choose the format on purpose.
logging.getLogger("mlflow").setLevel(logging.ERROR)


def save_mlflow_model(
    estimator: Any,
    path: Path,
    frame: pd.DataFrame | np.ndarray,
    *,
    serialization_format: str = "cloudpickle",
    example_rows: int = 2,
) -> Path:
    """``mlflow.sklearn.save_model`` with a signature and an input example."""
    signature = infer_signature(frame, estimator.predict(frame))
    example = frame[:example_rows] if example_rows else None
    mlflow.sklearn.save_model(
        estimator,
        str(path),
        serialization_format=serialization_format,
        signature=signature,
        input_example=example,
    )
    return path


def zip_directory(directory: Path, target: Path, *, top: str = "model") -> Path:
    """Zip a model directory as ``zip -r model.zip model/`` does: one top folder."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, f"{top}/{path.relative_to(directory).as_posix()}")
    return target


@functools.lru_cache(maxsize=16)
def _pyfunc(model_dir: str) -> Any:
    return mlflow.pyfunc.load_model(model_dir)


def mlflow_predictions(model_dir: Path, body: str | bytes, content_type: str) -> Any:
    """The predictions MLflow's own scoring server gives for this request body."""
    model = _pyfunc(str(model_dir))
    response = invocations(body, content_type, model, model.metadata.get_input_schema())
    assert response.status == 200, response.response
    return json.loads(response.response)["predictions"]


def mlflow_refuses(model_dir: Path, body: str | bytes, content_type: str) -> bool:
    """True if MLflow's scoring server answers this body with an error."""
    model = _pyfunc(str(model_dir))
    try:
        response = invocations(
            body, content_type, model, model.metadata.get_input_schema()
        )
    except mlflow.exceptions.MlflowException:
        return True
    return response.status >= 400
