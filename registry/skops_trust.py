"""Which types a skops file may hold, and the checks that make trusting them safe.

skops rebuilds an object from the file's data only, and refuses any type it
was not told to trust. It already trusts scikit-learn's estimators, losses
and numpy arrays. The types below are the rest of what scikit-learn's own
tree, forest, gradient-boosting, histogram-gradient-boosting and linear
models (alone or in a Pipeline / ColumnTransformer) need. The list is
written out here, from scikit-learn's and numpy's own modules; it is never
taken from an uploaded file. MODELHUB_SKOPS_TRUSTED_TYPES adds to it.

skops leaves the two tree types out of its defaults because scikit-learn's
compiled prediction code follows their node indices without bounds checks:
a crafted file could make ``predict`` read outside its arrays. So whenever
a file holds them, check_tree_structures() verifies, before the estimator is
used, that every node index, feature index and bitset index stays in range
and that every tree is reached through an estimator that checks the width of
its input. Free of Django: the preflight child imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

# Each entry: what needs it, and why loading it runs no code from the file.
DEFAULT_TRUSTED_TYPES: dict[str, str] = {
    "sklearn.tree._tree.Tree": (
        "decision trees, random forests, extra trees, gradient boosting: the "
        "nodes and values arrays (structure checked on load)"
    ),
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor": (
        "histogram gradient boosting: one tree's nodes and category bitsets "
        "(structure checked on load)"
    ),
    "numpy.dtype": (
        "OneHotEncoder / OrdinalEncoder and others record a dtype; skops "
        "rebuilds it from an empty array"
    ),
    "sklearn.utils._bunch.Bunch": (
        "VotingClassifier, StackingClassifier: a dict of fitted estimators"
    ),
}

TREE = "sklearn.tree._tree.Tree"
TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
_LEAF = -1


# Names that, trusted, would let a file call code of its choosing: evaluators,
# importers, attribute getters, the system, other deserializers.
_RUNS_CODE = (
    "builtins.",
    "operator.attrgetter",
    "operator.methodcaller",
    "_operator.attrgetter",
    "_operator.methodcaller",
    "functools.",
    "os.",
    "posix.",
    "subprocess.",
    "sys.",
    "importlib.",
    "shutil.",
    "socket.",
    "ctypes.",
    "pickle.",
    "_pickle.",
    "joblib.",
    "marshal.",
    "runpy.",
    "code.",
    "codecs.",
)


def runs_code(name: str) -> bool:
    """Whether trusting ``name`` would let a file run code or touch the system."""
    return name.startswith(_RUNS_CODE)


class MalformedTreeError(ValueError):
    """A trusted tree type whose arrays would send predict out of bounds."""


def trusted_types(extra: Iterable[str] = ()) -> set[str]:
    """The default list plus what the administrator added."""
    return {*DEFAULT_TRUSTED_TYPES, *extra}


def needs_structure_check(types: Iterable[str]) -> bool:
    return bool({TREE, TREE_PREDICTOR} & set(types))


def check_tree_structures(estimator: Any) -> None:
    """Raise MalformedTreeError unless every tree in ``estimator`` is well formed.

    Trees are checked through their owners: a decision tree must declare the
    width of its input (scikit-learn checks X against it even when an
    ensemble skips the rest of the validation), gradient boosting must agree
    with its first tree (whose check guards the compiled loop over all of
    them), and a histogram gradient boosting model's trees must index only
    its features and bitsets. A tree found anywhere else is refused.
    """
    from sklearn.ensemble._gb import BaseGradientBoosting
    from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import (
        BaseHistGradientBoosting,
    )
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree import BaseDecisionTree
    from sklearn.tree._tree import Tree

    owned: set[int] = set()
    found: list[Any] = []
    boosting: list[Any] = []
    for obj in _walk(estimator):
        if isinstance(obj, (Tree, TreePredictor)):
            found.append(obj)
        elif isinstance(obj, BaseDecisionTree) and hasattr(obj, "tree_"):
            _check_decision_tree(obj)
            owned.add(id(obj.tree_))
        elif isinstance(obj, BaseHistGradientBoosting) and hasattr(obj, "_predictors"):
            owned.update(_check_hist_gradient_boosting(obj))
        elif isinstance(obj, BaseGradientBoosting) and hasattr(obj, "estimators_"):
            boosting.append(obj)
    stray = [t for t in found if id(t) not in owned]
    if stray:
        raise MalformedTreeError(
            f"a {type(stray[0]).__name__} outside the estimator that owns it"
        )
    # Last: this check predicts with the model's initial estimator, which may
    # itself hold a tree, checked above.
    for model in boosting:
        _check_gradient_boosting(model)


def _walk(root: Any) -> Iterator[Any]:
    """Every object reachable from ``root`` through containers and attributes."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, type(None))):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, np.ndarray):
            if obj.dtype == object:
                stack.extend(obj.ravel().tolist())
        elif hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())


def _width(owner: Any) -> int:
    width = getattr(owner, "n_features_in_", None)
    if not isinstance(width, (int, np.integer)) or isinstance(width, bool):
        raise MalformedTreeError(
            f"{type(owner).__name__} does not declare the width of its input"
        )
    return int(width)


def _check_decision_tree(owner: Any) -> None:
    tree = owner.tree_
    width = _width(owner)
    if tree.n_features != width:
        raise MalformedTreeError(
            f"a tree for {tree.n_features} features in a "
            f"{type(owner).__name__} for {width}"
        )
    state = tree.__getstate__()
    nodes = state["nodes"]
    count = int(state["node_count"])
    if count < 1 or count != len(nodes):
        raise MalformedTreeError("a tree whose node count does not match its nodes")
    leaf = nodes["left_child"] == _LEAF
    _check_links(nodes["left_child"], nodes["right_child"], leaf)
    _check_features(nodes["feature"][~leaf], width)


def _check_links(left: np.ndarray, right: np.ndarray, leaf: np.ndarray) -> None:
    """The children of every split come after it and inside the array.

    scikit-learn numbers a node's children after the node itself, so this
    also rules out cycles: every walk down the tree ends at a leaf.
    """
    count = len(left)
    parents = np.arange(count)
    left = left.astype(np.int64)
    right = right.astype(np.int64)
    split = ~leaf
    for child in (left[split], right[split]):
        if ((child <= parents[split]) | (child >= count)).any():
            raise MalformedTreeError("a tree node pointing outside its tree")


def _check_features(features: np.ndarray, width: int) -> None:
    if ((features < 0) | (features >= width)).any():
        raise MalformedTreeError(
            f"a tree splitting on a feature outside the {width} it was given"
        )


def _check_gradient_boosting(owner: Any) -> None:
    """predict_stages walks every tree in compiled code after validating X
    against the first tree only, writing into a row as wide as the raw
    predictions."""
    from sklearn.tree import BaseDecisionTree

    stages = owner.estimators_
    width = _width(owner)
    if not (isinstance(stages, np.ndarray) and stages.ndim == 2 and stages.size):
        raise MalformedTreeError("gradient boosting stages that are not a table")
    for tree in stages.ravel():
        if not isinstance(tree, BaseDecisionTree) or _width(tree) != width:
            raise MalformedTreeError(
                "a gradient boosting stage that does not fit its model"
            )
    columns = owner._raw_predict_init(np.zeros((1, width))).shape[1]
    if columns != stages.shape[1]:
        raise MalformedTreeError(
            "gradient boosting stages that do not match its raw predictions"
        )


def _check_hist_gradient_boosting(owner: Any) -> set[int]:
    from sklearn.ensemble._hist_gradient_boosting.common import (
        PREDICTOR_RECORD_DTYPE,
    )

    width = _width(owner)
    mapper = owner._bin_mapper
    categorical = np.asarray(getattr(mapper, "is_categorical_", None))
    if categorical.shape != (width,):
        raise MalformedTreeError("category flags that do not match the features")
    categorical = categorical.astype(bool)
    checked: set[int] = set()
    for predictor in (p for stage in owner._predictors for p in stage):
        nodes = predictor.nodes
        bitsets = predictor.raw_left_cat_bitsets
        if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE:
            raise MalformedTreeError("tree nodes of the wrong layout")
        if len(nodes) < 1 or bitsets.ndim != 2 or bitsets.shape[1] != 8:
            raise MalformedTreeError("an empty tree or malformed category bitsets")
        leaf = nodes["is_leaf"] != 0
        _check_links(nodes["left"], nodes["right"], leaf)
        _check_features(nodes["feature_idx"][~leaf], width)
        on_category = ~leaf & (nodes["is_categorical"] != 0)
        if (~categorical[nodes["feature_idx"][on_category]]).any() or (
            nodes["bitset_idx"][on_category] >= len(bitsets)
        ).any():
            raise MalformedTreeError("a category split outside its bitsets")
        checked.add(id(predictor))
    return checked
