"""A model's adaptive-batching settings: their limits on every channel (model
validation, actions, admin, loadmodel), and every worker's route carrying them
from the next request after a change."""

from __future__ import annotations

import json
import math
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from registry import actions, generation, routing
from registry.batching import InvalidBatching
from registry.models import MLModel

pytestmark = pytest.mark.django_db

BAD_ROWS = [1, -1, 1025, 10**30, 2.0, "32", True]
BAD_WAITS = [0, 0.0, -1.0, 100.5, math.nan, math.inf, 10**400, "2", True]


def test_a_new_model_does_not_batch():
    model = actions.create_model(slug="iris")
    assert (model.batch_max_rows, model.batch_max_wait_ms) == (0, 2.0)
    assert not model.batching_on


@pytest.mark.parametrize("rows", [0, 2, 32, 1024])
def test_model_validation_accepts_off_and_two_to_1024_rows(rows):
    MLModel(slug="iris", batch_max_rows=rows).full_clean()


@pytest.mark.parametrize("wait", [0.001, 2, 2.5, 100])
def test_model_validation_accepts_a_wait_above_0_up_to_100_ms(wait):
    MLModel(slug="iris", batch_max_rows=8, batch_max_wait_ms=wait).full_clean()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("batch_max_rows", 1, "Use 0 (batching off) or a whole number of rows"),
        ("batch_max_rows", 1025, "from 2 to 1024; got 1025"),
        ("batch_max_wait_ms", 0.0, "above 0 and at most 100; got 0.0"),
        ("batch_max_wait_ms", 250.0, "above 0 and at most 100; got 250.0"),
    ],
)
def test_model_validation_names_the_allowed_range(field, value, message):
    with pytest.raises(ValidationError) as caught:
        MLModel(slug="iris", **{field: value}).full_clean()
    assert message in " ".join(caught.value.message_dict[field])


BAD_BATCHING = [{"batch_max_rows": rows} for rows in BAD_ROWS] + [
    {"batch_max_rows": 8, "batch_max_wait_ms": wait} for wait in BAD_WAITS
]


@pytest.mark.parametrize("fields", BAD_BATCHING)
def test_update_model_refuses_bad_batching_and_changes_nothing(
    publish, iris_classifier, fields
):
    model = publish(iris_classifier, "iris").model
    with pytest.raises(InvalidBatching) as caught:
        actions.update_model(model, name="x", description="", private=False, **fields)
    assert caught.value.code == "invalid_batching"
    named = "batch_max_wait_ms" if "batch_max_wait_ms" in fields else "batch_max_rows"
    assert f"'{named}'" in caught.value.message
    model = MLModel.objects.get()
    assert (model.name, model.batch_max_rows, model.batch_max_wait_ms) == ("", 0, 2.0)


def test_create_model_refuses_bad_batching_and_creates_nothing():
    with pytest.raises(InvalidBatching):
        actions.create_model(slug="iris", batch_max_rows=4096)
    assert not MLModel.objects.exists()


def test_update_model_keeps_the_batching_setting_left_out(publish, iris_classifier):
    model = publish(iris_classifier, "iris").model
    actions.update_model(
        model,
        name="",
        description="",
        private=False,
        batch_max_rows=32,
        batch_max_wait_ms=5.0,
    )
    actions.update_model(model, name="Iris", description="", private=False)
    actions.update_model(
        model, name="Iris", description="", private=False, batch_max_wait_ms=1
    )
    model = MLModel.objects.get()
    assert (model.name, model.batch_max_rows, model.batch_max_wait_ms) == (
        "Iris",
        32,
        1.0,
    )


def turn_on(model: MLModel, *, rows: int, wait_ms: float) -> None:
    actions.update_model(
        model,
        name=model.name,
        description=model.description,
        private=model.private,
        batch_max_rows=rows,
        batch_max_wait_ms=wait_ms,
    )


def test_the_route_carries_the_models_batching(publish, iris_classifier):
    version = publish(iris_classifier, "iris")
    off = routing.resolve("iris")
    assert (off.batch_max_rows, off.batch_max_wait_ms) == (0, 2.0)
    turn_on(version.model, rows=32, wait_ms=2.5)
    for ref in (routing.resolve("iris"), routing.resolve("iris", 1)):
        assert (ref.batch_max_rows, ref.batch_max_wait_ms) == (32, 2.5)
        assert ref.number == 1 and ref.private is False


def test_resolving_a_batching_route_is_still_one_query(
    publish, iris_classifier, django_assert_num_queries
):
    version = publish(iris_classifier, "iris")
    actions.update_model(
        version.model, name="", description="", private=False, batch_max_rows=8
    )
    routing.forget()
    with django_assert_num_queries(1):
        assert routing.resolve("iris").batch_max_rows == 8
    with django_assert_num_queries(1):
        assert routing.resolve("iris", 1).batch_max_rows == 8


def test_a_batching_change_reaches_a_worker_serving_its_route_from_memory(
    generation_file, publish, iris_classifier, django_assert_num_queries
):
    """A worker that trusts its cached routes while the generation stands sees
    the change on its next request, as it sees a change of privacy."""
    version = publish(iris_classifier, "iris")
    routing.resolve("iris")
    with django_assert_num_queries(0):
        assert routing.resolve("iris").batch_max_rows == 0
    before = generation.current(generation_file)
    turn_on(version.model, rows=16, wait_ms=3.0)
    assert generation.current(generation_file) > before
    with django_assert_num_queries(1):
        ref = routing.resolve("iris")
    assert (ref.batch_max_rows, ref.batch_max_wait_ms) == (16, 3.0)


# --- admin -------------------------------------------------------------------


def model_page(model: MLModel) -> str:
    return reverse("admin:registry_mlmodel_change", args=[model.pk])


def post_model_page(client, model: MLModel, **fields: str):
    return client.post(
        model_page(model),
        {
            "slug": model.slug,
            "name": model.name,
            "description": model.description,
            "versions-TOTAL_FORMS": 0,
            "versions-INITIAL_FORMS": 0,
            "activations-TOTAL_FORMS": 0,
            "activations-INITIAL_FORMS": 0,
            **fields,
        },
    )


def test_admin_model_page_has_a_batching_fieldset_that_explains_it(
    staff_client, publish, iris_classifier
):
    model = publish(iris_classifier, "iris").model
    page = staff_client.get(model_page(model)).content.decode()
    assert "<h2" in page and ">Batching</h2>" in page
    assert 'name="batch_max_rows"' in page and 'name="batch_max_wait_ms"' in page
    assert "predicted in one call" in page
    assert "identical to unbatched ones" in page
    assert "MODELHUB_WORKERS x MODELHUB_THREADS" in page


def test_admin_turns_batching_on_and_the_route_serves_it(
    staff_client, publish, iris_classifier
):
    model = publish(iris_classifier, "iris").model
    response = post_model_page(
        staff_client, model, batch_max_rows="32", batch_max_wait_ms="2.5"
    )
    assert response.status_code == 302
    ref = routing.resolve("iris")
    assert (ref.batch_max_rows, ref.batch_max_wait_ms) == (32, 2.5)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"batch_max_rows": "1"}, "Use 0 (batching off) or a whole number of rows"),
        ({"batch_max_rows": "5000"}, "from 2 to 1024"),
        ({"batch_max_wait_ms": "0"}, "above 0 and at most 100"),
        ({"batch_max_wait_ms": "101"}, "above 0 and at most 100"),
    ],
)
def test_admin_shows_out_of_range_batching_as_a_form_error(
    staff_client, publish, iris_classifier, fields, message
):
    model = publish(iris_classifier, "iris").model
    response = post_model_page(staff_client, model, **fields)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert MLModel.objects.get().batch_max_rows == 0


def test_admin_keeps_batching_when_a_post_leaves_it_out(
    staff_client, publish, iris_classifier
):
    model = publish(iris_classifier, "iris").model
    post_model_page(staff_client, model, batch_max_rows="8", batch_max_wait_ms="4")
    response = post_model_page(staff_client, model, name="Iris")
    assert response.status_code == 302
    model.refresh_from_db()
    assert (model.name, model.batch_max_rows, model.batch_max_wait_ms) == (
        "Iris",
        8,
        4.0,
    )


def test_admin_warns_when_batching_is_on_but_the_server_runs_one_request_at_a_time(
    staff_client, publish, iris_classifier, settings
):
    model = publish(iris_classifier, "iris").model
    notice = "modelhub-batching-idle"
    settings.MODELHUB_WORKERS, settings.MODELHUB_THREADS = 1, 1
    assert notice not in staff_client.get(model_page(model)).content.decode()
    post_model_page(staff_client, model, batch_max_rows="8", batch_max_wait_ms="2")
    page = staff_client.get(model_page(model)).content.decode()
    assert notice in page and "MODELHUB_WORKERS=1" in page
    settings.MODELHUB_WORKERS = 4  # sync workers feed one batch process
    assert notice not in staff_client.get(model_page(model)).content.decode()
    settings.MODELHUB_WORKERS, settings.MODELHUB_THREADS = 1, 4
    assert notice not in staff_client.get(model_page(model)).content.decode()


# --- loadmodel and modelinfo ----------------------------------------------------


def loadmodel(*args: str) -> str:
    out = StringIO()
    call_command("loadmodel", *args, stdout=out)
    return out.getvalue().strip()


def modelinfo(slug: str) -> dict:
    out = StringIO()
    call_command("modelinfo", slug, stdout=out)
    return json.loads(out.getvalue())


def test_loadmodel_sets_batching_and_modelinfo_shows_it(iris_path, stored_files):
    flags = ["--batch-max-rows", "32", "--batch-max-wait-ms", "2"]
    shown = json.loads(loadmodel(str(iris_path), "--slug", "iris", "--json", *flags))
    assert (shown["batch_max_rows"], shown["batch_max_wait_ms"]) == (32, 2.0)
    info = modelinfo("iris")
    assert (info["batch_max_rows"], info["batch_max_wait_ms"]) == (32, 2.0)
    ref = routing.resolve("iris")
    assert (ref.batch_max_rows, ref.batch_max_wait_ms) == (32, 2.0)


def test_loadmodel_without_batching_flags_keeps_the_models_batching(
    iris_path, stored_files
):
    loadmodel(str(iris_path), "--slug", "iris", "--batch-max-rows", "16")
    assert loadmodel(str(iris_path), "--slug", "iris") == "iris v2"
    assert modelinfo("iris")["batch_max_rows"] == 16
    loadmodel(str(iris_path), "--slug", "iris", "--batch-max-rows", "0")
    assert modelinfo("iris")["batch_max_rows"] == 0


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--batch-max-rows", "1"], "'batch_max_rows'"),
        (["--batch-max-rows", "2048"], "'batch_max_rows'"),
        (["--batch-max-rows", "8", "--batch-max-wait-ms", "0"], "'batch_max_wait_ms'"),
        (
            ["--batch-max-rows", "8", "--batch-max-wait-ms", "nan"],
            "'batch_max_wait_ms'",
        ),
        (["--batch-max-wait-ms", "500"], "'batch_max_wait_ms'"),
    ],
)
def test_loadmodel_refuses_bad_batching_before_registering_anything(
    iris_path, stored_files, flags, named
):
    with pytest.raises(CommandError) as caught:
        loadmodel(str(iris_path), "--slug", "iris", *flags)
    assert named in str(caught.value)
    assert not MLModel.objects.exists()
