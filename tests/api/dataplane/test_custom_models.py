"""ModelWrapper subclasses from user code, registered through the real preflight.

The user's module exists only while the model is built: the preflight child
and the web process must load the file without it (cloudpickle by value), or
find it on MODELHUB_PLUGIN_DIRS (pickle by reference).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import pickle
import shutil
import sys
import textwrap
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from registry import actions
from registry.exceptions import InvalidModel
from registry.inspection import describe
from registry.models import ModelVersion

pytestmark = pytest.mark.django_db

USER_MODULE = '''
"""A data scientist's own code: never installed on the server."""

import numpy as np

from registry.wrappers import ModelWrapper

NAMES = {0: "low", 1: "high"}


class Shout(ModelWrapper):
    """Lower-cases the text columns in, names and shouts the labels out."""

    def preprocess(self, X):
        X = X.copy()
        for column in ("city", "plan"):
            X[column] = X[column].str.lower()
        return X

    def postprocess(self, y):
        return np.array([NAMES[int(label)].upper() + "!" for label in y])

    @property
    def classes_(self):
        return np.array([NAMES[int(label)] for label in self.model.classes_])
'''

# The wrapper's schema comes from an example: the inner encoder's string
# categories are not inferred through a ModelWrapper (see the report).
METADATA = {
    "input_example": {"age": 30.0, "income": 52_000.0, "city": "Paris", "plan": "Pro"}
}
RECORDS = [
    {"age": 25.0, "income": 38_000.0, "city": "PARIS", "plan": "Free"},
    {"age": 61.0, "income": 71_000.0, "city": "Lyon", "plan": "PRO"},
    {"age": 44.0, "income": 50_500.0, "city": "NiCe", "plan": "pro"},
]


@dataclass
class UserModule:
    name: str
    directory: Path
    module: ModuleType | None

    def forget(self) -> None:
        """The server never had this code: drop it from this process."""
        if self.module is not None:
            with contextlib.suppress(ValueError):  # not registered by the test
                cloudpickle.unregister_pickle_by_value(self.module)
        self.module = None
        sys.modules.pop(self.name, None)
        while str(self.directory) in sys.path:
            sys.path.remove(str(self.directory))
        importlib.invalidate_caches()


@pytest.fixture
def user_module(tmp_path: Path) -> Iterator[UserModule]:
    """Writes the user's module to its own directory and imports it from there."""
    name = f"user_shout_{uuid.uuid4().hex[:8]}"
    directory = tmp_path / "user_code"
    directory.mkdir()
    (directory / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    sys.path.insert(0, str(directory))
    importlib.invalidate_caches()
    user = UserModule(name, directory, importlib.import_module(name))
    yield user
    user.forget()


@pytest.fixture(scope="module")
def inner_pipeline():
    """Refuses unknown categories, so un-lowercased input would fail loudly."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, 200).astype(float),
            "income": rng.normal(50_000, 12_000, 200),
            "city": rng.choice(["paris", "lyon", "nice"], 200),
            "plan": rng.choice(["free", "pro"], 200),
        }
    )
    target = (frame["income"] > 50_000).astype(int).to_numpy()
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="error"), ["city", "plan"]),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(frame, target)


def in_process_output(wrapper: Any) -> tuple[list[str], list[dict[str, float]]]:
    frame = pd.DataFrame.from_records(RECORDS)
    labels = [str(c) for c in wrapper.classes_]
    probabilities = [
        dict(zip(labels, row, strict=True)) for row in wrapper.predict_proba(frame)
    ]
    return wrapper.predict(frame).tolist(), probabilities


def post_records(client, slug: str, query: str = "") -> Any:
    return client.post(
        f"/api/predict/{slug}/{query}",
        data=json.dumps({"dataframe_records": RECORDS}),
        content_type="application/json",
    )


def write_metadata(tmp_path: Path) -> Path:
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(METADATA))
    return path


def assert_probabilities_match(
    actual: list[dict[str, float]], expected: list[dict[str, float]]
) -> None:
    assert [sorted(row) for row in actual] == [sorted(row) for row in expected]
    for got, want in zip(actual, expected, strict=True):
        assert got == pytest.approx(want)


def test_custom_model_pickled_by_value_serves_without_user_module(
    client, tmp_path, user_module, inner_pipeline
):
    wrapper = user_module.module.Shout(inner_pipeline)
    expected, expected_proba = in_process_output(wrapper)
    assert set(expected) <= {"LOW!", "HIGH!"}

    cloudpickle.register_pickle_by_value(user_module.module)
    model_file = tmp_path / "custom.pkl"
    with model_file.open("wb") as out:
        cloudpickle.dump(wrapper, out)
    shout_class = weakref.ref(type(wrapper))
    del wrapper
    user_module.forget()
    shutil.rmtree(user_module.directory)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(user_module.name)
    # Within one process cloudpickle hands back a class it still knows, so
    # the class must be gone for the web step below to prove anything.
    gc.collect()
    assert shout_class() is None

    # The real preflight: a separate interpreter that never saw the module.
    call_command(
        "loadmodel",
        str(model_file),
        "--slug",
        "shout",
        "--metadata",
        str(write_metadata(tmp_path)),
        stdout=StringIO(),
    )
    version = ModelVersion.objects.get(model__slug="shout")
    assert version.status == "ready"
    assert version.format == "pickle"
    assert version.smoke_test == "passed"
    assert version.estimator == f"{user_module.name}.Shout"
    assert version.kind == "classifier"
    assert version.classes == ["low", "high"]

    response = post_records(client, "shout")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["version"] == 1
    assert response["X-Model-Version"] == "1"
    assert body["predictions"] == expected
    assert "probabilities" not in body
    assert user_module.name not in sys.modules

    response = post_records(client, "shout", "?proba=1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["predictions"] == expected
    assert_probabilities_match(body["probabilities"], expected_proba)


def test_custom_model_pickled_by_reference_needs_plugin_dir(
    client, tmp_path, settings, user_module, inner_pipeline
):
    wrapper = user_module.module.Shout(inner_pipeline)
    expected, expected_proba = in_process_output(wrapper)
    model_file = tmp_path / "by_reference.pkl"
    model_file.write_bytes(pickle.dumps(wrapper))
    del wrapper
    user_module.forget()

    def register() -> ModelVersion:
        with model_file.open("rb") as source:
            return actions.register_version(
                slug="shout-ref",
                source=source,
                filename=model_file.name,
                metadata=METADATA,
            )

    settings.MODELHUB_PLUGIN_DIRS = []
    with pytest.raises(InvalidModel) as refused:
        register()
    assert refused.value.technical == (
        f"ModuleNotFoundError: No module named '{user_module.name}'"
    )
    assert not ModelVersion.objects.exists()

    # The preflight child gets the plugin dirs in its job.
    settings.MODELHUB_PLUGIN_DIRS = [str(user_module.directory)]
    version = register()
    assert version.status == "ready"
    assert version.estimator == f"{user_module.name}.Shout"

    # registry/apps.py adds MODELHUB_PLUGIN_DIRS to sys.path only at startup,
    # so overriding the setting here does not reach this (web) process: put
    # the directory on sys.path as a server started with it would have.
    sys.path.append(str(user_module.directory))
    response = post_records(client, "shout-ref", "?proba=1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["predictions"] == expected
    assert_probabilities_match(body["probabilities"], expected_proba)


def test_custom_model_schema_sees_string_columns_of_wrapped_pipeline(
    user_module, inner_pipeline
):
    wrapper = user_module.module.Shout(inner_pipeline)
    schema = describe(wrapper, {})["input_schema"]
    assert schema == describe(inner_pipeline, {})["input_schema"]
