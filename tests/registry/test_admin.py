"""The registry admin through the Django test client with real multipart files."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from registry.models import Activation, MLModel, ModelVersion, VersionEdit

pytestmark = pytest.mark.django_db

UPLOAD_URL = reverse("admin:registry_modelversion_add")
VERSIONS_URL = reverse("admin:registry_modelversion_changelist")
MODELS_URL = reverse("admin:registry_mlmodel_changelist")


def upload(client, model: MLModel, path, **extra):
    with open(path, "rb") as handle:
        return client.post(
            UPLOAD_URL, {"model": model.pk, "file": handle, "activate": "on", **extra}
        )


@pytest.fixture
def iris_model(db) -> MLModel:
    return MLModel.objects.create(slug="iris", name="Iris")


def test_admin_creates_model(staff_client):
    response = staff_client.post(
        reverse("admin:registry_mlmodel_add"),
        {
            "slug": "churn",
            "name": "Churn",
            "description": "",
            "versions-TOTAL_FORMS": 0,
            "versions-INITIAL_FORMS": 0,
            "activations-TOTAL_FORMS": 0,
            "activations-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302
    assert MLModel.objects.get().slug == "churn"


def test_admin_upload_creates_version_1_then_2(staff_client, iris_model, iris_path):
    first = upload(staff_client, iris_model, iris_path)
    assert first.status_code == 302
    second = upload(staff_client, iris_model, iris_path)
    assert second.status_code == 302
    iris_model.refresh_from_db()
    assert list(iris_model.versions.values_list("number", flat=True)) == [2, 1]
    assert iris_model.active_version.number == 2
    version = iris_model.versions.get(number=2)
    assert second.url == reverse(
        "admin:registry_modelversion_change", args=[version.pk]
    )
    assert version.created_by.username == "staff"
    page = staff_client.get(second.url)
    assert page.status_code == 200
    for expected in (version.sha256, "sepal length (cm)", "versicolor", "Classifier"):
        assert expected in page.content.decode()


def test_admin_upload_without_activate_keeps_active_version(
    staff_client, iris_model, iris_path
):
    upload(staff_client, iris_model, iris_path)
    with open(iris_path, "rb") as handle:
        staff_client.post(UPLOAD_URL, {"model": iris_model.pk, "file": handle})
    iris_model.refresh_from_db()
    assert iris_model.active_version.number == 1
    assert iris_model.versions.count() == 2


def test_admin_upload_shows_preflight_error_and_stores_nothing(
    staff_client, iris_model, hostile_files, stored_files
):
    response = upload(staff_client, iris_model, hostile_files["raises"])
    assert response.status_code == 200
    assert "boom while loading" in response.content.decode()
    assert not ModelVersion.objects.exists()
    assert stored_files() == []


@pytest.mark.parametrize(
    ("metadata", "message"),
    [("{not json", "Not valid JSON"), ('{"auc": NaN}', "NaN")],
    ids=["not-json", "nan"],
)
def test_admin_upload_rejects_unusable_metadata_as_a_form_error(
    staff_client, iris_model, iris_path, metadata, message
):
    response = upload(staff_client, iris_model, iris_path, metadata=metadata)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ModelVersion.objects.exists()


def test_admin_activate_and_rollback_actions_switch_active_version(
    staff_client, iris_model, iris_path
):
    for _ in range(3):
        upload(staff_client, iris_model, iris_path)
    v1 = iris_model.versions.get(number=1)
    response = staff_client.post(
        VERSIONS_URL, {"action": "activate_version", "_selected_action": [v1.pk]}
    )
    assert response.status_code == 302
    iris_model.refresh_from_db()
    assert iris_model.active_version.number == 1

    staff_client.post(
        MODELS_URL, {"action": "roll_back", "_selected_action": [iris_model.pk]}
    )
    iris_model.refresh_from_db()
    assert iris_model.active_version.number == 3

    history = list(
        Activation.objects.filter(model=iris_model)
        .order_by("id")
        .values_list("from_number", "to_number", "channel", "rollback", "username")
    )
    assert history[-2:] == [
        (3, 1, "admin", False, "staff"),
        (1, 3, "admin", True, "staff"),
    ]
    page = staff_client.get(
        reverse("admin:registry_mlmodel_change", args=[iris_model.pk])
    )
    content = page.content.decode()
    assert "v3 → v1 (activation)" in content
    assert "v1 → v3 (rollback)" in content


def test_admin_rollback_without_earlier_version_reports_error(
    staff_client, iris_model, iris_path
):
    upload(staff_client, iris_model, iris_path)
    response = staff_client.post(
        MODELS_URL,
        {"action": "roll_back", "_selected_action": [iris_model.pk]},
        follow=True,
    )
    assert "has no earlier version" in response.content.decode()
    iris_model.refresh_from_db()
    assert iris_model.active_version.number == 1


SWITCH_ACTIONS = {"activate_version": VERSIONS_URL, "roll_back": MODELS_URL}


@pytest.fixture
def iris_at_v2(publish, iris_classifier) -> MLModel:
    publish(iris_classifier, "iris")
    return publish(iris_classifier, "iris").model


def login_staff(client, *codenames: str) -> None:
    user = get_user_model().objects.create_user(
        "operator", password="x-pass-123", is_staff=True
    )
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)


def switch_to_v1(client, model: MLModel, action: str):
    """Run ``action`` from its changelist on what would make v1 the served one."""
    selected = model.versions.get(number=1) if action == "activate_version" else model
    return client.post(
        SWITCH_ACTIONS[action], {"action": action, "_selected_action": [selected.pk]}
    )


@pytest.mark.parametrize("action", sorted(SWITCH_ACTIONS))
def test_admin_switch_actions_are_refused_to_staff_with_view_permission_only(
    client, iris_at_v2, action
):
    login_staff(client, "view_mlmodel", "view_modelversion")
    page = client.get(SWITCH_ACTIONS[action])
    assert page.status_code == 200
    assert f'value="{action}"' not in page.content.decode()
    switches = Activation.objects.count()
    switch_to_v1(client, iris_at_v2, action)
    iris_at_v2.refresh_from_db()
    assert iris_at_v2.active_version.number == 2
    assert Activation.objects.count() == switches


@pytest.mark.parametrize("action", sorted(SWITCH_ACTIONS))
def test_admin_switch_actions_need_the_change_permission_on_the_model(
    client, iris_at_v2, action
):
    """The permission the REST API's activate endpoint asks for, too."""
    login_staff(client, "view_mlmodel", "view_modelversion", "change_mlmodel")
    page = client.get(SWITCH_ACTIONS[action])
    assert f'value="{action}"' in page.content.decode()
    switches = Activation.objects.count()
    assert switch_to_v1(client, iris_at_v2, action).status_code == 302
    iris_at_v2.refresh_from_db()
    assert iris_at_v2.active_version.number == 1
    assert Activation.objects.count() == switches + 1


def test_admin_deletes_inactive_version_and_its_file(
    staff_client,
    iris_model,
    iris_path,
    stored_files,
    django_capture_on_commit_callbacks,
):
    upload(staff_client, iris_model, iris_path)
    upload(staff_client, iris_model, iris_path)
    v1 = iris_model.versions.get(number=1)
    assert len(stored_files()) == 2
    url = reverse("admin:registry_modelversion_delete", args=[v1.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert list(iris_model.versions.values_list("number", flat=True)) == [2]
    assert [p.name for p in stored_files()] == [
        iris_model.versions.get().file.name.rsplit("/", 1)[1]
    ]


def test_admin_refuses_to_delete_active_version(staff_client, iris_model, iris_path):
    upload(staff_client, iris_model, iris_path)
    active = iris_model.versions.get()
    url = reverse("admin:registry_modelversion_delete", args=[active.pk])
    assert staff_client.post(url, {"post": "yes"}).status_code == 403
    response = staff_client.post(
        VERSIONS_URL,
        {"action": "delete_selected", "_selected_action": [active.pk], "post": "yes"},
        follow=True,
    )
    assert ModelVersion.objects.filter(pk=active.pk).exists()
    assert response.status_code in (200, 403)


def test_admin_is_refused_to_anonymous_and_non_staff(client, iris_model, iris_path):
    assert client.get(UPLOAD_URL).status_code == 302
    user = get_user_model().objects.create_user("visitor", password="x-pass-123")
    client.force_login(user)
    response = upload(client, iris_model, iris_path)
    assert response.status_code == 302
    assert "/admin/login/" in response.url
    assert not ModelVersion.objects.exists()


def test_pickle_upload_needs_its_own_permission(
    client, iris_model, iris_path, skops_path
):
    user = get_user_model().objects.create_user(
        "uploader", password="x-pass-123", is_staff=True
    )
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["add_modelversion", "view_modelversion", "view_mlmodel"]
        )
    )
    client.force_login(user)
    page = client.get(UPLOAD_URL)
    assert "You may upload <code>.skops</code> files only" in page.content.decode()
    refused = upload(client, iris_model, iris_path)
    assert refused.status_code == 200
    assert "permission" in refused.content.decode()
    assert not ModelVersion.objects.exists()
    accepted = upload(client, iris_model, skops_path)
    assert accepted.status_code == 302
    assert ModelVersion.objects.get().format == "skops"


def test_staff_without_add_permission_cannot_reach_upload(client, iris_model):
    user = get_user_model().objects.create_user(
        "viewer", password="x-pass-123", is_staff=True
    )
    client.force_login(user)
    assert client.get(UPLOAD_URL).status_code == 403


def test_upload_enforces_csrf(iris_model, staff_user, iris_path):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff_user)
    response = upload(strict, iris_model, iris_path)
    assert response.status_code == 403
    assert not ModelVersion.objects.exists()


def test_admin_edits_input_schema_with_validation(
    staff_client, iris_model, iris_path, staff_user
):
    upload(staff_client, iris_model, iris_path)
    version = iris_model.versions.get()
    url = reverse("admin:registry_modelversion_change", args=[version.pk])
    bad = staff_client.post(url, {"input_schema": '{"features": [{"name": 1}]}'})
    assert bad.status_code == 200
    assert "needs a &#x27;name&#x27;" in bad.content.decode()
    misfit = staff_client.post(
        url, {"input_schema": '{"features": [{"name": "a", "type": "double"}]}'}
    )
    assert misfit.status_code == 200
    assert "does not fit the model" in misfit.content.decode()
    version.refresh_from_db()
    assert len(version.input_schema["features"]) == 4
    assert not VersionEdit.objects.exists()

    names = [f["name"] for f in version.input_schema["features"]]
    typed = [{"name": n, "type": "double"} for n in names]
    good = staff_client.post(
        url,
        {
            "input_schema": json.dumps({**version.input_schema, "features": typed}),
            "metadata": '{"owner": "data team"}',
        },
    )
    assert good.status_code == 302
    version.refresh_from_db()
    assert version.input_schema["features"] == [
        {"name": n, "type": "number"} for n in names
    ]
    assert version.metadata == {"owner": "data team"}
    assert version.sha256 and version.file.name
    edit = VersionEdit.objects.get()
    assert (edit.number, edit.channel, edit.user) == (1, "admin", staff_user)
    assert edit.changes == {"metadata": ["owner"]}
    page = staff_client.get(
        reverse("admin:registry_mlmodel_change", args=[iris_model.pk])
    ).content.decode()
    assert "Version edits" in page
    assert f"v1 metadata: owner · admin · {staff_user.username}" in page


def test_admin_edits_a_model_through_the_actions_and_serves_it_at_once(
    staff_client, iris_model, iris_path
):
    from registry import routing

    upload(staff_client, iris_model, iris_path)
    assert routing.resolve("iris").private is False
    url = reverse("admin:registry_mlmodel_change", args=[iris_model.pk])
    response = staff_client.post(
        url,
        {
            "slug": "flowers",
            "name": "Flowers",
            "description": "renamed",
            "private": "on",
            "versions-TOTAL_FORMS": 0,
            "versions-INITIAL_FORMS": 0,
            "activations-TOTAL_FORMS": 0,
            "activations-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302
    iris_model.refresh_from_db()
    assert (iris_model.slug, iris_model.name, iris_model.private) == (
        "flowers",
        "Flowers",
        True,
    )
    assert routing.resolve("flowers").private is True


def add_model(client, slug: str, button: str = "_save"):
    return client.post(
        reverse("admin:registry_mlmodel_add"),
        {
            "slug": slug,
            "name": "",
            "description": "",
            button: "1",
            "versions-TOTAL_FORMS": 0,
            "versions-INITIAL_FORMS": 0,
            "activations-TOTAL_FORMS": 0,
            "activations-INITIAL_FORMS": 0,
        },
    )


def test_admin_add_model_leads_to_its_upload_form(staff_client):
    response = add_model(staff_client, "churn")
    model = MLModel.objects.get(slug="churn")
    assert response.status_code == 302
    assert response.url == f"{UPLOAD_URL}?model={model.pk}"
    form = staff_client.get(response.url).content.decode()
    assert f'<option value="{model.pk}" selected>churn</option>' in form


@pytest.mark.parametrize(
    ("button", "lands_on"),
    [
        ("_continue", "admin:registry_mlmodel_change"),
        ("_addanother", "admin:registry_mlmodel_add"),
    ],
)
def test_admin_add_model_keeps_the_other_save_buttons_meaning(
    staff_client, button, lands_on
):
    response = add_model(staff_client, "churn", button)
    model = MLModel.objects.get(slug="churn")
    args = [model.pk] if lands_on.endswith("change") else []
    assert response.url.split("?")[0] == reverse(lands_on, args=args)


def test_admin_add_model_without_upload_permission_lands_on_the_list(client):
    login_staff(client, "add_mlmodel", "view_mlmodel", "change_mlmodel")
    response = add_model(client, "churn")
    assert response.url == MODELS_URL


def version_page(client, version: ModelVersion) -> str:
    url = reverse("admin:registry_modelversion_change", args=[version.pk])
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def activate_url(version: ModelVersion) -> str:
    return reverse("admin:registry_modelversion_activate", args=[version.pk])


def delete_url(version: ModelVersion) -> str:
    return reverse("admin:registry_modelversion_delete", args=[version.pk])


def test_version_page_activate_button_serves_that_version(staff_client, iris_at_v2):
    v1 = iris_at_v2.versions.get(number=1)
    page = version_page(staff_client, v1)
    assert f'action="{activate_url(v1)}"' in page
    assert 'value="Activate this version"' in page
    assert f'href="{delete_url(v1)}"' in page

    response = staff_client.post(activate_url(v1), follow=True)
    assert response.redirect_chain[-1][0] == reverse(
        "admin:registry_modelversion_change", args=[v1.pk]
    )
    assert "Activated iris v1." in response.content.decode()
    iris_at_v2.refresh_from_db()
    assert iris_at_v2.active_version == v1
    switch = Activation.objects.filter(model=iris_at_v2).latest("id")
    assert (switch.from_number, switch.to_number, switch.channel, switch.username) == (
        2,
        1,
        "admin",
        "staff",
    )


def test_version_page_of_the_active_version_says_why_it_has_no_buttons(
    staff_client, iris_at_v2
):
    page = version_page(staff_client, iris_at_v2.active_version)
    assert "This version is active: it serves the model now." in page
    assert "The active version cannot be deleted: activate another one first." in page
    assert 'value="Activate this version"' not in page
    assert f'href="{delete_url(iris_at_v2.active_version)}"' not in page


def test_version_page_of_an_invalid_version_says_why_it_cannot_be_activated(
    staff_client, iris_at_v2
):
    from registry import actions

    v1 = iris_at_v2.versions.get(number=1)
    actions.mark_invalid(v1, message="no longer loads")
    page = version_page(staff_client, v1)
    assert "This version is invalid: it failed its check and cannot be served." in page
    assert 'value="Activate this version"' not in page
    response = staff_client.post(activate_url(v1), follow=True)
    assert "it cannot be served" in response.content.decode()
    iris_at_v2.refresh_from_db()
    assert iris_at_v2.active_version.number == 2


def test_version_page_buttons_follow_the_actions_permissions(client, iris_at_v2):
    login_staff(client, "view_mlmodel", "view_modelversion")
    v1 = iris_at_v2.versions.get(number=1)
    page = version_page(client, v1)
    assert 'value="Activate this version"' not in page
    assert f'href="{delete_url(v1)}"' not in page
    assert client.post(activate_url(v1)).status_code == 403
    iris_at_v2.refresh_from_db()
    assert iris_at_v2.active_version.number == 2


def test_version_page_activate_needs_the_change_permission_on_the_model(
    client, iris_at_v2
):
    login_staff(client, "view_mlmodel", "view_modelversion", "change_mlmodel")
    v1 = iris_at_v2.versions.get(number=1)
    page = version_page(client, v1)
    assert 'value="Activate this version"' in page
    assert f'href="{delete_url(v1)}"' not in page
    assert client.post(activate_url(v1)).status_code == 302
    iris_at_v2.refresh_from_db()
    assert iris_at_v2.active_version.number == 1


def test_version_page_activate_is_post_only(staff_client, iris_at_v2):
    v1 = iris_at_v2.versions.get(number=1)
    assert staff_client.get(activate_url(v1)).status_code == 405
    iris_at_v2.refresh_from_db()
    assert iris_at_v2.active_version.number == 2


def test_admin_shows_file_sizes_human_readable(staff_client, iris_at_v2, settings):
    from django.template.defaultfilters import filesizeformat

    version = iris_at_v2.active_version
    readable = filesizeformat(version.size)
    assert "KB" in readable
    for page in (
        staff_client.get(VERSIONS_URL).content.decode(),
        version_page(staff_client, version),
    ):
        assert readable in page
        assert f">{version.size}<" not in page
    settings.MODELHUB_MAX_MODEL_BYTES = 500 * 1024 * 1024
    upload_page = staff_client.get(UPLOAD_URL).content.decode()
    assert f"Files up to {filesizeformat(500 * 1024 * 1024)}" in upload_page
