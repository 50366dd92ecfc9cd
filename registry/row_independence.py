"""Which estimators give every row the same bits alone or in a batch.

Adaptive batching promises results identical, bit for bit, to unbatched
ones. That holds where each row is computed on its own (a tree walks one row
at a time; a scaler works element by element), not where rows meet a
matrix product: BLAS sums in a different order for one row than for many,
and a LogisticRegression's probabilities move in the last bit. So batching is
offered to the families below only (tests/registry/test_row_independence.py
checks each against its unbatched self), and a model outside them is served
unbatched whatever its settings.
"""

from __future__ import annotations

from typing import Any

# Final estimators: trees and ensembles of trees. Their predict_proba /
# decision_function combine per-row tree outputs.
_TREE_MODULES = (
    "sklearn.tree.",
    "sklearn.ensemble._forest",
    "sklearn.ensemble._gb",
    "sklearn.ensemble._hist_gradient_boosting.",
    "sklearn.ensemble._iforest",
    "xgboost.",
    "lightgbm.",
)
# Transformers that work element by element or row by row without products.
_ELEMENTWISE = {
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._data.MinMaxScaler",
    "sklearn.preprocessing._data.MaxAbsScaler",
    "sklearn.preprocessing._data.RobustScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.impute._base.MissingIndicator",
    "sklearn.feature_selection._variance_threshold.VarianceThreshold",
}
_COMPOSITES = {
    "sklearn.pipeline.Pipeline",
    "sklearn.compose._column_transformer.ColumnTransformer",
}


def _path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def rows_are_independent(estimator: Any) -> bool:
    """True when predicting rows together gives each the bits it gets alone.

    Unknown code (a ModelWrapper subclass, a plugin's class) is never assumed
    to be: it may do anything across rows.
    """
    path = _path(estimator)
    if path in _COMPOSITES:
        return all(_step_is_independent(step) for step in _steps(estimator))
    if path.startswith("sklearn.ensemble._weight_boosting"):
        # AdaBoost combines its estimators' per-row outputs element by element.
        bases = getattr(estimator, "estimators_", None) or []
        return bool(bases) and all(rows_are_independent(b) for b in bases)
    return path.startswith(_TREE_MODULES)


def _steps(composite: Any) -> list[Any]:
    if hasattr(composite, "steps"):
        return [step for _, step in composite.steps]
    fitted = getattr(composite, "transformers_", None) or composite.transformers
    return [step for _, step, _ in fitted]


def _step_is_independent(step: Any) -> bool:
    if step is None or step in ("drop", "passthrough"):
        return True
    path = _path(step)
    if path in _ELEMENTWISE:
        return True
    if path == "sklearn.preprocessing._function_transformer.FunctionTransformer":
        return step.func is None  # the identity: a ColumnTransformer's remainder
    return rows_are_independent(step)
