"""The model page's aliases and traffic policy in a real headless browser:
set an alias, save a policy, promote its candidate, read the history."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from registry.models import Alias, MLModel, PolicyChange, TrafficPolicy
from tests.browser import ARTIFACTS, NO_PLAYWRIGHT, chromium_page

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT).expect

PASSWORD = "admin-pass-123"


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


@pytest.fixture
def iris(transactional_db, publish, iris_classifier) -> MLModel:
    """iris serving v1, with v2 ready beside it."""
    publish(iris_classifier, "iris")
    return publish(iris_classifier, "iris", activate=False).model


def log_in(page, live_server, user) -> None:
    page.goto(live_server.url + "/admin/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


# An element's box in page coordinates: a full-page screenshot clips to it.
PAGE_BOX = """e => {
    const r = e.getBoundingClientRect();
    return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height};
}"""


def screenshot(page, name: str, part: str = "") -> None:
    """The whole page, or the part a selector names, in test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    clip = {"clip": page.locator(part).evaluate(PAGE_BOX)} if part else {}
    page.screenshot(path=shot, full_page=True, **clip)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000


def set_alias(page, name: str, version: str) -> None:
    aliases = page.locator("#aliases")
    aliases.get_by_label("Alias").fill(name)
    aliases.get_by_label("Version").select_option(label=version)
    aliases.get_by_role("button", name="Set alias").click()


def test_admin_alias_policy_and_promote_in_browser(page, live_server, admin_user, iris):
    log_in(page, live_server, admin_user)
    page.goto(
        live_server.url + reverse("admin:registry_mlmodel_change", args=[iris.pk])
    )
    page.get_by_role("link", name="Aliases and traffic").click()

    set_alias(page, "latest", "v2")
    expect(page.locator(".messagelist .error")).to_contain_text("'latest' are reserved")
    assert not Alias.objects.exists()

    set_alias(page, "champion", "v2")
    expect(page.locator(".messagelist .success")).to_have_text(
        "Alias iris@champion now points to v2."
    )
    champion = page.locator("#aliases tbody tr").filter(has_text="champion")
    expect(champion.locator("td").first).to_have_text("v2")
    expect(champion.get_by_role("button", name="Delete alias champion")).to_be_visible()

    form = page.locator("#policy-form")
    form.get_by_label("Candidate").select_option(label="v2")
    form.get_by_label("Weight").fill("0.2")
    form.get_by_label("Sticky header").fill("X-User-Id")
    form.get_by_label("Guard: error rate").fill("0.05")
    form.get_by_role("button", name="Save policy").click()
    expect(page.locator(".messagelist .success")).to_contain_text(
        "Saved the traffic policy of iris: candidate v2 at 20%"
    )
    current = page.locator("#current-policy")
    expect(current.get_by_role("row", name="Candidate")).to_contain_text("v2 takes 20%")
    expect(current.get_by_role("row", name="Sticky")).to_contain_text(
        "by header X-User-Id"
    )
    expect(current.get_by_role("row", name="Guards")).to_contain_text(
        "error rate > 0.05"
    )
    expect(page.locator("#policy-form").get_by_label("Weight")).to_have_value("0.2")
    screenshot(page, "admin-rollouts-policy")
    screenshot(page, "admin-rollouts-panel", "#rollouts")

    page.get_by_role("button", name="Promote v2").click()
    expect(page.locator(".messagelist .success")).to_have_text(
        "Promoted v2: it is the active version of iris (was v1)."
    )
    assert MLModel.objects.get(slug="iris").active_version.number == 2
    assert not TrafficPolicy.objects.exists()
    expect(page.locator("#versions-group")).to_contain_text("v2 (active)")
    expect(page.locator("#activations-group")).to_contain_text("v1 → v2 (activation)")
    expect(page.locator("#current-policy")).to_have_text(
        "No traffic policy: v2 (active) answers every unpinned request."
    )
    expect(champion.locator("td").first).to_have_text("v2 (active)")
    moves = page.locator(".field-alias_history .readonly")
    expect(moves).to_contain_text("champion: none → v2 · admin · admin")
    changes = page.locator(".field-policy_history .readonly div")
    expect(changes).to_have_count(2)
    expect(changes.nth(0)).to_contain_text(
        "promoted · candidate v2 at 20%, sticky by header X-User-Id"
    )
    expect(changes.nth(0)).to_contain_text("→ no policy · admin · admin")
    expect(changes.nth(1)).to_contain_text("set · no policy → candidate v2 at 20%")
    assert list(PolicyChange.objects.values_list("action", "channel")) == [
        ("promote", "admin"),
        ("set", "admin"),
    ]
    screenshot(page, "admin-rollouts-promoted")
    screenshot(page, "admin-rollouts-history", "fieldset:has(.field-alias_history)")
