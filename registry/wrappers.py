"""ModelWrapper: custom pre/post-processing around any fitted estimator.

For users who need more than an sklearn Pipeline. Subclass it, override
``preprocess`` / ``postprocess`` (or ``predict``), then upload the pickled
instance like any model. A pickle stores a class by its import path, so the
subclass must be importable where ModelHub loads it: either pickle it *by
value* with cloudpickle (``cloudpickle.register_pickle_by_value(module)``),
or put its module in a directory listed in MODELHUB_PLUGIN_DIRS. See
docs/custom-models.md.

Free of Django on purpose: the preflight child imports it.
"""

from __future__ import annotations

from typing import Any


class ModelWrapper:
    """Wraps ``model``; ModelHub calls ``predict`` (and ``predict_proba``)."""

    #: Receive a pandas DataFrame (columns in schema order) rather than a float
    #: array when the wrapped model was fitted with feature names.
    needs_dataframe = True

    def __init__(self, model: Any) -> None:
        self.model = model

    def preprocess(self, X: Any) -> Any:  # noqa: N803 - sklearn's convention
        """Transform the decoded input before the model sees it."""
        return X

    def postprocess(self, y: Any) -> Any:
        """Transform predictions before they are encoded to JSON."""
        return y

    def postprocess_proba(self, probabilities: Any) -> Any:
        return probabilities

    def predict(self, X: Any) -> Any:  # noqa: N803
        return self.postprocess(self.model.predict(self.preprocess(X)))

    @property
    def predict_proba(self) -> Any:
        """Present only when the wrapped model has it, so hasattr() tells."""
        inner = getattr(self.model, "predict_proba", None)
        if inner is None:
            raise AttributeError("the wrapped model has no predict_proba")
        return lambda X: self.postprocess_proba(inner(self.preprocess(X)))  # noqa: N803

    # The wrapped model's schema, classes and tags describe the wrapper too.
    @property
    def feature_names_in_(self) -> Any:
        return self.model.feature_names_in_

    @property
    def n_features_in_(self) -> int:
        return self.model.n_features_in_

    @property
    def classes_(self) -> Any:
        return self.model.classes_

    def __sklearn_tags__(self) -> Any:
        return self.model.__sklearn_tags__()
