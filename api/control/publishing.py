"""The management API's writes: create, edit and delete a model; publish, edit,
activate and delete its versions.

Each goes through registry.actions, the write path of the admin and the CLI,
with the API channel and the token's user: the preflight, the size limit and
the pickle permission are the same whichever way a file arrives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from rest_framework.request import Request

from registry import actions, batching, jsondepth
from registry.exceptions import InvalidMetadata
from registry.models import Activation, MLModel, ModelVersion
from registry.stored import storable
from registry.upload_errors import too_large

from ..errors import InvalidField, MissingFile, TooDeep
from ..http import ascii_digits, form_flag

# As the path's and api.http.query_version's documented range.
MAX_VERSION = 999_999_999


@dataclass(frozen=True)
class NewModel:
    slug: str
    name: str
    description: str
    private: bool
    batching: dict[str, Any]


@dataclass(frozen=True)
class Upload:
    file: UploadedFile
    metadata: dict[str, Any] | None
    activate: bool
    reference: UploadedFile | None = None


def read_new_model(data: Any) -> NewModel:
    """The JSON body of a create request, strictly typed: no "1" for true."""
    if not isinstance(data, dict):
        raise InvalidField("The body must be a JSON object.")
    private = data.get("private", False)
    if type(private) is not bool:
        raise InvalidField("'private' must be true or false.", field="private")
    return NewModel(
        slug=_text(data, "slug", required=True),
        name=_text(data, "name", max_length=_max_length("name")),
        description=_text(data, "description"),
        private=private,
        batching=_batching(data),
    )


def create_model(new: NewModel) -> MLModel:
    """A route with no version yet: uploads add its versions."""
    return actions.create_model(
        slug=new.slug,
        name=new.name,
        description=new.description,
        private=new.private,
        **new.batching,
    )


@dataclass(frozen=True)
class ModelChange:
    """What a PATCH changes; None keeps the current value."""

    slug: str | None
    name: str | None
    description: str | None
    private: bool | None
    batching: dict[str, Any]  # the settings sent; those left out are kept
    capture_payloads: bool | None = None
    keep_predictions: bool | None = None


MODEL_FIELDS = (
    "slug",
    "name",
    "description",
    "private",
    *batching.FIELDS,
    "capture_payloads",
    "keep_predictions",
)


def read_model_change(data: Any) -> ModelChange:
    """The JSON body of a model edit: any of slug, name, description, private
    and the batching settings."""
    if not isinstance(data, dict):
        raise InvalidField("The body must be a JSON object.")
    unknown = sorted(set(data) - set(MODEL_FIELDS))
    if unknown:
        raise InvalidField(
            f"'{unknown[0][:100]}' cannot be edited: send any of "
            + ", ".join(f"'{f}'" for f in MODEL_FIELDS)
            + ".",
            field=unknown[0][:100],
        )
    if not data:
        raise InvalidField(
            "Send at least one of " + ", ".join(f"'{f}'" for f in MODEL_FIELDS) + "."
        )
    private = data.get("private")
    if "private" in data and type(private) is not bool:
        raise InvalidField("'private' must be true or false.", field="private")
    capture = _flag(data, "capture_payloads")
    keep = _flag(data, "keep_predictions")

    def given(field: str, max_length: int = 0) -> str | None:
        return _text(data, field, max_length=max_length) if field in data else None

    return ModelChange(
        slug=given("slug"),
        name=given("name", _max_length("name")),
        description=given("description"),
        private=private,
        batching=_batching(data),
        capture_payloads=capture,
        keep_predictions=keep,
    )


def _flag(data: dict[str, Any], field: str) -> bool | None:
    """A boolean field of the body; None when left out."""
    value = data.get(field)
    if field in data and type(value) is not bool:
        raise InvalidField(f"'{field}' must be true or false.", field=field)
    return value


def edit_model(*, slug: str, change: ModelChange) -> MLModel:
    """Rename, describe, change who may call a model or how it batches, from
    every worker's next request on."""
    model = get_model(slug)
    return actions.update_model(
        model,
        name=model.name if change.name is None else change.name,
        description=(
            model.description if change.description is None else change.description
        ),
        private=model.private if change.private is None else change.private,
        slug=None if change.slug in (None, model.slug) else change.slug,
        capture_payloads=change.capture_payloads,
        keep_predictions=change.keep_predictions,
        **change.batching,
    )


def delete_model(*, slug: str, force: bool) -> None:
    """The model, its versions and their files (once the delete commits)."""
    actions.delete_model(get_model(slug), force=force)


def read_upload(request: Request) -> Upload:
    """The multipart fields of an upload; an oversized body is refused unread."""
    limit = settings.MODELHUB_MAX_MODEL_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    # A drift reference may come too, and the form fields may add up to
    # MODELHUB_MAX_BODY_BYTES (Django's own cap).
    allowed = (
        limit + settings.MODELHUB_MAX_REFERENCE_BYTES + settings.MODELHUB_MAX_BODY_BYTES
    )
    if ascii_digits(declared) and int(declared) > allowed:
        raise too_large(
            limit,
            technical=f"The request is {int(declared):,} bytes; model files are "
            f"limited to {limit:,} bytes (MODELHUB_MAX_MODEL_BYTES).",
        )
    file = request.FILES.get("file")
    if file is None:
        raise MissingFile("Send the model file as the multipart field 'file'.")
    if "metadata" in request.FILES:
        raise InvalidMetadata(
            "Send metadata as a form field, not a file: curl -F 'metadata=<meta.json'."
        )
    return Upload(
        file=file,
        metadata=_metadata(request.POST.get("metadata")),
        activate=form_flag(request, "activate", default=True),
        reference=request.FILES.get("reference"),
    )


def publish(*, model: MLModel, upload: Upload, user: AbstractBaseUser) -> ModelVersion:
    return actions.register_version(
        slug=model.slug,
        source=upload.file,
        filename=upload.file.name or "",
        metadata=upload.metadata,
        user=user,
        channel=Activation.Channel.API,
        activate=upload.activate,
        create=False,
        reference=upload.reference,
    )


def read_version_number(data: Any) -> int:
    """The body of an activate request: {"version": n}."""
    number = data.get("version") if isinstance(data, dict) else None
    if type(number) is not int or not 1 <= number <= MAX_VERSION:
        raise InvalidField(
            'The body must be {"version": n} with n a version number.',
            field="version",
        )
    return number


def activate(*, slug: str, number: int, user: AbstractBaseUser) -> ModelVersion:
    """Serve version ``number`` at ``slug`` from the next request on (idempotent)."""
    version = get_version(slug, number)
    actions.activate(version, user=user, channel=Activation.Channel.API)
    version.model.refresh_from_db(fields=["active_version"])
    return version


@dataclass(frozen=True)
class VersionChange:
    input_schema: list[Any] | None
    metadata: dict[str, Any] | None


def read_version_change(data: Any) -> VersionChange:
    """The body of a version edit: {"input_schema": [...], "metadata": {...}}."""
    if not isinstance(data, dict):
        raise InvalidField("The body must be a JSON object.")
    unknown = sorted(set(data) - {"input_schema", "metadata"})
    if unknown:
        raise InvalidField(
            f"'{unknown[0][:100]}' cannot be edited: send 'input_schema' and/or "
            "'metadata'.",
            field=unknown[0][:100],
        )
    if not data:
        raise InvalidField("Send 'input_schema' and/or 'metadata' to change.")
    schema = data.get("input_schema")
    if "input_schema" in data and not isinstance(schema, list):
        raise InvalidField(
            "'input_schema' must be a list of features.", field="input_schema"
        )
    metadata = data.get("metadata")
    if "metadata" in data and not isinstance(metadata, dict):
        raise InvalidField("'metadata' must be a JSON object.", field="metadata")
    return VersionChange(input_schema=schema, metadata=metadata)


def edit(
    *, slug: str, number: int, change: VersionChange, user: AbstractBaseUser
) -> ModelVersion:
    """Serve version ``number`` with a new schema and/or metadata, from every
    worker's next request on."""
    return actions.edit_version(
        get_version(slug, number),
        input_schema=change.input_schema,
        metadata=change.metadata,
        user=user,
        channel=Activation.Channel.API,
    )


def delete(*, slug: str, number: int) -> None:
    actions.delete_version(get_version(slug, number))


def get_model(slug: str) -> MLModel:
    return actions.get_model(slug)


def get_version(slug: str, number: int) -> ModelVersion:
    return actions.get_version(get_model(slug), number)


def _text(
    data: dict[str, Any], field: str, *, required: bool = False, max_length: int = 0
) -> str:
    if field not in data and not required:
        return ""  # absent; an explicit null is refused, as the schema says
    value = data.get(field)
    if not isinstance(value, str):
        raise InvalidField(f"'{field}' must be a string.", field=field)
    if max_length and len(value) > max_length:
        raise InvalidField(
            f"'{field}' is at most {max_length} characters long.", field=field
        )
    if not storable(value):
        raise InvalidField(
            f"'{field}' may not contain U+0000 or lone surrogates.", field=field
        )
    return value


def _batching(data: dict[str, Any]) -> dict[str, Any]:
    """The batching settings sent, each checked (a null is no setting)."""
    sent = {field: data[field] for field in batching.FIELDS if field in data}
    batching.check_given(sent)
    return sent


def _max_length(field: str) -> int:
    return MLModel._meta.get_field(field).max_length or 0


def _metadata(raw: str | None) -> dict[str, Any] | None:
    """A JSON object that every database can store (no NaN, no U+0000)."""
    if raw is None or not raw.strip():
        return None
    try:
        jsondepth.check_text(raw)
        value = json.loads(raw, parse_constant=_refuse_constant)
    except jsondepth.TooDeep as exc:
        raise TooDeep(f"'metadata': {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise InvalidMetadata(f"'metadata' is not valid JSON: {exc}.") from None
    if not isinstance(value, dict):
        raise InvalidMetadata("'metadata' must be a JSON object.")
    return value  # what every channel's metadata must hold: register_version


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
