"""register_version(), activation history, rollback and deletion."""

from __future__ import annotations

import operator

import numpy as np
import pytest

from registry import actions
from registry.exceptions import (
    InvalidMetadata,
    InvalidModel,
    NothingToChange,
    NothingToRollBack,
    UnknownModel,
    VersionActive,
)
from registry.models import MLModel, ModelVersion, VersionEdit

pytestmark = pytest.mark.django_db


def register(path, slug="m", **kwargs) -> ModelVersion:
    with open(path, "rb") as source:
        return actions.register_version(
            slug=slug, source=source, filename=path.name, **kwargs
        )


@pytest.fixture
def untrusted_skops_path(tmp_path):
    import skops.io as sio
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x = np.abs(np.random.default_rng(0).normal(size=(20, 2)))
    pipe = make_pipeline(FunctionTransformer(operator.neg), LinearRegression())
    path = tmp_path / "logpipe.skops"
    sio.dump(pipe.fit(x, x[:, 0]), path)
    return path


def test_stored_file_name_is_generated_by_server(tmp_path, iris_classifier, media_root):
    from tests.conftest import dump

    odd = dump(iris_classifier, tmp_path / "..%2f..%2fevil name.joblib")
    version = register(odd, slug="iris")
    assert version.file.name.startswith("models/iris/v1-")
    assert (media_root / version.file.name).is_file()
    assert version.original_filename == "..%2f..%2fevil name.joblib"


def test_skops_file_with_untrusted_type_is_refused_with_type_names(
    untrusted_skops_path, stored_files
):
    with pytest.raises(InvalidModel, match="not trusted: _operator.neg"):
        register(untrusted_skops_path)
    assert not ModelVersion.objects.exists()
    assert stored_files() == []


def test_skops_types_trusted_in_settings_are_accepted(untrusted_skops_path, settings):
    settings.MODELHUB_SKOPS_TRUSTED_TYPES = ["_operator.neg"]
    assert register(untrusted_skops_path).format == "skops"


def test_rollback_returns_to_previously_served_version(iris_path):
    for _ in range(3):
        register(iris_path)
    model = MLModel.objects.get()
    actions.activate(model.versions.get(number=1))
    actions.activate(model.versions.get(number=3))
    switch = actions.rollback(model)
    assert (switch.from_number, switch.to_number, switch.rollback) == (3, 1, True)
    model.refresh_from_db()
    assert model.active_version.number == 1


def test_rollback_falls_back_to_highest_earlier_version(iris_path):
    register(iris_path)
    register(iris_path)
    model = MLModel.objects.get()
    switch = actions.rollback(model)
    assert (switch.from_number, switch.to_number) == (2, 1)
    with pytest.raises(NothingToRollBack):
        actions.rollback(MLModel.objects.create(slug="empty"))


def test_activate_is_a_no_op_for_the_active_version(iris_path):
    version = register(iris_path)
    assert actions.activate(version) is None
    assert version.model.activations.count() == 1


def test_delete_version_refuses_active_and_removes_inactive_file(
    iris_path, stored_files, django_capture_on_commit_callbacks
):
    v1 = register(iris_path)
    v2 = register(iris_path)
    with pytest.raises(VersionActive):
        actions.delete_version(v2)
    with django_capture_on_commit_callbacks(execute=True):
        actions.delete_version(v1)
    assert [p.name for p in stored_files()] == [v2.file.name.rsplit("/", 1)[1]]


def test_delete_models_removes_every_file(
    iris_path, stored_files, django_capture_on_commit_callbacks
):
    register(iris_path)
    register(iris_path)
    with django_capture_on_commit_callbacks(execute=True):
        actions.delete_models(MLModel.objects.all())
    assert stored_files() == []
    assert not ModelVersion.objects.exists()


def test_register_into_unknown_model_without_create_is_refused(iris_path):
    with pytest.raises(UnknownModel):
        register(iris_path, create=False)


def test_failed_database_write_leaves_no_orphan_file(
    iris_path, stored_files, monkeypatch
):
    def explode(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(ModelVersion.objects, "create", explode)
    with pytest.raises(RuntimeError):
        register(iris_path)
    assert stored_files() == []
    assert not MLModel.objects.exists()


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "metadata",
    [
        {"note": "nul\x00byte"},
        {"note": "lone \ud800 surrogate"},
        {"accuracy": float("nan")},
        {"scores": [1.0, float("inf")]},
        {"key\x00": 1},
        _nested(70),
    ],
    ids=["nul", "surrogate", "nan", "infinity", "nul-key", "too-deep"],
)
def test_metadata_no_database_can_store_is_refused_whatever_the_channel(
    iris_path, metadata
):
    """The admin, loadmodel and the REST API all end in register_version."""
    with pytest.raises(InvalidMetadata, match="may not nest deeper"):
        register(iris_path, metadata=metadata)
    assert not ModelVersion.objects.exists()
    assert not MLModel.objects.exists()


def test_metadata_at_the_nesting_limit_is_stored(iris_path):
    version = register(iris_path, metadata={"deep": _nested(60)})
    assert version.metadata["deep"]["a"]["a"] == _nested(58)


def test_edit_version_changes_schema_and_metadata_and_records_who(
    publish, numpy_regressor, staff_user
):
    version = publish(numpy_regressor, "diabetes", metadata={"owner": "a"})
    renamed = [{"name": f"x{i}", "type": "number"} for i in range(10)]
    edited = actions.edit_version(
        version,
        input_schema=renamed,
        metadata={"owner": "b"},
        user=staff_user,
        channel="admin",
    )
    assert [f["name"] for f in edited.input_schema["features"]][:2] == ["x0", "x1"]
    assert edited.input_schema["source"] == version.input_schema["source"]
    assert edited.metadata == {"owner": "b"}
    change = VersionEdit.objects.get()
    assert change.changes == {
        "input_schema": {
            "from": [f"f{i}" for i in range(10)],
            "to": [f"x{i}" for i in range(10)],
        },
        "metadata": ["owner"],
    }
    assert (change.channel, change.username) == ("admin", staff_user.username)


def test_edit_version_that_changes_nothing_records_nothing(publish, numpy_regressor):
    version = publish(numpy_regressor, "diabetes", metadata={"owner": "a"})
    actions.edit_version(version, metadata={"owner": "a"})
    assert not VersionEdit.objects.exists()
    with pytest.raises(NothingToChange):
        actions.edit_version(version)


def test_edit_version_refuses_unstorable_metadata(publish, numpy_regressor):
    version = publish(numpy_regressor, "diabetes")
    with pytest.raises(InvalidMetadata):
        actions.edit_version(version, metadata={"x": float("nan")})
    version.refresh_from_db()
    assert version.metadata == {}


def test_mark_invalid_takes_a_ready_version_out_of_service_once(
    publish, iris_classifier
):
    version = publish(iris_classifier, "iris")
    assert actions.mark_invalid(version, message="checkmodels: broken")
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.INVALID
    assert version.status_message == "checkmodels: broken"
    assert not actions.mark_invalid(version, message="again")


def test_load_failures_are_recorded_and_cleared_on_the_version(
    publish, iris_classifier
):
    version = publish(iris_classifier, "iris")
    actions.record_load_failure(version.pk, "x" * 2000)
    version.refresh_from_db()
    assert version.load_error == "x" * 1000 and version.load_error_at
    actions.clear_load_failure(version.pk)
    version.refresh_from_db()
    assert (version.load_error, version.load_error_at) == ("", None)
