"""The admin in a real headless browser: log in, upload, activate, roll back."""

from __future__ import annotations

import hashlib
import random
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from registry.models import MLModel
from tests.browser import ARTIFACTS, NO_PLAYWRIGHT, chromium_page

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT).expect

PASSWORD = "admin-pass-123"
ACTIVATE = "Activate the selected version"
ROLL_BACK = "Roll back to the previously served version"


@pytest.fixture
def admin_user(transactional_db):
    return get_user_model().objects.create_superuser("admin", "a@example.com", PASSWORD)


@pytest.fixture
def page(request, live_server, transactional_db, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM refuses
    # to run beside one unless told it is safe (it is: nothing here awaits).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with chromium_page(request.node.name) as page:
        yield page


def admin_url(live_server, name: str, *args: object) -> str:
    return live_server.url + reverse(f"admin:{name}", args=args)


def log_in(page, live_server, user) -> None:
    page.goto(live_server.url + "/admin/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def upload(page, path) -> None:
    page.get_by_role("link", name="Upload new version").click()
    page.locator("#id_file").set_input_files(path)
    page.get_by_role("button", name="Upload and validate").click()


def run_action(page, row_link: str, action: str, message: str) -> None:
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=row_link))
    row.get_by_role("checkbox").check()
    page.locator("select[name=action]").select_option(label=action)
    page.get_by_role("button", name="Go").click()
    expect(page.locator(".messagelist .success")).to_have_text(message)


def test_admin_upload_activate_and_rollback_in_browser(
    page, live_server, admin_user, iris_path
):
    log_in(page, live_server, admin_user)
    registry = page.get_by_role("table", name="Model registry")
    registry.get_by_role("link", name="Models", exact=True).click()
    page.get_by_role("link", name="Add model").click()
    page.get_by_label("Slug").fill("iris")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.get_by_role("link", name="Upload new version")).to_be_visible()
    model_url = page.url

    upload(page, iris_path)
    expect(page.locator(".messagelist")).to_contain_text("Registered iris v1")
    expect(page.get_by_role("heading", name="iris v1", exact=True)).to_be_visible()
    sha256 = hashlib.sha256(iris_path.read_bytes()).hexdigest()
    expect(page.locator(".field-sha256 .readonly")).to_have_text(sha256)
    schema = page.locator("#id_input_schema")
    expect(schema).to_have_value(re.compile(re.escape('"sepal length (cm)"')))
    expect(schema).to_have_value(re.compile(re.escape('"petal width (cm)"')))

    page.goto(model_url)
    upload(page, iris_path)
    expect(page.get_by_role("heading", name="iris v2", exact=True)).to_be_visible()
    assert MLModel.objects.get(slug="iris").active_version.number == 2

    page.goto(admin_url(live_server, "registry_modelversion_changelist"))
    run_action(page, "iris v1", ACTIVATE, "Activated iris v1.")
    assert MLModel.objects.get(slug="iris").active_version.number == 1
    page.goto(model_url)
    history = page.locator("#activations-group")
    expect(history).to_contain_text("v2 → v1 (activation)")
    expect(history).to_contain_text("v1 → v2 (activation)")
    expect(history).to_contain_text("none → v1 (activation)")
    expect(page.locator("#versions-group")).to_contain_text("v1 (active)")

    page.goto(admin_url(live_server, "registry_mlmodel_changelist"))
    run_action(page, "iris", ROLL_BACK, "Rolled back iris from v1 to v2.")
    page.goto(model_url)
    expect(history).to_contain_text("v1 → v2 (rollback)")
    expect(page.locator("#versions-group")).to_contain_text("v2 (active)")

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "admin-model.png"
    shot.unlink(missing_ok=True)
    page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000


def test_admin_upload_rejects_garbage_in_browser(
    page, live_server, admin_user, tmp_path
):
    model = MLModel.objects.create(slug="iris")
    garbage = tmp_path / "garbage.joblib"
    garbage.write_bytes(random.Random(7).randbytes(4096))

    log_in(page, live_server, admin_user)
    page.goto(admin_url(live_server, "registry_mlmodel_change", model.pk))
    upload(page, garbage)
    errors = page.locator(".field-file .errorlist")
    expect(errors).to_contain_text("not a usable model")
    expect(page.get_by_role("button", name="Upload and validate")).to_be_visible()
    assert not model.versions.exists()
