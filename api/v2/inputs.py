"""Open Inference Protocol inputs -> the model's input, as the REST payloads
become it (api.dataplane.features).

One tensor of shape [rows, features] in schema order, or one input per
feature (shape [rows] or [rows, 1], the ``content_type: "pd"`` convention)
in any order. Numbers become a float64 array (a DataFrame only when the
estimator needs one); strings come as BYTES.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ..dataplane.features import (
    MAX_NAMED,
    DecodedInput,
    InputSpec,
    assemble,
    check_features,
    check_rows,
    quote,
)
from ..errors import (
    DuplicateFeatures,
    InvalidShape,
    MissingFeatures,
    NonFiniteNumber,
    UnknownFeatures,
    WrongType,
)
from .tensors import BYTES, Tensor

TENSOR_INPUT = "input-0"


def model_input(
    inputs: list[Tensor], spec: InputSpec, *, pandas: bool, max_rows: int
) -> DecodedInput:
    """Per-feature inputs when asked (``pd``) or named after features; else one
    [rows, features] tensor."""
    width = len(spec.names)
    one_tensor = (
        len(inputs) == 1
        and len(inputs[0].shape) == 2
        and (inputs[0].name not in spec.index or inputs[0].shape[1] == width > 1)
    )
    if pandas or (not one_tensor and any(t.name in spec.index for t in inputs)):
        return _from_features(inputs, spec, max_rows)
    if len(inputs) != 1:
        raise InvalidShape(
            "Send one input of shape [rows, features], or one input per feature "
            f"named after it ({quote(list(spec.names)) or 'this model has none'})."
        )
    return _from_tensor(inputs[0], spec, max_rows)


def _from_tensor(tensor: Tensor, spec: InputSpec, max_rows: int) -> DecodedInput:
    if len(tensor.shape) != 2:
        raise InvalidShape(
            f"Input '{tensor.name[:100]}' has shape {list(tensor.shape)}; a single "
            "input must have shape [rows, features]."
        )
    rows, width = tensor.shape
    check_features(width, spec, holder=f"Input '{tensor.name[:100]}'")
    check_rows(rows, max_rows, holder="request")
    if spec.known and width != len(spec.names):
        raise InvalidShape(
            f"Input '{tensor.name[:100]}' has {width} features per row; the model "
            f"takes {len(spec.names)}."
        )
    array = tensor.array
    strings = spec.string_positions
    if tensor.datatype == BYTES:
        if not spec.known or len(strings) != width:
            raise WrongType(
                "A BYTES tensor fits only a model whose features are all strings: "
                "send one input per feature (content_type 'pd') instead.",
                column=tensor.name[:100],
            )
        data: Any = array
    else:
        if strings:
            raise WrongType(
                "This model has string features: send one input per feature "
                "(content_type 'pd'), strings as BYTES.",
                column=tensor.name[:100],
            )
        data = _numbers(array, tensor, spec)
    if spec.needs_frame:
        import pandas as pd

        data = pd.DataFrame(data, columns=list(spec.names))
    return DecodedInput(data, rows, None, {})


def _from_features(
    tensors: list[Tensor], spec: InputSpec, max_rows: int
) -> DecodedInput:
    if not spec.known:
        raise InvalidShape(
            "This model has no input schema, so inputs cannot be mapped to "
            f"features: send one input '{TENSOR_INPUT}' of shape [rows, features]."
        )
    check_features(len(tensors), spec, holder="'inputs'")
    names = [t.name for t in tensors]
    counts = Counter(names)
    duplicates = sorted(n for n, c in counts.items() if c > 1)
    if duplicates:
        raise DuplicateFeatures(f"Duplicate inputs: {quote(duplicates)}")
    missing = [n for n in spec.names if n not in counts]
    if missing:
        raise MissingFeatures(
            f"Missing features: {quote(missing)}", features=missing[:MAX_NAMED]
        )
    unknown = [n for n in names if n not in spec.index]
    if unknown:
        raise UnknownFeatures(
            f"Unknown features: {quote(unknown)}",
            features=[n[:100] for n in unknown[:MAX_NAMED]],
        )
    by_name = {t.name: t for t in tensors}
    rows = _feature_rows(tensors[0])
    check_rows(rows, max_rows, holder="request")
    columns = []
    for position, name in enumerate(spec.names):
        tensor = by_name[name]
        if _feature_rows(tensor) != rows:
            raise InvalidShape(
                f"Input '{name[:100]}' has {_feature_rows(tensor)} rows; "
                f"'{tensors[0].name[:100]}' has {rows}."
            )
        if position in spec.string_positions:
            if tensor.datatype != BYTES:
                raise WrongType(
                    f"Input '{name[:100]}' is a string feature: send it as BYTES.",
                    column=name[:100],
                )
            columns.append(tensor.array.reshape(rows))
        else:
            columns.append(_numbers(tensor.array.reshape(rows), tensor, spec))
    return DecodedInput(assemble(columns, spec, rows), rows, None, {})


def _feature_rows(tensor: Tensor) -> int:
    shape = tensor.shape
    if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
        return shape[0]
    raise InvalidShape(
        f"Input '{tensor.name[:100]}' has shape {list(shape)}; a feature input "
        "has shape [rows] or [rows, 1]."
    )


def _numbers(array: np.ndarray, tensor: Tensor, spec: InputSpec) -> Any:
    """float64 values (exact for every FP and INT32 type), finite unless the
    model takes NaN."""
    if tensor.datatype in (BYTES, "BOOL"):
        raise WrongType(
            f"Input '{tensor.name[:100]}' must hold numbers; got {tensor.datatype}.",
            column=tensor.name[:100],
        )
    values = array.astype(np.float64, copy=False)
    finite = np.isfinite(values)
    if not finite.all() and (not spec.allow_nan or np.isinf(values[~finite]).any()):
        raise NonFiniteNumber(
            f"Input '{tensor.name[:100]}' holds NaN or infinity, which this model "
            "does not accept."
            if not spec.allow_nan
            else f"Input '{tensor.name[:100]}' holds an infinity.",
            column=tensor.name[:100],
        )
    return values
