"""The OpenAPI document's per-model operations: for each model the caller may
call, POST /api/predict/<slug>/ with bodies built from its real features.

The document is built per request (drf-spectacular keeps no copy), so a model
registered or activated a moment ago is in the next one, and each caller sees
only the models that would answer them.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import APIException
from rest_framework.request import Request

from registry.exceptions import RegistryError
from registry.loading import VersionRef
from registry.models import MLModel, ModelVersion

from ..access import authorize
from ..dataplane.openapi import example_bodies, model_operation, operation_id
from . import catalog

GENERIC = "/api/predict/{slug}/"
TEMPLATES = (GENERIC, "/api/predict/{slug}/v{version}/")


def callable_models(request: Request) -> list[MLModel]:
    """Models with a served version that would answer this caller: the
    catalog's visible ones, less those a predict would refuse (a key scoped
    to other models, a management key without the predict scope)."""
    found = []
    for model in catalog.visible_models(request).filter(
        active_version__status=ModelVersion.Status.READY
    ):
        try:
            authorize(request, _ref(model))
        except (APIException, RegistryError):
            continue
        found.append(model)
    return found


def _ref(model: MLModel) -> VersionRef:
    """What api.access.authorize reads of a served version."""
    version = model.active_version
    return VersionRef(
        id=version.pk,
        slug=model.slug,
        number=version.number,
        sha256=version.sha256,
        file_name=version.file.name,
        format=version.format,
        kind=version.kind,
        input_schema=version.input_schema,
        classes=version.classes,
        private=model.private,
        batch_max_rows=model.batch_max_rows,
        batch_max_wait_ms=model.batch_max_wait_ms,
    )


def add_model_operations(result: dict[str, Any], request: Request) -> None:
    """An operation per callable model, and the generic predict operation's
    examples aimed at the first of them (its slug prefilled)."""
    generic_path = result["paths"].get(GENERIC, {})
    generic = generic_path.get("post")
    if generic is None:
        return
    models = callable_models(request)
    taken = {
        op.get("operationId")
        for item in result["paths"].values()
        for op in item.values()
        if isinstance(op, dict)
    }
    for model in models:
        version = model.active_version
        result["paths"][f"/api/predict/{model.slug}/"] = {
            "post": model_operation(
                generic,
                slug=model.slug,
                summary=f"Predict with {model.display_name}",
                description=describe(model, version),
                examples=_examples(version),
                private=model.private,
                operation_id=operation_id(model.slug, taken),
            )
        }
    if models:
        aim_templates(result, models[0])


def aim_templates(result: dict[str, Any], model: MLModel) -> None:
    """The templated predict operations (active and pinned) get the first
    callable model's bodies, and its slug and version prefilled."""
    version = model.active_version
    examples = _examples(version)
    prefill = {"slug": model.slug, "version": version.number}
    for path in TEMPLATES:
        operation = result["paths"].get(path, {}).get("post")
        if operation is None:
            continue
        operation["requestBody"]["content"]["application/json"]["examples"] = examples
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "path" and parameter["name"] in prefill:
                parameter["example"] = prefill[parameter["name"]]


def _examples(version: ModelVersion) -> dict[str, Any]:
    return example_bodies(
        catalog.example_request(version),
        classifier=version.kind == ModelVersion.Kind.CLASSIFIER,
    )


def describe(model: MLModel, version: ModelVersion) -> str:
    """What a caller needs to send: the features, in order, with their types."""
    lines = []
    if model.description:
        lines += [model.description, ""]
    lines += [
        f"Serves version {version.number}: a {version.get_kind_display()} "
        f"(`{version.estimator}`). The examples are built from "
        + (
            "its input example."
            if (version.metadata or {}).get("input_example") is not None
            else "its input schema."
        ),
        "",
    ]
    features = (version.input_schema or {}).get("features") or []
    if features:
        lines += ["| feature | type | values |", "|---|---|---|"]
        for feature in features:
            values = ", ".join(
                f"`{_cell(c)}`" for c in (feature.get("categories") or [])[:20]
            )
            name, kind = _cell(feature.get("name")), feature.get("type", "")
            lines.append(f"| `{name}` | {kind} | {values} |")
        lines.append("")
    if version.classes:
        shown = ", ".join(f"`{c}`" for c in version.classes[:20])
        lines += [f"Classes: {shown}.", ""]
    lines.append(
        "Any other format of the generic predict operation works too; "
        f"`GET /api/models/{model.slug}/` describes the model."
    )
    return "\n".join(lines)


def _cell(value: Any) -> str:
    """A value inside a Markdown table cell and code span."""
    return str(value).replace("|", "\\|").replace("`", "'").replace("\n", " ")
