"""The admin in a real headless browser: log in, upload, activate, roll back."""

from __future__ import annotations

import hashlib
import json
import random
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from registry.models import MLModel
from registry.upload_errors import FAILURES
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
    expect(errors).to_have_text(FAILURES["not_a_pickle"].sentence)
    expect(page.get_by_role("button", name="Upload and validate")).to_be_visible()
    assert not model.versions.exists()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_admin_add_model_leads_to_its_upload_form_in_browser(
    page, live_server, admin_user
):
    log_in(page, live_server, admin_user)
    page.goto(admin_url(live_server, "registry_mlmodel_add"))
    page.get_by_label("Slug").fill("churn")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("heading", name="Upload a model version")).to_be_visible()
    model = MLModel.objects.get(slug="churn")
    expect(page.locator("#id_model")).to_have_value(str(model.pk))
    screenshot(page, "admin-upload-form-after-add")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("notes.txt", b"accuracy: 0.97\n", "unsupported_file_type"),
        ("model.joblib", b"sepal length,sepal width\n5.1,3.5\n", "text_file"),
        ("model.pkl", b'{"123": [0.1, 0.2]}', "json_file"),
    ],
    ids=["wrong-extension", "text", "json"],
)
def test_admin_bad_upload_shows_the_sentence_and_folds_the_exception_in_browser(
    page, live_server, admin_user, tmp_path, name, content, reason
):
    model = MLModel.objects.create(slug="iris")
    bad = tmp_path / name
    bad.write_bytes(content)

    log_in(page, live_server, admin_user)
    page.goto(admin_url(live_server, "registry_mlmodel_change", model.pk))
    upload(page, bad)
    errors = page.locator(".field-file .errorlist")
    expect(errors).to_have_text(FAILURES[reason].sentence)
    assert not re.search(r"\w+(Error|Exception)\b", errors.inner_text())
    detail = page.locator(".field-file details pre")
    expect(detail).to_be_hidden()
    page.get_by_text("Technical detail").click()
    expect(detail).to_be_visible()
    expect(detail).to_contain_text(f"[{FAILURES[reason].code}")
    screenshot(page, f"admin-upload-refused-{reason}")
    assert not model.versions.exists()


# Notes what the page shows just after a submit, where the next page can read
# it: Playwright waits for a navigation under way before it reads a page.
NOTE_THE_WAITING_PAGE = """() => {
    const form = document.getElementById("upload-form");
    form.addEventListener("submit", () => setTimeout(() => {
        const button = form.querySelector("input[type=submit]");
        const progress = document.getElementById("upload-progress");
        sessionStorage.setItem("waiting", JSON.stringify({
            disabled: button.disabled,
            shown: !progress.hidden,
            text: progress.textContent,
        }));
    }, 0));
}"""


def wait_for_held_posts(page, posts: list, seconds: float = 15) -> None:
    for _ in range(int(seconds * 20)):
        if posts:
            return
        page.wait_for_timeout(50)
    raise AssertionError("the upload was never posted")


def test_admin_upload_button_waits_for_the_preflight_and_a_double_click_uploads_once(
    page, live_server, admin_user, iris_path
):
    model = MLModel.objects.create(slug="iris")
    log_in(page, live_server, admin_user)
    page.goto(
        admin_url(live_server, "registry_modelversion_add") + f"?model={model.pk}"
    )
    page.locator("#id_file").set_input_files(iris_path)
    button = page.get_by_role("button", name="Upload and validate")
    expect(page.get_by_role("status")).to_be_hidden()
    # Hold the upload until the waiting page has been looked at: the preflight
    # may be quicker than the look.
    posts = []

    def hold_posts(route) -> None:
        if route.request.method == "POST":
            posts.append(route)
        else:
            route.continue_()

    page.route("**/admin/registry/modelversion/add/**", hold_posts)

    page.evaluate(NOTE_THE_WAITING_PAGE)

    button.dblclick()
    # A screenshot here hung now and then while the POST was held, so the
    # test waits on the held request itself, then long enough for a second
    # POST (had the double click sent one) to reach the route too.
    wait_for_held_posts(page, posts)
    page.wait_for_timeout(500)
    assert len(posts) == 1
    posts[0].continue_()
    expect(page.get_by_role("heading", name="iris v1", exact=True)).to_be_visible()
    assert len(posts) == 1
    assert json.loads(page.evaluate("sessionStorage.getItem('waiting')")) == {
        "disabled": True,
        "shown": True,
        "text": "Checking the model in a separate process; this takes a few seconds…",
    }
    assert list(model.versions.values_list("number", flat=True)) == [1]

    page.go_back()
    expect(page.get_by_role("button", name="Upload and validate")).to_be_enabled()


def test_admin_version_page_activate_button_in_browser(
    page, live_server, admin_user, iris_path
):
    from registry import actions

    for _ in range(2):
        with iris_path.open("rb") as source:
            actions.register_version(slug="iris", source=source, filename="iris.joblib")
    v1 = MLModel.objects.get(slug="iris").versions.get(number=1)

    log_in(page, live_server, admin_user)
    page.goto(admin_url(live_server, "registry_modelversion_change", v1.pk))
    expect(page.get_by_role("link", name="Delete this version")).to_be_visible()
    page.get_by_role("button", name="Activate this version").click()
    expect(page.locator(".messagelist .success")).to_have_text("Activated iris v1.")
    expect(
        page.get_by_text("This version is active: it serves the model now.")
    ).to_be_visible()
    expect(page.get_by_role("link", name="Delete this version")).to_have_count(0)
    assert MLModel.objects.get(slug="iris").active_version == v1
    screenshot(page, "admin-version-activated")
