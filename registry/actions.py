"""The registry's one write path: admin, CLI, REST and checkmodels all come here.

register_version() validates, hashes, stores and (optionally) activates;
activate()/rollback() switch a model's active version in one UPDATE and
record who did it; edit_version() changes how a version serves (schema,
metadata) after the preflight's checks; mark_invalid() takes a version out of
service; delete_version() removes a row and its file together, delete_model()
a model with all of its (refusing one that serves unless forced). Every change
that alters what a slug serves is announced to the other processes when its
transaction commits (registry.changes); nothing else tells them.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from . import batching, changes, mlflow_models, signals, staging, store
from .exceptions import (
    InvalidModel,
    InvalidSchema,
    ModelExists,
    ModelHasActiveVersion,
    ModelTooLarge,
    NothingToChange,
    NothingToRollBack,
    PicklePermissionRequired,
    StoreUnavailable,
    UnknownModel,
    UnknownVersion,
    VersionActive,
    VersionInUse,
    VersionNotReady,
)
from .inspection import SchemaError, normalize_features
from .models import Activation, MLModel, ModelVersion, TrafficPolicy, VersionEdit
from .reference_check import PredictedReference
from .reference_sample import read_reference
from .serialization import PICKLE_FORMATS, detect_format, extension_for
from .stored import check_metadata, check_slug, display_name, storable
from .upload_errors import check_file_name, refusal, too_large
from .validation import local_file, preflight, recheck

logger = logging.getLogger(__name__)
UPLOAD_PERMISSION = "registry.upload_pickle"


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
    reference: IO[bytes] | None = None,
) -> ModelVersion:
    """Store ``source`` as the next version of ``slug`` after a preflight.

    ``source`` may be a zipped MLflow model (sklearn flavor): its model file
    is stored, its signature and input example become metadata that the
    caller's ``metadata`` overrides key by key.

    ``reference`` is a CSV sample of the training data for drift
    (registry.reference_sample): the preflight checks it against the model
    and predicts it, and registry.signals hands both to monitoring in the
    transaction that stores the version.

    ``user=None`` means a trusted local caller (the CLI); any other user needs
    the pickle permission for joblib/pickle files. Nothing is stored unless
    the whole registration succeeds.
    """
    check_file_name(filename)
    metadata = check_metadata(metadata)
    check_slug(slug)
    if not create and not MLModel.objects.filter(slug=slug).exists():
        raise UnknownModel(f"No model with slug '{slug}'.")
    sample = read_reference(reference) if reference is not None else None
    with tempfile.TemporaryDirectory(prefix="modelhub-upload-") as workdir:
        staged = Path(workdir) / "model"
        digest, size, head = _stage(source, staged)
        model_name = filename
        if mlflow_models.is_mlflow_archive(staged, head):
            # The sklearn file inside is what is preflighted, stored and served.
            unpacked = mlflow_models.unpack(
                staged, Path(workdir), max_bytes=settings.MODELHUB_MAX_MODEL_BYTES
            )
            metadata = check_metadata({**unpacked.metadata, **metadata})
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
        report = preflight(
            staged, fmt, metadata, reference=sample.columns if sample else None
        )
        if sample is not None and sample.rows < sample.rows_in_file:
            logger.info(
                "drift reference for %s: %d rows sampled of %d",
                slug,
                sample.rows,
                sample.rows_in_file,
            )
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
            reference=report.get("reference"),
        )


def create_model(
    *,
    slug: str,
    name: str = "",
    description: str = "",
    private: bool = False,
    batch_max_rows: int = batching.OFF,
    batch_max_wait_ms: float = batching.DEFAULT_WAIT_MS,
    capture_payloads: bool = False,
    keep_predictions: bool = True,
) -> MLModel:
    """A route with no version yet (the REST API's create; uploads add versions)."""
    check_slug(slug)
    batching.check(rows=batch_max_rows, wait_ms=batch_max_wait_ms)
    try:
        with transaction.atomic():
            model = MLModel.objects.create(
                slug=slug,
                name=name,
                description=description,
                private=private,
                batch_max_rows=batch_max_rows,
                batch_max_wait_ms=batch_max_wait_ms,
                capture_payloads=capture_payloads,
                keep_predictions=keep_predictions,
            )
            changes.announce()
            return model
    except IntegrityError:
        raise ModelExists(f"A model with slug '{slug}' already exists.") from None


def _stage(source: IO[bytes], staged: Path) -> staging.Fingerprint:
    """Copy to a private file, hashing and enforcing the size limit on the way."""
    limit = settings.MODELHUB_MAX_MODEL_BYTES
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        return staging.stage(source, staged, max_bytes=limit, too_large="", empty="")
    except ModelTooLarge:
        raise too_large(limit) from None
    except InvalidModel:
        raise refusal("empty_file") from None


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
    reference: PredictedReference | None,
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
                stored_name = _save(target, handle)
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
            if reference is not None:
                signals.reference_sample_given.send(
                    sender=ModelVersion,
                    version=version,
                    columns=reference["columns"],
                    predictions=reference["predictions"],
                )
            if activate:
                _switch(model, version, user=user, channel=channel, rollback=False)
            changes.announce()
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


def _save(target: str, handle: BinaryIO) -> str:
    try:
        return store.save(target, handle)
    except store.Unreachable as exc:
        raise StoreUnavailable(
            f"The model store cannot be reached ({exc}); nothing was registered."
        ) from None


def _discard(stored_name: str | None) -> None:
    if stored_name:
        store.delete(stored_name)


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
    promoting: bool = False,
) -> Activation:
    if version.model_id != model.pk:
        raise UnknownVersion(f"v{version.number} does not belong to '{model.slug}'.")
    if version.status != ModelVersion.Status.READY:
        raise VersionNotReady(f"{version} is {version.status}: it cannot be served.")
    previous = model.active_version.number if model.active_version_id else None
    MLModel.objects.filter(pk=model.pk).update(active_version=version)
    if not promoting:  # promote records what it does to the policy itself
        from .rollouts import leave_policy  # rollouts builds on this module

        leave_policy(model, version, user=user, channel=channel)
    model.active_version = version
    changes.announce()
    return Activation.objects.create(
        model=model,
        from_number=previous,
        to_number=version.number,
        rollback=rollback,
        **_made_by(user, channel),
    )


def _made_by(user: AbstractBaseUser | None, channel: str) -> dict[str, Any]:
    """A Change's who and how; ``None`` or an unsaved user is a local caller."""
    known = user if user is not None and user.pk else None
    return {
        "channel": channel,
        "user": known,
        "username": known.get_username() if known else "",
    }


def delete_version(version: ModelVersion) -> None:
    """Delete a version that is not being served, and its file."""
    with transaction.atomic():
        model = MLModel.objects.select_for_update().get(pk=version.model_id)
        if model.active_version_id == version.pk:
            raise VersionActive(
                f"{version} is the active version; activate another one first."
            )
        _refuse_if_routed(version)
        name = version.file.name
        version.delete()
        changes.announce()
        transaction.on_commit(lambda: store.delete(name))


def _refuse_if_routed(version: ModelVersion) -> None:
    aliases = sorted(version.aliases.values_list("name", flat=True))
    if aliases:
        raise VersionInUse(
            f"{version} is what alias {', '.join(aliases)} points to; move or "
            "delete the alias first."
        )
    routed = TrafficPolicy.objects.filter(model_id=version.model_id).filter(
        Q(candidate=version) | Q(shadow=version)
    )
    if routed.exists():
        raise VersionInUse(
            f"{version} is the traffic policy's candidate or shadow; change or "
            "end the policy first."
        )


def delete_models(models: Iterable[MLModel]) -> None:
    """Delete models with all their versions and files."""
    with transaction.atomic():
        for model in models:
            names = list(model.versions.values_list("file", flat=True))
            model.delete()
            changes.announce()
            transaction.on_commit(lambda names=names: _delete_files(names))


def delete_model(model: MLModel, *, force: bool = False) -> None:
    """Delete a model with its versions, their files and its history.

    A model still serving a version is refused unless ``force``: its clients
    would start getting 404s. The check and the delete happen under the
    model's row lock, so an activation cannot slip in between.
    """
    with transaction.atomic():
        locked = MLModel.objects.select_for_update().filter(pk=model.pk).first()
        if locked is None:
            raise UnknownModel(f"No model with slug '{model.slug}'.")
        if locked.active_version_id is not None and not force:
            raise ModelHasActiveVersion(
                f"Model '{locked.slug}' is serving a version: deleting it would "
                "answer its clients 404. Force the delete to go ahead."
            )
        delete_models([locked])


def _delete_files(names: list[str]) -> None:
    for name in names:
        store.delete(name)


def update_model(
    model: MLModel,
    *,
    name: str,
    description: str,
    private: bool,
    slug: str | None = None,
    batch_max_rows: int | None = None,
    batch_max_wait_ms: float | None = None,
    capture_payloads: bool | None = None,
    keep_predictions: bool | None = None,
) -> MLModel:
    """Change a model's name, description, privacy, slug, batching or payload
    capture (all but the first two are what routing serves). ``None`` keeps
    the batching and capture settings as they are."""
    fields: dict[str, Any] = {
        "name": name,
        "description": description,
        "private": private,
    }
    if capture_payloads is not None:
        fields["capture_payloads"] = capture_payloads
    if keep_predictions is not None:
        fields["keep_predictions"] = keep_predictions
    if slug is not None:
        check_slug(slug)
        fields["slug"] = slug
    if batch_max_rows is not None or batch_max_wait_ms is not None:
        rows = model.batch_max_rows if batch_max_rows is None else batch_max_rows
        wait = (
            model.batch_max_wait_ms if batch_max_wait_ms is None else batch_max_wait_ms
        )
        batching.check(rows=rows, wait_ms=wait)
        fields |= {"batch_max_rows": rows, "batch_max_wait_ms": wait}
    try:
        with transaction.atomic():
            MLModel.objects.filter(pk=model.pk).update(**fields)
            changes.announce()
    except IntegrityError:
        raise ModelExists(f"A model with slug '{slug}' already exists.") from None
    model.refresh_from_db()
    return model


def set_grants(model: MLModel, *, users: Iterable[Any], groups: Iterable[Any]) -> None:
    """Who, beyond staff, a private model answers. Read per request, so no
    worker holds a stale copy; announced anyway, as every registry change is."""
    with transaction.atomic():
        model.granted_users.set(list(users))
        model.granted_groups.set(list(groups))
        changes.announce()


@dataclass(frozen=True)
class CheckedEdit:
    """A version edit that passed the preflight's checks, ready to be applied."""

    version: ModelVersion
    input_schema: dict[str, Any] | None
    metadata: dict[str, Any] | None


def check_version_edit(
    version: ModelVersion,
    *,
    input_schema: Any = None,
    metadata: dict[str, Any] | None = None,
) -> CheckedEdit:
    """Validate a new schema and/or metadata for ``version`` as the preflight
    would: the stored file is reloaded in the preflight child and must predict
    on a row built from them (a schema with the wrong number or names of
    features does not)."""
    schema = None
    if input_schema is not None:
        try:
            features = normalize_features(input_schema)
        except SchemaError as exc:
            raise InvalidSchema(f"Input schema: {exc}.") from None
        schema = {**(version.input_schema or {}), "features": features}
        if not storable(schema):
            raise InvalidSchema(
                "The input schema may not hold NaN, infinities, U+0000 or lone "
                "surrogates."
            )
    if metadata is not None:
        metadata = check_metadata(metadata)
    if schema is None and metadata is None:
        raise NothingToChange("Nothing to change: give an input schema or metadata.")
    new_metadata = version.metadata if metadata is None else metadata
    try:
        with local_file(version.file.name) as path:
            recheck(
                path=path,
                fmt=version.format,
                sha256=version.sha256,
                metadata=new_metadata or {},
                input_schema=schema or version.input_schema or None,
            )
    except FileNotFoundError:
        raise InvalidSchema(
            f"{version}'s file is missing from storage: it cannot be checked."
        ) from None
    except InvalidModel as exc:
        detail = exc.technical or exc.message
        raise InvalidSchema(f"The change does not fit the model: {detail}") from None
    return CheckedEdit(version=version, input_schema=schema, metadata=metadata)


def apply_version_edit(
    edit: CheckedEdit,
    *,
    user: AbstractBaseUser | None = None,
    channel: str = Activation.Channel.CLI,
) -> ModelVersion:
    """Store a checked edit, record it in the model's history and announce it."""
    version = edit.version
    fields: dict[str, Any] = {}
    changed: dict[str, Any] = {}
    if edit.input_schema is not None and edit.input_schema != version.input_schema:
        fields["input_schema"] = edit.input_schema
        changed["input_schema"] = {
            "from": _feature_names(version.input_schema),
            "to": _feature_names(edit.input_schema),
        }
    if edit.metadata is not None and edit.metadata != version.metadata:
        fields["metadata"] = edit.metadata
        keys = set(edit.metadata) | set(version.metadata or {})
        changed["metadata"] = sorted(
            k for k in keys if edit.metadata.get(k) != (version.metadata or {}).get(k)
        )
    if not fields:
        return version
    with transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(**fields)
        VersionEdit.objects.create(
            model_id=version.model_id,
            number=version.number,
            changes=changed,
            **_made_by(user, channel),
        )
        changes.announce()
    version.refresh_from_db()
    logger.info("edited %s (%s)", version, ", ".join(changed))
    return version


def edit_version(
    version: ModelVersion,
    *,
    input_schema: Any = None,
    metadata: dict[str, Any] | None = None,
    user: AbstractBaseUser | None = None,
    channel: str = Activation.Channel.CLI,
) -> ModelVersion:
    """Check and apply a new schema and/or metadata for ``version``."""
    edit = check_version_edit(version, input_schema=input_schema, metadata=metadata)
    return apply_version_edit(edit, user=user, channel=channel)


def _feature_names(schema: dict[str, Any] | None) -> list[str]:
    return [str(f.get("name")) for f in (schema or {}).get("features") or []]


def mark_invalid(version: ModelVersion, *, message: str) -> bool:
    """Take a ready version out of service; False if it was no longer ready."""
    with transaction.atomic():
        marked = ModelVersion.objects.filter(
            pk=version.pk, status=ModelVersion.Status.READY
        ).update(status=ModelVersion.Status.INVALID, status_message=message)
        if marked:
            changes.announce()
    return bool(marked)


def record_load_failure(version_id: int, detail: str) -> None:
    """A worker could not load the version's file: shown on its admin page.

    Not announced: it changes nothing a slug serves, and a failing worker
    records it once per retry window. A database outage only skips it.
    """
    try:
        ModelVersion.objects.filter(id=version_id).update(
            load_error=detail[:1000], load_error_at=timezone.now()
        )
    except DatabaseError:
        logger.warning("could not record the load failure of version %s", version_id)


def record_crash(version_id: int, detail: str) -> bool:
    """The version's model ended or hung a worker while predicting (the
    gunicorn master's child_exit hook says so). After
    MODELHUB_MAX_MODEL_CRASHES it is marked invalid, served no more until an
    operator activates another version; True if this crash did that."""
    ModelVersion.objects.filter(id=version_id).update(
        crashes=F("crashes") + 1, load_error=detail[:1000], load_error_at=timezone.now()
    )
    version = ModelVersion.objects.filter(id=version_id).first()
    if version is None or version.crashes < settings.MODELHUB_MAX_MODEL_CRASHES:
        return False
    return mark_invalid(
        version,
        message=f"Its model ended or hung a worker {version.crashes} times while "
        f"predicting; last: {detail[:500]}",
    )


def clear_load_failure(version_id: int) -> None:
    """A worker loaded the version again (not announced, as above)."""
    try:
        ModelVersion.objects.filter(id=version_id, load_error_at__isnull=False).update(
            load_error="", load_error_at=None
        )
    except DatabaseError:
        pass
