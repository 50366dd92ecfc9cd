"""The Open Inference Protocol around the data plane's infer(): the decoder
that turns an infer request into the model's input, and the encoder of the
response (``predict`` and, when asked, ``predict_proba``; JSON or binary)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from monitoring.record import PredictionRecord
from registry.loading import LoadedModel

from ..dataplane.infer import Inference, spec_for
from ..http import read_body
from ..renderers import dumps
from .inputs import model_input
from .protocol import (
    PREDICT,
    PREDICT_PROBA,
    InferRequest,
    RequestedOutput,
    parse_request,
    resolved_outputs,
)
from .tensors import encode_binary, encode_json, output_array


@dataclass
class V2Input:
    """The model's input, with the request it came from and the outputs to send."""

    data: Any
    rows: int
    request: InferRequest
    outputs: list[RequestedOutput]


@dataclass(frozen=True)
class V2Decoder:
    """An infer request, read once the model is known (as on /api/predict/)."""

    request: HttpRequest
    record: PredictionRecord | None
    protocol = "v2"  # what a shadow job says to decode its body with

    def __call__(self, loaded: LoadedModel) -> tuple[V2Input, bool]:
        body = read_body(self.request)
        if self.record is not None:
            self.record.body = body
        header_length = self.request.META.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH")
        spec = spec_for(loaded)
        request = parse_request(body, header_length, spec=spec)
        outputs = resolved_outputs(request, loaded)
        decoded = model_input(
            request.inputs,
            spec,
            pandas=request.pandas,
            max_rows=settings.MODELHUB_MAX_ROWS,
        )
        proba = any(o.name == PREDICT_PROBA for o in outputs)
        return V2Input(decoded.data, decoded.rows, request, outputs), proba


def encode_response(
    inference: Inference, *, request_id: str
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary data follows."""
    ref = inference.ref
    model_input: V2Input = inference.model_input
    values = {PREDICT: inference.predictions, PREDICT_PROBA: inference.probabilities}
    entries, chunks = [], []
    for output in model_input.outputs:
        datatype, array = output_array(values[output.name])
        entry: dict[str, Any] = {
            "name": output.name,
            "datatype": datatype,
            "shape": list(array.shape),
        }
        if output.binary:
            chunk = encode_binary(datatype, array)
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            entry["data"] = encode_json(datatype, array)
        entries.append(entry)
    header = dumps(
        {
            "model_name": ref.slug,
            "model_version": str(ref.number),
            "id": model_input.request.id or request_id,
            "outputs": entries,
        }
    )
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)
