"""Demo models trained from datasets scikit-learn ships (no downloads)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib

from . import actions
from .models import Activation, MLModel, ModelVersion


def _iris() -> tuple[Any, dict[str, Any]]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    data = load_iris(as_frame=True)
    labels = data.target.map(dict(enumerate(data.target_names)))
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, labels, test_size=0.25, random_state=0, stratify=labels
    )
    model = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    return model, {
        "dataset": "iris (scikit-learn)",
        "metrics": {"accuracy": round(float(model.score(x_test, y_test)), 4)},
        "input_example": x_test.iloc[0].to_dict(),
    }


def _diabetes() -> tuple[Any, dict[str, Any]]:
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import train_test_split

    data = load_diabetes(as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0
    )
    model = RandomForestRegressor(n_estimators=50, max_depth=6, random_state=0)
    model.fit(x_train, y_train)
    return model, {
        "dataset": "diabetes (scikit-learn)",
        "metrics": {"r2": round(float(model.score(x_test, y_test)), 4)},
        "input_example": x_test.iloc[0].to_dict(),
    }


def _wine() -> tuple[Any, dict[str, Any]]:
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_wine()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x_train, y_train)
    return model, {
        "dataset": "wine (scikit-learn), fitted on a numpy array",
        "metrics": {"accuracy": round(float(model.score(x_test, y_test)), 4)},
    }


DEMOS: dict[str, tuple[str, str, Callable[[], tuple[Any, dict[str, Any]]]]] = {
    "iris": ("Iris species", "LogisticRegression on the iris measurements.", _iris),
    "diabetes": (
        "Diabetes progression",
        "RandomForestRegressor on the diabetes dataset.",
        _diabetes,
    ),
    "wine": (
        "Wine cultivar",
        "Scaled LogisticRegression on positional wine features.",
        _wine,
    ),
}


def install_demos() -> list[ModelVersion]:
    """Register each demo model that is not in the registry yet."""
    created: list[ModelVersion] = []
    with tempfile.TemporaryDirectory(prefix="modelhub-demo-") as workdir:
        for slug, (name, description, train) in DEMOS.items():
            if MLModel.objects.filter(slug=slug).exists():
                continue
            estimator, metadata = train()
            path = Path(workdir) / f"{slug}.joblib"
            joblib.dump(estimator, path)
            with path.open("rb") as source:
                created.append(
                    actions.register_version(
                        slug=slug,
                        source=source,
                        filename=path.name,
                        metadata=metadata,
                        channel=Activation.Channel.CLI,
                        name=name,
                        description=description,
                    )
                )
    return created
