"""The one write path for model files: admin, CLI and REST all come here.

register_version() validates, hashes, stores and (optionally) activates;
activate()/rollback() switch a model's active version in one UPDATE and
record who did it; delete_version() removes a row and its file together.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.db.models import Max

from . import mlflow_models, staging
from .exceptions import (
    InvalidMetadata,
    InvalidModel,
    InvalidSlug,
    ModelExists,
    NothingToRollBack,
    PicklePermissionRequired,
    UnknownModel,
    UnknownVersion,
    VersionActive,
    VersionNotReady,
)
from .inspection import SchemaError, check_metadata
from .models import Activation, MLModel, ModelVersion
from .serialization import PICKLE_FORMATS, detect_format, extension_for
from .validation import preflight

logger = logging.getLogger(__name__)
UPLOAD_PERMISSION = "registry.upload_pickle"
MAX_METADATA_DEPTH = 64


def register_version(
    *,
    slug: str,
    source: IO[bytes],
    filename: str,
    metadata: dict[str, Any] | None = None,
    user: AbstractBaseUser | None = None,
    channel: str = Activation.Channel.CLI,
    activate: bool = True,
    create: bool = True,
    name: str = "",
    description: str = "",
) -> ModelVersion:
    """Store ``source`` as the next version of ``slug`` after a preflight.

    ``source`` may be a zipped MLflow model (sklearn flavor): its model file
    is stored, its signature and input example become metadata that the
    caller's ``metadata`` overrides key by key.

    ``user=None`` means a trusted local caller (the CLI); any other user needs
    the pickle permission for joblib/pickle files. Nothing is stored unless
    the whole registration succeeds.
    """
    metadata = _check_metadata(metadata)
    _check_slug(slug)
    if not create and not MLModel.objects.filter(slug=slug).exists():
        raise UnknownModel(f"No model with slug '{slug}'.")
    with tempfile.TemporaryDirectory(prefix="modelhub-upload-") as workdir:
        staged = Path(workdir) / "model"
        digest, size, head = _stage(source, staged)
        model_name = filename
        if mlflow_models.is_mlflow_archive(staged, head):
            # The sklearn file inside is what is preflighted, stored and served.
            unpacked = mlflow_models.unpack(
                staged, Path(workdir), max_bytes=settings.MODELHUB_MAX_MODEL_BYTES
            )
            metadata = _check_metadata({**unpacked.metadata, **metadata})
            staged, model_name = unpacked.path, unpacked.filename
            digest, size, head = unpacked.fingerprint
        fmt = detect_format(model_name, head)
        if (
            fmt in PICKLE_FORMATS
            and user is not None
            and not user.has_perm(UPLOAD_PERMISSION)
        ):
            raise PicklePermissionRequired(
                "Uploading joblib/pickle files needs the 'Can upload joblib/pickle "
                "files' permission, because loading them runs their code. "
                "Upload a .skops file instead, or ask an administrator."
            )
        report = preflight(staged, fmt, metadata)
        return _store(
            slug=slug,
            staged=staged,
            filename=filename,
            fmt=fmt,
            digest=digest,
            size=size,
            report=report,
            metadata=metadata,
            user=user,
            channel=channel,
            activate=activate,
            name=name,
            description=description,
        )


def create_model(
    *, slug: str, name: str = "", description: str = "", private: bool = False
) -> MLModel:
    """A route with no version yet (the REST API's create; uploads add versions)."""
    _check_slug(slug)
    try:
        with transaction.atomic():
            return MLModel.objects.create(
                slug=slug, name=name, description=description, private=private
            )
    except IntegrityError:
        raise ModelExists(f"A model with slug '{slug}' already exists.") from None


def display_name(filename: str) -> str:
    """The uploader's file name, for display only: its last path component
    (either separator), without control characters (PostgreSQL text cannot
    hold NUL), at most 255 characters. Stored files never use it."""
    last = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in last if c.isprintable())[:255]


def _check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidMetadata("Metadata must be a JSON object.")
    if not storable(metadata):
        raise InvalidMetadata(
            f"Metadata may not nest deeper than {MAX_METADATA_DEPTH} levels nor "
            "hold NaN, infinities, U+0000 or lone surrogates."
        )
    try:
        check_metadata(metadata)
    except SchemaError as exc:
        raise InvalidMetadata(f"Metadata: {exc}.") from None
    return metadata


def storable(value: Any) -> bool:
    """What every channel (admin, CLI, REST) may store: PostgreSQL's jsonb
    holds neither U+0000, lone surrogates nor NaN, and the API's JSON renderer
    stops at 255 levels when it echoes metadata back."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if "\x00" in item or not _utf8(item):
                return False
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif depth >= MAX_METADATA_DEPTH:
            return False
        elif isinstance(item, dict):
            pending.extend((k, depth + 1) for k in item)
            pending.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            pending.extend((v, depth + 1) for v in item)
    return True


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_slug(slug: str) -> None:
    try:
        validate_slug(slug)
    except ValidationError:
        raise InvalidSlug(
            f"'{slug}' is not a valid slug: use letters, digits, '-' and '_'."
        ) from None
    if len(slug) > MLModel._meta.get_field("slug").max_length:
        raise InvalidSlug("Slugs are at most 100 characters long.")


def _stage(source: IO[bytes], staged: Path) -> staging.Fingerprint:
    """Copy to a private file, hashing and enforcing the size limit on the way."""
    limit = settings.MODELHUB_MAX_MODEL_BYTES
    if hasattr(source, "seek"):
        source.seek(0)
    return staging.stage(
        source,
        staged,
        max_bytes=limit,
        too_large=f"The file is larger than the {limit:,} byte limit "
        "(MODELHUB_MAX_MODEL_BYTES).",
        empty="The file is empty.",
    )


def _store(
    *,
    slug: str,
    staged: Path,
    filename: str,
    fmt: str,
    digest: str,
    size: int,
    report: dict[str, Any],
    metadata: dict[str, Any],
    user: AbstractBaseUser | None,
    channel: str,
    activate: bool,
    name: str,
    description: str,
) -> ModelVersion:
    stored_name: str | None = None
    try:
        with transaction.atomic():
            model, _ = MLModel.objects.select_for_update().get_or_create(
                slug=slug, defaults={"name": name, "description": description}
            )
            number = (model.versions.aggregate(n=Max("number"))["n"] or 0) + 1
            target = f"models/{slug}/v{number}-{digest[:12]}{extension_for(fmt)}"
            with open(staged, "rb") as handle:
                stored_name = default_storage.save(target, File(handle))
            version = ModelVersion.objects.create(
                model=model,
                number=number,
                file=stored_name,
                original_filename=display_name(filename),
                sha256=digest,
                size=size,
                format=fmt,
                kind=report["kind"],
                estimator=report["estimator"][:255],
                input_schema=report["input_schema"],
                classes=report["classes"],
                metadata=metadata,
                library_versions=report["library_versions"],
                warnings=report["warnings"],
                smoke_test=report["smoke_test"][:500],
                created_by=user if user is not None and user.pk else None,
            )
            if activate:
                _switch(model, version, user=user, channel=channel, rollback=False)
    except IntegrityError:
        _discard(stored_name)
        raise InvalidModel(
            "Another version was registered at the same moment; try again."
        ) from None
    except BaseException:
        _discard(stored_name)
        raise
    logger.info("registered %s v%s (%s, sha256 %s)", slug, number, fmt, digest[:12])
    return version


def _discard(stored_name: str | None) -> None:
    if stored_name:
        default_storage.delete(stored_name)


def get_model(slug: str) -> MLModel:
    try:
        return MLModel.objects.get(slug=slug)
    except MLModel.DoesNotExist:
        raise UnknownModel(f"No model with slug '{slug}'.") from None


def get_version(model: MLModel, number: int) -> ModelVersion:
    try:
        return model.versions.get(number=number)
    except ModelVersion.DoesNotExist:
        raise UnknownVersion(f"Model '{model.slug}' has no version {number}.") from None


def activate(
    version: ModelVersion,
    *,
    user: AbstractBaseUser | None = None,
    channel: str = Activation.Channel.CLI,
) -> Activation | None:
    """Serve ``version`` at its model's slug; None if it already is."""
    with transaction.atomic():
        model = MLModel.objects.select_for_update().get(pk=version.model_id)
        if model.active_version_id == version.pk:
            return None
        return _switch(model, version, user=user, channel=channel, rollback=False)


def rollback(
    model: MLModel,
    *,
    user: AbstractBaseUser | None = None,
    channel: str = Activation.Channel.CLI,
) -> Activation:
    """Go back to the version served before the current one."""
    with transaction.atomic():
        model = MLModel.objects.select_for_update().get(pk=model.pk)
        target = _previous_version(model)
        return _switch(model, target, user=user, channel=channel, rollback=True)


def _previous_version(model: MLModel) -> ModelVersion:
    current = model.active_version
    ready = model.versions.filter(status=ModelVersion.Status.READY)
    if current is not None:
        ready = ready.exclude(pk=current.pk)
        last = model.activations.filter(to_number=current.number).first()
        if last and last.from_number:
            earlier = ready.filter(number=last.from_number).first()
            if earlier is not None:
                return earlier
        earlier = ready.filter(number__lt=current.number).order_by("-number").first()
    else:
        earlier = ready.order_by("-number").first()
    if earlier is None:
        raise NothingToRollBack(f"Model '{model.slug}' has no earlier version.")
    return earlier


def _switch(
    model: MLModel,
    version: ModelVersion,
    *,
    user: AbstractBaseUser | None,
    channel: str,
    rollback: bool,
) -> Activation:
    if version.model_id != model.pk:
        raise UnknownVersion(f"v{version.number} does not belong to '{model.slug}'.")
    if version.status != ModelVersion.Status.READY:
        raise VersionNotReady(f"{version} is {version.status}: it cannot be served.")
    previous = model.active_version.number if model.active_version_id else None
    MLModel.objects.filter(pk=model.pk).update(active_version=version)
    model.active_version = version
    known_user = user if user is not None and user.pk else None
    return Activation.objects.create(
        model=model,
        from_number=previous,
        to_number=version.number,
        rollback=rollback,
        channel=channel,
        user=known_user,
        username=known_user.get_username() if known_user else "",
    )


def delete_version(version: ModelVersion) -> None:
    """Delete a version that is not being served, and its file."""
    with transaction.atomic():
        model = MLModel.objects.select_for_update().get(pk=version.model_id)
        if model.active_version_id == version.pk:
            raise VersionActive(
                f"{version} is the active version; activate another one first."
            )
        name = version.file.name
        version.delete()
        transaction.on_commit(lambda: default_storage.delete(name))


def delete_models(models: Iterable[MLModel]) -> None:
    """Delete models with all their versions and files."""
    with transaction.atomic():
        for model in models:
            names = list(model.versions.values_list("file", flat=True))
            model.delete()
            transaction.on_commit(lambda names=names: _delete_files(names))


def _delete_files(names: list[str]) -> None:
    for name in names:
        default_storage.delete(name)
