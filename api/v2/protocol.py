"""The Open Inference Protocol (KServe V2): its infer request and documents.

An infer request is a JSON header, perhaps followed by binary tensor data;
``parse_request`` reads it and checks the outputs asked for; the server and
each model describe themselves in the protocol's metadata documents. The
decoder and encoder around the data plane's infer() are in codec.py.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from registry.loading import LoadedModel
from registry.models import ModelVersion

from ..dataplane.features import InputSpec, check_features
from ..dataplane.infer import spec_for
from ..dataplane.payloads import parse_json
from ..errors import InvalidParams, InvalidShape, PayloadError
from ..http import ascii_digits
from .inputs import TENSOR_INPUT
from .tensors import (
    BYTES,
    InvalidBinaryData,
    Tensor,
    binary_size,
    encode_json,
    output_array,
    read_tensor,
)

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"
EXTENSIONS = ["binary_tensor_data"]
_FEATURE_DATATYPE = {"string": BYTES}


class InvalidInferenceHeader(PayloadError):
    """Inference-Header-Content-Length is not a length inside the body."""

    code = "invalid_inference_header"


class UnknownOutput(PayloadError):
    """An output the model does not produce was requested."""

    code = "unknown_output"


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool | None  # None: the request's binary_data_output decides


@dataclass
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None
    binary_output: bool
    pandas: bool


# --- requests -------------------------------------------------------------------------


def parse_request(
    body: bytes, header_length: str | None, *, spec: InputSpec
) -> InferRequest:
    """The JSON header and, after it, each input's binary data in order; no
    more inputs than ``spec``'s model may be sent (MODELHUB_MAX_FEATURES)."""
    if header_length is None:
        document, raw = parse_json(body), memoryview(b"")
    else:
        size = header_length.strip()
        if not ascii_digits(size) or int(size) > len(body):
            raise InvalidInferenceHeader(
                f"Inference-Header-Content-Length must be a byte count no larger "
                f"than the body ({len(body)} bytes); got {header_length[:40]!r}."
            )
        view = memoryview(body)
        document = parse_json(bytes(view[: int(size)]))
        raw = view[int(size) :]
    if not isinstance(document, dict):
        raise InvalidShape("The inference request must be a JSON object.")
    specs = document.get("inputs")
    if not isinstance(specs, list) or not specs:
        raise InvalidShape("'inputs' must be a non-empty list of tensors.")
    check_features(len(specs), spec, holder="'inputs'")
    parameters = _parameters(document.get("parameters"), "parameters")
    inputs = []
    offset = 0
    for position, spec in enumerate(specs):
        size = binary_size(spec, position)
        chunk = None
        if size is not None:
            if header_length is None:
                raise InvalidInferenceHeader(
                    "Binary tensor data needs the Inference-Header-Content-Length "
                    "header."
                )
            if offset + size > len(raw):
                raise InvalidBinaryData(
                    "The binary data is shorter than the inputs' binary_data_size."
                )
            chunk = raw[offset : offset + size]
            offset += size
        inputs.append(read_tensor(spec, chunk, position))
    if offset != len(raw):
        raise InvalidBinaryData(
            f"{len(raw) - offset} byte(s) after the last input's binary data."
        )
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidParams("'id' must be a string.")
    return InferRequest(
        id=request_id,
        inputs=inputs,
        outputs=_requested_outputs(document.get("outputs")),
        binary_output=_flag(parameters, "binary_data_output"),
        pandas=parameters.get("content_type") == "pd",
    )


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParams(f"'{where}' must be an object.")
    return value


def _flag(parameters: dict[str, Any], name: str) -> bool:
    value = parameters.get(name, False)
    if not isinstance(value, bool):
        raise InvalidParams(f"'{name}' must be true or false.")
    return value


def _requested_outputs(specs: Any) -> list[RequestedOutput] | None:
    if specs is None:
        return None
    if not isinstance(specs, list):
        raise InvalidShape("'outputs' must be a list.")
    outputs = []
    for position, spec in enumerate(specs):
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str):
            raise InvalidShape(f"Output {position} needs a 'name' (a string).")
        parameters = _parameters(spec.get("parameters"), f"outputs[{position}]")
        if parameters.get("class_count"):
            raise InvalidParams("The classification extension is not supported.")
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise InvalidParams(f"Output '{name[:100]}': 'binary_data' must be a bool.")
        outputs.append(RequestedOutput(name, binary))
    return outputs


def resolved_outputs(
    request: InferRequest, loaded: LoadedModel
) -> list[RequestedOutput]:
    """The outputs to send, each binary or not (the output's own flag wins)."""
    available = output_names(loaded)
    if request.outputs is None:
        return [RequestedOutput(PREDICT, request.binary_output)]
    names = [o.name for o in request.outputs]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UnknownOutput(
            f"Unknown output '{unknown[0][:100]}': this model produces "
            + ", ".join(f"'{n}'" for n in available)
            + "."
        )
    if len(set(names)) != len(names):
        raise UnknownOutput("Each output may be requested once.")
    return [
        RequestedOutput(o.name, request.binary_output if o.binary is None else o.binary)
        for o in request.outputs
    ]


def output_names(loaded: LoadedModel) -> list[str]:
    return [PREDICT, PREDICT_PROBA] if loaded.has_proba else [PREDICT]


# --- metadata -------------------------------------------------------------------------


def server_metadata() -> dict[str, Any]:
    return {"name": "modelhub", "version": _version(), "extensions": EXTENSIONS}


@functools.cache
def _version() -> str:
    with (settings.BASE_DIR / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def ready_versions(slug: str) -> list[int]:
    return list(
        ModelVersion.objects.filter(model__slug=slug, status=ModelVersion.Status.READY)
        .order_by("number")
        .values_list("number", flat=True)
    )


def model_metadata(loaded: LoadedModel, *, versions: list[int]) -> dict[str, Any]:
    """Named features are one input each (shape [-1, 1], ``content_type: pd``);
    a model without feature names takes one tensor ``input-0`` [-1, features].
    A numeric model also takes one [rows, features] tensor in the order of
    its inputs, which the protocol's metadata cannot express."""
    ref = loaded.ref
    spec = spec_for(loaded)
    document: dict[str, Any] = {
        "name": ref.slug,
        "versions": [str(v) for v in versions],
        "platform": "sklearn",
    }
    features = {str(f["name"]): f for f in ref.input_schema.get("features") or []}
    if ref.input_schema.get("named") and spec.known:
        document["inputs"] = [
            {
                "name": name,
                "datatype": _FEATURE_DATATYPE.get(features[name].get("type"), "FP64"),
                "shape": [-1, 1],
            }
            for name in spec.names
        ]
        document["parameters"] = {"content_type": "pd"}
    else:
        document["inputs"] = [
            {
                "name": TENSOR_INPUT,
                "datatype": "FP64",
                "shape": [-1, len(spec.names) if spec.known else -1],
            }
        ]
    document["outputs"] = _output_metadata(loaded)
    return document


def _output_metadata(loaded: LoadedModel) -> list[dict[str, Any]]:
    """``predict``'s datatype from the labels (a best guess for models without
    any); ``predict_proba`` names its columns' classes."""
    labels = _labels(loaded)
    if labels is not None:
        datatype, labels = output_array(labels)
    else:
        kind = loaded.ref.kind
        datatype = "INT64" if kind in ("clusterer", "outlier_detector") else "FP64"
    outputs = [{"name": PREDICT, "datatype": datatype, "shape": [-1]}]
    if loaded.has_proba:
        proba: dict[str, Any] = {
            "name": PREDICT_PROBA,
            "datatype": "FP64",
            "shape": [-1, len(labels) if labels is not None else -1],
        }
        if labels is not None:
            proba["parameters"] = {"classes": encode_json(datatype, labels)}
        outputs.append(proba)
    return outputs


def _labels(loaded: LoadedModel) -> np.ndarray | None:
    """One-dimensional class labels; None for a multi-output classifier's
    per-output lists, which one datatype cannot describe."""
    classes = getattr(loaded.estimator, "classes_", None)
    if classes is None:
        classes = loaded.ref.classes or None
    if classes is None:
        return None
    try:
        labels = np.asarray(classes)
    except ValueError:
        return None
    return labels if labels.ndim == 1 else None
