"""MLflow model directories and zips: the sklearn flavor in, ModelHub metadata out.

An MLflow model is a directory with an ``MLmodel`` file (YAML) naming its
flavors. We take the ``sklearn`` flavor's pickled model file, turn the
signature into an input schema and the saved input example into the example
the preflight predicts on, and keep the rest (run id, versions) as metadata.

Archives come from uploaders, so reading one is defensive: no member is ever
written under its own name, and names that climb out of the archive,
symlinks, nested archives, oversized or over-compressed members are refused.
"""

from __future__ import annotations

import io
import json
import math
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from . import jsondepth
from .exceptions import InvalidModel, ModelTooLarge
from .staging import Fingerprint, stage

MLMODEL = "MLmodel"
SKLEARN_FORMATS = {"cloudpickle": ".pkl", "pickle": ".pkl", "skops": ".skops"}
_ZIP_MAGIC = b"PK\x03\x04"
_MAX_MEMBERS = 10_000
_MAX_TEXT_BYTES = 1024 * 1024  # MLmodel and the input example
_MAX_RATIO = 200  # uncompressed / compressed, per member: beyond that, a bomb
_EXAMPLE_ROWS = 5
_MAX_EXAMPLE_DEPTH = 64  # as registry.stored.MAX_METADATA_DEPTH
_NESTED_ARCHIVES = (".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".7z", ".rar")
_COLUMN_TYPES = {"double", "float", "long", "integer", "boolean", "string"}


@dataclass(frozen=True)
class UnpackedModel:
    """The sklearn model file taken out of an MLflow archive, and what it says."""

    path: Path
    filename: str
    metadata: dict[str, Any]
    fingerprint: Fingerprint  # of the file at ``path``, taken as it was written


def is_mlflow_archive(path: Path, head: bytes) -> bool:
    """A zip with an MLmodel file at its root or in its one top folder.

    A skops file is a zip too, without an MLmodel file.
    """
    if not head.startswith(_ZIP_MAGIC):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(_is_mlmodel(name) for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def unpack(archive_path: Path, workdir: Path, *, max_bytes: int) -> UnpackedModel:
    """Take the sklearn model out of an MLflow zip into ``workdir``.

    Raises InvalidModel (not an sklearn MLflow model, unsafe archive) or
    ModelTooLarge (the model file is over ``max_bytes`` once uncompressed).
    """
    try:
        with zipfile.ZipFile(archive_path) as archive:
            members = _checked_members(archive, max_bytes)
            root = _model_root(members)
            mlmodel = _parse_mlmodel(_read_text(archive, members, root / MLMODEL))
            flavor = _sklearn_flavor(mlmodel)
            inner = _member_path(root, flavor["pickled_model"], "pickled_model")
            if str(inner) not in members:
                raise InvalidModel(
                    f"The MLmodel file names the model file '{inner.name}', "
                    "which is not in the archive."
                )
            target = workdir / "mlflow-model"
            fingerprint = _extract(archive, members[str(inner)], target, max_bytes)
            example = _input_example(archive, members, root, mlmodel)
    except zipfile.BadZipFile as exc:
        raise InvalidModel(f"The MLflow archive is not a readable zip: {exc}") from None
    suffix = SKLEARN_FORMATS[flavor["serialization_format"]]
    if inner.suffix.lower() == ".joblib":
        suffix = ".joblib"
    return UnpackedModel(
        path=target,
        filename=f"model{suffix}",
        metadata=_metadata(mlmodel, flavor, example),
        fingerprint=fingerprint,
    )


def pack_directory(directory: Path) -> IO[bytes]:
    """Zip an MLflow model directory's MLmodel and the files it refers to.

    Only what ``unpack`` reads goes in, so a directory full of other
    artifacts costs nothing; a missing file is left for ``unpack`` to name.
    """
    directory = directory.resolve()
    mlmodel_path = directory / MLMODEL
    if not mlmodel_path.is_file():
        raise InvalidModel(f"{directory.name}: not an MLflow model (no MLmodel file).")
    names = [MLMODEL]
    try:
        mlmodel = _parse_mlmodel(mlmodel_path.read_bytes()[:_MAX_TEXT_BYTES])
    except InvalidModel:
        mlmodel = {}
    flavor = (mlmodel.get("flavors") or {}).get("sklearn")
    if isinstance(flavor, dict) and isinstance(flavor.get("pickled_model"), str):
        names.append(flavor["pickled_model"])
    example = mlmodel.get("saved_input_example_info")
    if isinstance(example, dict) and isinstance(example.get("artifact_path"), str):
        names.append(example["artifact_path"])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            path = (directory / name).resolve()
            if path.is_relative_to(directory) and path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    buffer.seek(0)
    return buffer


# --- the archive ------------------------------------------------------------------


def _is_mlmodel(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and parts[-1] == MLMODEL and len(parts) <= 2


def _checked_members(
    archive: zipfile.ZipFile, max_bytes: int
) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise InvalidModel(f"The archive holds more than {_MAX_MEMBERS:,} files.")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name).parts
        if (
            "\\" in name
            or "\x00" in name
            or name.startswith("/")
            or ".." in parts
            or (parts and parts[0].endswith(":"))
        ):
            raise InvalidModel(
                f"Refused: the archive member {name[:100]!r} points outside it."
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise InvalidModel(f"Refused: the archive member {name[:100]!r} is a link.")
        if info.is_dir():
            continue
        if name.lower().endswith(_NESTED_ARCHIVES):
            raise InvalidModel(
                f"Refused: the archive holds another archive ({name[:100]!r})."
            )
        if info.file_size > max_bytes:
            raise ModelTooLarge(
                f"The archive member {name[:100]!r} is larger than the "
                f"{max_bytes:,} byte limit (MODELHUB_MAX_MODEL_BYTES) once unpacked."
            )
        if info.file_size > _MAX_RATIO * max(info.compress_size, 1) + 1024:
            raise InvalidModel(
                f"Refused: the archive member {name[:100]!r} is compressed more "
                f"than {_MAX_RATIO}:1, as zip bombs are."
            )
        members[str(PurePosixPath(name))] = info
    return members


def _model_root(members: dict[str, zipfile.ZipInfo]) -> PurePosixPath:
    found = [PurePosixPath(name).parent for name in members if _is_mlmodel(name)]
    if not found:
        raise InvalidModel("The archive is not an MLflow model (no MLmodel file).")
    if len(found) > 1:
        raise InvalidModel("The archive holds more than one MLflow model.")
    return found[0]


def _member_path(root: PurePosixPath, relative: Any, field: str) -> PurePosixPath:
    if not isinstance(relative, str) or not relative:
        raise InvalidModel(f"The MLmodel file has no usable '{field}'.")
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or "\\" in relative:
        raise InvalidModel(
            f"Refused: the MLmodel file's '{field}' points outside the model."
        )
    return root / path


def _read_text(
    archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], path: PurePosixPath
) -> bytes:
    info = members.get(str(path))
    if info is None:
        raise InvalidModel(f"The archive has no {path.name} file.")
    if info.file_size > _MAX_TEXT_BYTES:
        raise InvalidModel(f"{path.name} is larger than {_MAX_TEXT_BYTES:,} bytes.")
    with archive.open(info) as member:
        return member.read(_MAX_TEXT_BYTES + 1)[:_MAX_TEXT_BYTES]


def _extract(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, max_bytes: int
) -> Fingerprint:
    """Copy one member to ``target``, counting real bytes: sizes can lie."""
    with archive.open(info) as member:
        return stage(
            member,
            target,
            max_bytes=max_bytes,
            too_large=f"The model file is larger than the {max_bytes:,} byte limit "
            "(MODELHUB_MAX_MODEL_BYTES) once unpacked.",
            empty="The model file in the archive is empty.",
        )


# --- the MLmodel file -------------------------------------------------------------


def _parse_mlmodel(raw: bytes) -> dict[str, Any]:
    """MLflow writes plain YAML; anchors and aliases are refused outright, as
    nested aliases (billion laughs) make a 1 KB file a gigabyte once walked."""
    import yaml

    from .yaml_documents import AliasRefused, load_without_aliases

    try:
        document = load_without_aliases(raw.decode("utf-8"))
    except AliasRefused as exc:
        raise InvalidModel(f"Refused: the MLmodel file {exc}.") from None
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InvalidModel(f"The MLmodel file is not valid YAML: {detail}") from None
    if not isinstance(document, dict):
        raise InvalidModel("The MLmodel file is not a YAML mapping.")
    return document


def _sklearn_flavor(mlmodel: dict[str, Any]) -> dict[str, Any]:
    flavors = mlmodel.get("flavors")
    if not isinstance(flavors, dict):
        raise InvalidModel("The MLmodel file lists no flavors.")
    flavor = flavors.get("sklearn")
    if not isinstance(flavor, dict):
        names = ", ".join(sorted(str(name) for name in flavors)) or "none"
        raise InvalidModel(
            f"MLflow model has no sklearn flavor (flavors: {names}); ModelHub "
            "serves scikit-learn models only."
        )
    fmt = flavor.get("serialization_format", "cloudpickle")
    if fmt not in SKLEARN_FORMATS:
        raise InvalidModel(
            f"The sklearn flavor's serialization format {fmt!r} is not supported "
            f"(use one of {', '.join(SKLEARN_FORMATS)})."
        )
    return {**flavor, "serialization_format": fmt}


def _signature_inputs(mlmodel: dict[str, Any]) -> list[dict[str, Any]] | None:
    signature = mlmodel.get("signature")
    if not isinstance(signature, dict) or signature.get("inputs") is None:
        return None
    inputs = signature["inputs"]
    if isinstance(inputs, str):
        try:
            inputs = json.loads(inputs)
        except json.JSONDecodeError as exc:
            raise InvalidModel(f"The MLflow signature is not JSON: {exc}") from None
    if not isinstance(inputs, list):
        raise InvalidModel("The MLflow signature's inputs are not a list.")
    return inputs


def _input_schema(inputs: list[dict[str, Any]] | None) -> list[dict[str, str]] | None:
    """Named columns become features; a tensor signature leaves it to the model."""
    if not inputs or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) for c in inputs
    ):
        return None
    features = []
    for column in inputs:
        kind = column.get("type")
        if kind not in _COLUMN_TYPES:
            raise InvalidModel(
                f"The MLflow signature's column {column['name']!r} has type "
                f"{kind!r}; ModelHub takes {', '.join(sorted(_COLUMN_TYPES))}."
            )
        features.append({"name": column["name"], "type": kind})
    return features


def _input_example(
    archive: zipfile.ZipFile,
    members: dict[str, zipfile.ZipInfo],
    root: PurePosixPath,
    mlmodel: dict[str, Any],
) -> list[Any] | None:
    info = mlmodel.get("saved_input_example_info")
    if not isinstance(info, dict):
        return None
    path = _member_path(root, info.get("artifact_path"), "artifact_path")
    try:
        document = json.loads(_read_text(archive, members, path))
    except RecursionError:
        document = None  # deeper than the interpreter's stack: refused below
        depth_refused = True
    except ValueError as exc:
        raise InvalidModel(f"The MLflow input example is not JSON: {exc}") from None
    else:
        depth_refused = jsondepth.deeper_than(document, _MAX_EXAMPLE_DEPTH)
    if depth_refused:
        raise InvalidModel(
            f"The MLflow input example nests deeper than {_MAX_EXAMPLE_DEPTH} levels."
        )
    rows = _example_rows(document, info)
    return [_finite(row) for row in rows[:_EXAMPLE_ROWS]] if rows else None


def _example_rows(document: Any, info: dict[str, Any]) -> list[Any] | None:
    """The example as records (or positional rows), whatever orient MLflow used."""
    if isinstance(document, dict) and "dataframe_split" in document:
        document = document["dataframe_split"]
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        columns = document.get("columns")
        if isinstance(columns, list):
            return [
                dict(zip(columns, row, strict=False))
                for row in document["data"]
                if isinstance(row, list)
            ]
        return document["data"]
    if isinstance(document, dict):
        for key in ("dataframe_records", "instances", "inputs"):
            if key in document:
                document = document[key]
                break
    if isinstance(document, dict) and all(
        isinstance(v, list) for v in document.values()
    ):
        columns = list(document)
        return [
            dict(zip(columns, row, strict=False))
            for row in zip(*document.values(), strict=False)
        ]
    if isinstance(document, dict):
        return [document]
    if isinstance(document, list) and document:
        if info.get("type") == "ndarray" and not isinstance(document[0], list):
            return [document]
        return document
    return None


def _finite(value: Any) -> Any:
    """NaN and infinities as null: PostgreSQL's JSON cannot hold them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _metadata(
    mlmodel: dict[str, Any], flavor: dict[str, Any], example: list[Any] | None
) -> dict[str, Any]:
    inputs = _signature_inputs(mlmodel)
    origin: dict[str, Any] = {
        key: str(mlmodel[key])
        for key in (
            "run_id",
            "model_uuid",
            "model_id",
            "mlflow_version",
            "artifact_path",
            "utc_time_created",
        )
        if mlmodel.get(key) is not None
    }
    origin["flavor"] = {
        key: str(flavor[key])
        for key in ("serialization_format", "sklearn_version", "pickled_model")
        if flavor.get(key) is not None
    }
    signature = mlmodel.get("signature")
    if isinstance(signature, dict):
        origin["signature"] = {
            key: str(signature[key])[: _MAX_TEXT_BYTES // 16]
            for key in ("inputs", "outputs", "params")
            if signature.get(key) is not None
        }
    metadata: dict[str, Any] = {"mlflow": origin}
    features = _input_schema(inputs)
    if features is not None:
        metadata["input_schema"] = features
    if example is not None:
        metadata["input_example"] = example
    return metadata
