"""What a loaded estimator is: kind, classes, input schema, and a smoke test.

Free of Django: it runs inside the preflight child process.
"""

from __future__ import annotations

from typing import Any, TypedDict

import numpy as np

from .jsonvalues import to_json_value
from .wrappers import ModelWrapper

NUMBER = "number"
STRING = "string"
MAX_CATEGORIES = 100

_MLFLOW_TYPES = {
    "double": NUMBER,
    "float": NUMBER,
    "long": NUMBER,
    "integer": NUMBER,
    "int": NUMBER,
    "number": NUMBER,
    "boolean": NUMBER,
    "string": STRING,
    "str": STRING,
}


class Feature(TypedDict, total=False):
    name: str
    type: str
    categories: list[Any]


class InputSchema(TypedDict):
    features: list[Feature]
    named: bool
    source: str
    allow_nan: bool


class Description(TypedDict):
    kind: str
    estimator: str
    classes: list[Any] | None
    input_schema: InputSchema


class SchemaError(ValueError):
    """Metadata describes an input schema we cannot use."""


def class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def detect_kind(estimator: Any) -> str:
    from sklearn.base import (
        is_classifier,
        is_clusterer,
        is_outlier_detector,
        is_regressor,
    )

    for kind, test in (
        ("classifier", is_classifier),
        ("regressor", is_regressor),
        ("clusterer", is_clusterer),
        ("outlier_detector", is_outlier_detector),
    ):
        try:
            if test(estimator):
                return kind
        except Exception:  # noqa: BLE001, S112 - foreign objects may lack tags
            continue
    return "other"


def _classes(estimator: Any) -> list[Any] | None:
    try:
        classes = estimator.classes_
    except Exception:  # noqa: BLE001 - a property may raise for unfitted parts
        return None
    if classes is None:
        return None
    # A multi-output classifier's per-output arrays may differ in length.
    return to_json_value(list(classes) if _per_output(classes) else np.asarray(classes))


def _per_output(classes: Any) -> bool:
    return isinstance(classes, (list, tuple)) and any(
        isinstance(c, np.ndarray) for c in classes
    )


def has_class_probabilities(estimator: Any) -> bool:
    """``predict_proba`` gives one rectangular array of probabilities.

    A multi-output classifier whose outputs have different numbers of classes
    gives one array per output, each as wide as its classes: no single tensor
    (V2's ``predict_proba``) or row of ``probabilities`` holds them, so such
    models answer predictions only.
    """
    if not callable(getattr(estimator, "predict_proba", None)):
        return False
    try:
        classes = getattr(estimator, "classes_", None)
    except Exception:  # noqa: BLE001 - a property may raise for unfitted parts
        return True
    return not _per_output(classes) or len({len(c) for c in classes}) == 1


def _allow_nan(estimator: Any) -> bool:
    try:
        from sklearn.utils import get_tags

        return bool(get_tags(estimator).input_tags.allow_nan)
    except Exception:  # noqa: BLE001 - not an sklearn estimator
        return False


def _string_categories(estimator: Any, names: list[str]) -> dict[str, list[Any]]:
    """Columns that feed an encoder whose categories are strings."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    found: dict[str, list[Any]] = {}
    if isinstance(estimator, ModelWrapper):
        return _string_categories(estimator.model, names)
    if isinstance(estimator, Pipeline):
        for _, step in estimator.steps:
            if step not in (None, "passthrough"):
                return _string_categories(step, names)
        return found
    if isinstance(estimator, ColumnTransformer):
        indices = getattr(estimator, "_transformer_to_input_indices", {})
        for name, transformer, _ in getattr(estimator, "transformers_", []):
            if transformer in ("drop", "passthrough"):
                continue
            sub = [names[i] for i in indices.get(name, []) if i < len(names)]
            found.update(_string_categories(transformer, sub))
        return found
    if isinstance(estimator, FeatureUnion):
        for _, transformer in estimator.transformer_list:
            if transformer not in ("drop", "passthrough"):
                found.update(_string_categories(transformer, names))
        return found
    categories = getattr(estimator, "categories_", None)
    if isinstance(categories, list) and len(categories) == len(names):
        for name, cats in zip(names, categories, strict=True):
            values = [c for c in np.asarray(cats).tolist() if isinstance(c, str)]
            if values:
                found[name] = values[:MAX_CATEGORIES]
    return found


def check_metadata(metadata: dict[str, Any]) -> None:
    """Raise SchemaError if the schema or example in the metadata is unusable."""
    _schema_from_metadata(metadata)
    example_records(metadata)


def _schema_from_metadata(metadata: dict[str, Any]) -> list[Feature] | None:
    given = metadata.get("input_schema")
    if given is None and isinstance(metadata.get("signature"), dict):
        given = metadata["signature"].get("inputs")
    if given is None:
        return None
    return normalize_features(given)


def normalize_features(given: Any) -> list[Feature]:
    """Accept a features list or {"features": [...]}, MLflow types included."""
    if isinstance(given, dict):
        given = given.get("features")
    if not isinstance(given, list) or not given:
        raise SchemaError("input_schema must be a non-empty list of features")
    features: list[Feature] = []
    for item in given:
        if isinstance(item, str):
            features.append({"name": item, "type": NUMBER})
            continue
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise SchemaError("each input_schema feature needs a 'name'")
        kind = str(item.get("type", NUMBER)).lower()
        if kind not in _MLFLOW_TYPES:
            raise SchemaError(f"feature {item['name']!r} has unknown type {kind!r}")
        feature: Feature = {"name": item["name"], "type": _MLFLOW_TYPES[kind]}
        if isinstance(item.get("categories"), list):
            feature["categories"] = item["categories"][:MAX_CATEGORIES]
        features.append(feature)
    names = [f["name"] for f in features]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SchemaError(f"duplicate feature names: {', '.join(duplicates)}")
    return features


def example_records(metadata: dict[str, Any]) -> list[Any] | None:
    example = metadata.get("input_example")
    if example is None:
        return None
    if isinstance(example, dict):
        return [example]
    if isinstance(example, list) and example:
        return example
    raise SchemaError("input_example must be a record or a non-empty list")


def _schema_from_example(records: list[Any]) -> list[Feature] | None:
    first = records[0]
    if not isinstance(first, dict):
        return None
    return [
        {"name": str(k), "type": STRING if isinstance(v, str) else NUMBER}
        for k, v in first.items()
    ]


def infer_schema(estimator: Any, metadata: dict[str, Any]) -> InputSchema:
    """Schema from metadata if given, else from the fitted estimator.

    For a model fitted with feature names, the names must match and the
    fitted order wins: positional inputs and float arrays follow it.
    """
    names_in = getattr(estimator, "feature_names_in_", None)
    fitted = (
        [str(n) for n in np.asarray(names_in).tolist()] if names_in is not None else []
    )
    allow_nan = _allow_nan(estimator)
    strings = _string_categories(estimator, fitted) if fitted else {}
    features = _schema_from_metadata(metadata)
    source = "metadata"
    if features is None:
        records = example_records(metadata)
        features = _schema_from_example(records) if records is not None else None
        source = "input_example"
    if features is not None:
        if fitted:
            features = _in_fitted_order(features, fitted)
            for feature in features:
                if feature["name"] in strings and "categories" not in feature:
                    feature["categories"] = strings[feature["name"]]
        return {
            "features": features,
            "named": bool(fitted),
            "source": source,
            "allow_nan": allow_nan,
        }
    if fitted:
        features = []
        for name in fitted:
            if name in strings:
                features.append(
                    {"name": name, "type": STRING, "categories": strings[name]}
                )
            else:
                features.append({"name": name, "type": NUMBER})
        return {
            "features": features,
            "named": True,
            "source": "feature_names_in_",
            "allow_nan": allow_nan,
        }
    count = getattr(estimator, "n_features_in_", None)
    if isinstance(count, (int, np.integer)) and count > 0:
        return {
            "features": [{"name": f"f{i}", "type": NUMBER} for i in range(int(count))],
            "named": False,
            "source": "n_features_in_",
            "allow_nan": allow_nan,
        }
    return {"features": [], "named": False, "source": "unknown", "allow_nan": allow_nan}


def _in_fitted_order(features: list[Feature], fitted: list[str]) -> list[Feature]:
    by_name = {f["name"]: f for f in features}
    missing = [n for n in fitted if n not in by_name]
    extra = [n for n in by_name if n not in fitted]
    if missing or extra:
        raise SchemaError(
            "the metadata's features differ from the model's feature names"
            + (f"; missing {missing[:10]}" if missing else "")
            + (f"; unknown {extra[:10]}" if extra else "")
        )
    return [by_name[name] for name in fitted]


def describe(estimator: Any, metadata: dict[str, Any]) -> Description:
    return {
        "kind": detect_kind(estimator),
        "estimator": class_path(estimator),
        "classes": _classes(estimator),
        "input_schema": infer_schema(estimator, metadata),
    }


def smoke_input(schema: InputSchema, metadata: dict[str, Any]) -> tuple[Any, str]:
    """A one-row input for the smoke prediction, or (None, why not)."""
    features = schema["features"]
    records = example_records(metadata)
    if records is not None:
        first = records[0]
        if isinstance(first, dict):
            return frame_or_array([first], schema), ""
        if isinstance(first, list):
            return np.asarray(
                [first], dtype=object if _has_strings(first) else float
            ), ""
    if not features:
        return None, "the number of input features is unknown"
    row: dict[str, Any] = {}
    for feature in features:
        value = placeholder(feature)
        if value is None:
            return None, f"no example value for string feature {feature['name']!r}"
        row[feature["name"]] = value
    return frame_or_array([row], schema), ""


def placeholder(feature: Feature, unknown: Any = None) -> Any:
    """A value of the feature's type for a made-up row: 0.0, or a string
    feature's first category (``unknown`` when it has none). The smoke test,
    the catalog's example and the pages' snippets fill rows alike."""
    if feature.get("type", NUMBER) == NUMBER:
        return 0.0
    categories = feature.get("categories") or []
    return categories[0] if categories else unknown


def _has_strings(values: list[Any]) -> bool:
    return any(isinstance(v, str) for v in values)


def frame_or_array(records: list[dict[str, Any]], schema: InputSchema) -> Any:
    """Records as the model takes them: a DataFrame when it was fitted on
    names or reads strings, else a float array in schema order."""
    names = [f["name"] for f in schema["features"]] or list(records[0])
    if schema["named"] or any(f["type"] == STRING for f in schema["features"]):
        import pandas as pd

        return pd.DataFrame.from_records(records, columns=names)
    return np.asarray([[r.get(n) for n in names] for r in records], dtype=float)


def smoke_test(estimator: Any, schema: InputSchema, metadata: dict[str, Any]) -> str:
    """Predict on a generated row; raise if the model fails or returns NaN."""
    data, skipped = smoke_input(schema, metadata)
    if data is None:
        return f"skipped: {skipped}"
    result = np.asarray(estimator.predict(data))
    if result.shape[:1] != (len(data),):
        raise ValueError(
            f"predict returned shape {result.shape} for {len(data)} input row(s)"
        )
    if result.dtype.kind in "fc" and not np.all(np.isfinite(result)):
        raise ValueError("predict returned a non-finite value (NaN or infinity)")
    return "passed"


def selects_columns_by_name(estimator: Any) -> bool:
    """True if a ColumnTransformer inside picks columns by name (needs a frame)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    if isinstance(estimator, ModelWrapper):
        return selects_columns_by_name(estimator.model)
    if isinstance(estimator, Pipeline):
        return any(selects_columns_by_name(step) for _, step in estimator.steps)
    if isinstance(estimator, FeatureUnion):
        return any(selects_columns_by_name(t) for _, t in estimator.transformer_list)
    if isinstance(estimator, ColumnTransformer):
        for _, transformer, columns in estimator.transformers:
            if callable(columns) or isinstance(columns, str):
                return True
            if isinstance(columns, (list, tuple)) and any(
                isinstance(c, str) for c in columns
            ):
                return True
            if selects_columns_by_name(transformer):
                return True
    return False
