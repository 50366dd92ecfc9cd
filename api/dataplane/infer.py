"""infer(): the one entry point of the data plane, for both protocols.

As MLServer's ``DataPlane.infer``: resolve the route, get the loaded model
(or the last good version when the active one cannot load), decode the
request with the protocol's decoder, predict within the time limit, and
return an Inference carrying everything the protocol's response and the
request log need. /api/predict/ (api.dataplane.views) and the Open Inference
Protocol (api.v2.views) differ only in their decoder and their encoder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from django.conf import settings

from monitoring.record import PredictionRecord
from registry import inflight, routing, serving
from registry.exceptions import ModelUnavailable
from registry.inspection import selects_columns_by_name
from registry.loading import LoadedModel, VersionRef
from registry.routing import Route

from ..errors import ModelRejectedInput, PredictionTimeout
from . import batching, model_warnings, shadow, traffic
from .features import InputSpec, prepare_spec
from .timeouts import time_limit

logger = logging.getLogger(__name__)

Authorize = Callable[[VersionRef], None]


class ModelInput(Protocol):
    """What a protocol's decoder hands to the model."""

    data: Any
    rows: int


class Decoder(Protocol):
    """Turns the request into the model's input for the model that answers
    (its input spec, its outputs); raises a PayloadError on bad input."""

    def __call__(self, loaded: LoadedModel) -> tuple[ModelInput, bool]:
        """The model input, and whether predict_proba is wanted too."""
        ...


@dataclass
class Inference:
    """One prediction: the model that answered, its input and its raw output."""

    loaded: LoadedModel
    model_input: Any  # the decoder's ModelInput (ids, outputs... per protocol)
    predictions: Any
    probabilities: Any | None
    load_ms: float
    decode_ms: float
    predict_ms: float
    route: str = "active"  # X-Model-Route: active, candidate, pinned, alias:<name>
    shadow: VersionRef | None = None  # the policy's shadow, predicted afterwards

    @property
    def ref(self) -> VersionRef:
        return self.loaded.ref

    def server_timing(self, encode_ms: float) -> str:
        """The ``Server-Timing`` header, once the protocol has encoded."""
        timings = {
            "load": self.load_ms,
            "decode": self.decode_ms,
            "predict": self.predict_ms,
            "encode": encode_ms,
            "total": self.load_ms + self.decode_ms + self.predict_ms + encode_ms,
        }
        return ", ".join(f"{k};dur={v:.3f}" for k, v in timings.items())


def serve_model(
    *,
    slug: str,
    version: int | None,
    authorize: Authorize,
    record: PredictionRecord | None = None,
    alias: str = "",
) -> LoadedModel:
    """The loaded model that answers for ``slug`` (pinned to ``version``, or
    to ``alias``): the one a metadata request describes, never a candidate.

    ``authorize`` sees the resolved version before anything is loaded: a
    private model refuses a caller it does not answer here.
    """
    route = _resolve(slug=slug, version=version, alias=alias, authorize=authorize)
    return _load(route.ref, pinned=route.kind != traffic.ACTIVE, record=record)


def _resolve(
    *, slug: str, version: int | None, alias: str, authorize: Authorize
) -> Route:
    route = routing.resolve_route(slug, version, alias)
    # First: a private model refused is an unknown slug, in the log as well.
    authorize(route.ref)
    return route


def _load(
    ref: VersionRef, *, pinned: bool, record: PredictionRecord | None
) -> LoadedModel:
    if record is not None:
        record.version = ref.number
        record.private = ref.private
        record.capture = ref.capture_payloads
    loaded = serving.serve(ref, pinned=pinned)
    if record is not None:
        record.version = loaded.ref.number  # the last good one on a fallback
    return loaded


def infer(
    *,
    slug: str,
    version: int | None,
    decoder: Decoder,
    authorize: Authorize,
    record: PredictionRecord | None = None,
    alias: str = "",
    meta: Mapping[str, Any] | None = None,
) -> Inference:
    """Serve one prediction request, whatever its protocol.

    ``meta`` (the WSGI environ) holds the header a sticky policy splits by.
    """
    route = _resolve(slug=slug, version=version, alias=alias, authorize=authorize)
    started = time.perf_counter()  # Server-Timing's "load": the model, not the route
    choice = traffic.choose(route, meta or {})
    if choice is None:  # sticky by a feature: the active's decoder reads it
        loaded, choice = _load_choice(
            traffic.Choice(route.ref, traffic.ACTIVE), route, record
        )
        model_input, proba = decoder(loaded)
        value = feature_value(model_input.data, spec_for(loaded), route)
        choice = traffic.choose_by_value(route, value)
        if choice.route == traffic.CANDIDATE:
            candidate, choice = _load_choice(choice, route, record)
            if candidate is not loaded:
                loaded = candidate
                model_input, proba = decoder(loaded)
        decoded_first = True
    else:
        loaded, choice = _load_choice(choice, route, record)
        decoded_first = False
    if record is not None:
        record.route = choice.label
    loaded_at = time.perf_counter()
    batcher = batching.batcher_for(loaded, loaded.ref)
    if batcher is not None:
        batcher.expect()
    if not decoded_first:
        try:
            model_input, proba = decoder(loaded)
        except BaseException:
            if batcher is not None:
                batcher.unexpect()
            raise
    decoded_at = time.perf_counter()
    request_id = record.request_id if record is not None else ""
    proba = proba and loaded.has_proba
    if batcher is not None and model_input.rows < batcher.max_rows:
        job = batcher.predict(
            batching.Job(model_input.data, model_input.rows, proba, request_id)
        )
        predictions, probabilities = job.predictions, job.probabilities
        if record is not None:
            record.batch_size = job.batch_size
    else:
        if batcher is not None:
            batcher.unexpect()
        predictions, probabilities = run_model(
            loaded, model_input.data, proba=proba, request_id=request_id
        )
    predicted_at = time.perf_counter()
    inference = Inference(
        loaded=loaded,
        model_input=model_input,
        predictions=predictions,
        probabilities=probabilities,
        load_ms=(loaded_at - started) * 1000,
        decode_ms=(decoded_at - loaded_at) * 1000,
        predict_ms=(predicted_at - decoded_at) * 1000,
        route=choice.route,
        shadow=route.policy.shadow if route.policy is not None else None,
    )
    if record is not None:
        record.rows = model_input.rows
        record.model_ms = inference.predict_ms
        if loaded.ref.keep_predictions:
            record.predictions = predictions
            record.ids = getattr(model_input, "ids", None)
        record.observed = (
            loaded.ref.id,
            spec_for(loaded).names,
            model_input.data,
            predictions,
        )
        if inference.shadow is not None:
            record.after = partial(
                shadow.run, inference.shadow, decoder, predictions, record
            )
    return inference


def _load_choice(
    choice: traffic.Choice, route: Route, record: PredictionRecord | None
) -> tuple[LoadedModel, traffic.Choice]:
    """The chosen version loaded; a candidate that cannot be loaded here
    leaves its requests to the active version (counted as a fallback)."""
    if choice.route != traffic.CANDIDATE:
        pinned = choice.route != traffic.ACTIVE
        return _load(choice.ref, pinned=pinned, record=record), choice
    try:
        return _load(choice.ref, pinned=True, record=record), choice
    except ModelUnavailable:
        active = traffic.Choice(route.ref, traffic.ACTIVE)
        return _load(route.ref, pinned=False, record=record), active


def feature_value(data: Any, spec: InputSpec, route: Route) -> Any:
    """The sticky feature's value in the request's first row."""
    policy = route.policy
    name = policy.sticky_feature if policy is not None else ""
    columns = getattr(data, "columns", None)
    if columns is not None:
        return data[name].iloc[0] if name in columns else None
    try:
        return data[0][spec.names.index(name)]
    except (ValueError, IndexError, TypeError):
        return None


def spec_for(loaded: LoadedModel) -> InputSpec:
    """The prepared input spec, built once per loaded version (and again after
    an edit of its schema: registry.cache hands out a fresh ``extra``)."""
    spec = loaded.extra.get("spec")
    if spec is None:
        estimator = loaded.estimator
        fitted = getattr(estimator, "feature_names_in_", None)
        spec = prepare_spec(
            loaded.ref.input_schema,
            selects_by_name=selects_columns_by_name(estimator)
            or bool(getattr(estimator, "needs_dataframe", False)),
            fitted_names=[str(n) for n in fitted] if fitted is not None else None,
        )
        loaded.extra["spec"] = spec
    return spec


def run_model(
    loaded: LoadedModel, data: Any, *, proba: bool, request_id: str = ""
) -> tuple[Any, Any]:
    """``predict`` (and ``predict_proba``) under the time limit; any payload
    format ends here, so a model's own error is a 422 whatever the protocol.
    The worker notes it is inside the model, for when the model kills it."""
    ref = loaded.ref
    limit = settings.MODELHUB_PREDICT_TIMEOUT
    try:
        with (
            inflight.inside(
                settings.MODELHUB_INFLIGHT_DIR,
                request_id=request_id,
                version_id=ref.id,
                slug=ref.slug,
                number=ref.number,
                limit=limit,
            ),
            time_limit(limit, f"'{ref.slug}' v{ref.number}"),
            model_warnings.captured(ref),
        ):
            raw = loaded.estimator.predict(data)
            raw_proba = loaded.estimator.predict_proba(data) if proba else None
    except PredictionTimeout:
        logger.warning("%s v%s timed out", ref.slug, ref.number)
        raise
    # BaseException: a model's sys.exit() or KeyboardInterrupt is its own error
    # too, not the worker's (the time limit's own exception is handled above).
    except BaseException as exc:  # noqa: BLE001 - the model's error becomes a 422
        logger.info("%s v%s rejected input: %r", ref.slug, ref.number, exc)
        summary = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ModelRejectedInput(
            f"The model rejected the input: {type(exc).__name__}"
            + (f": {summary}" if summary else ""),
        ) from None
    return raw, raw_proba
