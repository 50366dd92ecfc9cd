"""Who may call what (DESIGN.md): every endpoint × every kind of caller ×
a public, a private and an unknown model, as one table.

A private model answers staff, the users and groups granted it and the API
keys whose scope names it. To anyone else it is an unknown slug: the same
status, the same body byte for byte (slug text aside) and the same headers
(the request id aside), and its slug appears in no answer they get.

Choices the table makes where the design leaves room, as a product would:

- V2 reads no session cookie: it is csrf-exempt, so an ambient credential
  must not count there. /api/predict/ reads one only to let the pages' Try it
  form call as the signed-in staff member, and then requires its CSRF token
  (api.access.sessions); the DRF endpoints (catalog, health, stats) accept
  the session, management writes do not.
- A key scoped to listed models may still *read* the public catalog (anyone
  may), it only may not call a public model it was not given: 403
  ``forbidden``, since that model's existence is no secret.
- A management key (read or write) of a staff owner sees every model in the
  catalog, as its owner does in the admin, but calls only what its
  ``predict`` scope allows: a model's health is a call, so a private one is
  unknown to it there.
- A wrong, revoked or expired credential is a 401 everywhere it is read, even
  on a public model; health and metrics, which refuse no one, treat it as
  anonymous; the admin and the dashboard read only the session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import joblib
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token

from api.access import issuing
from api.models import ApiKey
from registry import actions

PUBLIC = "open-iris"
PRIVATE = "zz-orchid-vault-7q"  # distinctive: any sighting of it is a leak
UNKNOWN = "zz-absent-lilac-3k"  # the same length, so bodies compare byte for byte
assert len(PRIVATE) == len(UNKNOWN)

IRIS_ROW = {
    "sepal length (cm)": 5.1,
    "sepal width (cm)": 3.5,
    "petal length (cm)": 1.4,
    "petal width (cm)": 0.2,
}
V2_BODY = {
    "inputs": [
        {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
        for name, value in IRIS_ROW.items()
    ]
}


# --- the world: two models, users, groups, tokens and keys, built once -------


@dataclass
class World:
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    sessions: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("access-media")


@pytest.fixture(autouse=True)
def media_root(settings: Any, world_media: Path) -> Path:
    """The module's models are stored once, under one media root."""
    settings.MEDIA_ROOT = world_media
    return world_media


def _publish(estimator: Any, slug: str, directory: Path, *, private: bool) -> None:
    path = directory / f"{slug}.joblib"
    joblib.dump(estimator, path)
    with path.open("rb") as source:
        version = actions.register_version(slug=slug, source=source, filename=path.name)
    if private:
        model = version.model
        actions.update_model(
            model, name=model.name, description=model.description, private=True
        )


@pytest.fixture(scope="module")
def world(
    django_db_setup: Any,
    django_db_blocker: Any,
    world_media: Path,
    tmp_path_factory: pytest.TempPathFactory,
    iris_classifier: Any,
) -> Any:
    """Built in a transaction that wraps the module's tests (each test rolls
    back to a savepoint in it) and is rolled back after the last one, as
    Django's TestCase.setUpTestData does."""
    files = tmp_path_factory.mktemp("access-files")
    with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=world_media):
        with transaction.atomic():
            yield _build_world(files, iris_classifier)
            transaction.set_rollback(True)


def _build_world(files: Path, estimator: Any) -> World:
    users = get_user_model().objects
    _publish(estimator, PUBLIC, files, private=False)
    _publish(estimator, PRIVATE, files, private=True)
    private = actions.MLModel.objects.get(slug=PRIVATE)

    staff = users.create_user("staff", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(content_type__app_label="registry")
    )
    machine = users.create_user("machine")  # owns the prediction keys
    plain = users.create_user("plain")
    granted = users.create_user("granted")
    private.granted_users.add(granted)
    member = users.create_user("member")
    analysts = Group.objects.create(name="analysts")
    member.groups.add(analysts)
    private.granted_groups.add(analysts)

    world = World()

    def token(name: str, user: Any) -> None:
        world.headers[name] = {
            "HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=user).key}"
        }

    def key(name: str, owner: Any, **scope: Any) -> ApiKey:
        stored, secret = issuing.create_key(name=name, owner=owner, **scope)
        world.headers[name] = {"HTTP_AUTHORIZATION": f"Api-Key {secret}"}
        return stored

    world.headers["anonymous"] = {}
    world.headers["wrong_token"] = {"HTTP_AUTHORIZATION": "Token " + "0f" * 20}
    everything = {"predict": "all", "management": "write"}
    key("key_public", machine)
    key("key_listed", machine, predict="listed", models=[private])
    key_all = key("key_all", machine, predict="all")
    # The prefix of a real key with the wrong secret after it.
    world.headers["wrong_key"] = {
        "HTTP_AUTHORIZATION": f"Api-Key {key_all.prefix}.{'x' * 32}"
    }
    issuing.revoke(key("revoked_key", staff, **everything).prefix)
    key("expired_key", staff, **everything)
    ApiKey.objects.filter(name="expired_key").update(
        expiry_date=timezone.now() - timedelta(minutes=1)
    )
    for scope in ("none", "read", "write"):
        key(f"manage_{scope}", staff, management=scope)
    token("user", plain)
    token("user_granted", granted)
    token("group_granted", member)
    token("staff_token", staff)
    world.headers["staff_session"] = {}
    world.sessions["staff_session"] = staff
    return world


CALLERS = [
    "anonymous",
    "wrong_token",
    "wrong_key",
    "revoked_key",
    "expired_key",
    "key_public",
    "key_listed",
    "key_all",
    "manage_none",
    "manage_read",
    "manage_write",
    "user",
    "user_granted",
    "group_granted",
    "staff_token",
    "staff_session",
]
BAD_CREDENTIAL = {"wrong_token", "wrong_key", "revoked_key", "expired_key"}


# --- the expectations --------------------------------------------------------

OK = "200"
HIDDEN = "404 unknown_model"
BAD = "401 authentication_failed"
ANON = "401 not_authenticated"
NOT_STAFF = "403 permission_denied"
OUT_OF_SCOPE = "403 forbidden"

# Calling a model (predict, V2 infer/metadata/ready): (public, private, unknown).
CALLS = {
    "anonymous": (OK, HIDDEN, HIDDEN),
    **{caller: (BAD, BAD, BAD) for caller in BAD_CREDENTIAL},
    "key_public": (OK, HIDDEN, HIDDEN),
    "key_listed": (OUT_OF_SCOPE, OK, HIDDEN),
    "key_all": (OK, OK, HIDDEN),
    "manage_none": (OK, HIDDEN, HIDDEN),
    "manage_read": (OK, HIDDEN, HIDDEN),
    "manage_write": (OK, HIDDEN, HIDDEN),
    "user": (OK, HIDDEN, HIDDEN),
    "user_granted": (OK, OK, HIDDEN),
    "group_granted": (OK, OK, HIDDEN),
    "staff_token": (OK, OK, HIDDEN),
    "staff_session": (OK, HIDDEN, HIDDEN),  # V2 reads no session
}
# /api/predict/ reads the session too (the pages' Try it, with its CSRF token:
# tests/api/pages/test_try_it.py); the V2 endpoints do not.
PREDICT = {**CALLS, "staff_session": (OK, OK, HIDDEN)}
# A model's health is a call, answered by DRF (which reads the session).
HEALTH = {**CALLS, "staff_session": (OK, OK, HIDDEN)}
# Reading the catalog: who may know the model exists.
CATALOG = {
    **CALLS,
    "key_listed": (OK, OK, HIDDEN),
    "manage_read": (OK, OK, HIDDEN),
    "manage_write": (OK, OK, HIDDEN),
    "staff_session": (OK, OK, HIDDEN),
}
# POST /api/models/<slug>/activate/: a staff token, or a write key of staff.
WRITE = {
    "anonymous": (ANON,) * 3,
    **{caller: (BAD,) * 3 for caller in BAD_CREDENTIAL},
    "key_public": (NOT_STAFF,) * 3,
    "key_listed": (NOT_STAFF,) * 3,
    "key_all": (NOT_STAFF,) * 3,
    "manage_none": (OUT_OF_SCOPE,) * 3,
    "manage_read": (OUT_OF_SCOPE,) * 3,
    "manage_write": (OK, OK, HIDDEN),
    "user": (NOT_STAFF,) * 3,
    "user_granted": (NOT_STAFF,) * 3,
    "group_granted": (NOT_STAFF,) * 3,
    "staff_token": (OK, OK, HIDDEN),
    "staff_session": (ANON,) * 3,  # writes take no session: no CSRF to check
}
STATS = {
    "anonymous": ANON,
    **{caller: BAD for caller in BAD_CREDENTIAL},
    "key_public": NOT_STAFF,
    "key_listed": NOT_STAFF,
    "key_all": NOT_STAFF,
    "manage_none": OUT_OF_SCOPE,
    "manage_read": OK,
    "manage_write": OK,
    "user": NOT_STAFF,
    "user_granted": NOT_STAFF,
    "group_granted": NOT_STAFF,
    "staff_token": OK,
    "staff_session": OK,
}
# A model's history names people: who may read stats may read it.
HISTORY = {
    caller: (OK, OK, HIDDEN) if outcome == OK else (outcome,) * 3
    for caller, outcome in STATS.items()
}
SEES_HEALTH_DETAIL = {"manage_read", "manage_write", "staff_token", "staff_session"}
# /v2 is the data plane: no session there either.
SEES_V2_HEALTH_DETAIL = SEES_HEALTH_DETAIL - {"staff_session"}
SEES_PRIVATE_IN_CATALOG = {c for c, row in CATALOG.items() if row[1] == OK}
SEES_PRIVATE_IN_SCHEMA = {c for c, row in HEALTH.items() if row[1] == OK}

MODELS = {"public": PUBLIC, "private": PRIVATE, "unknown": UNKNOWN}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # "{slug}" where the model goes
    table: dict[str, tuple[str, str, str]]
    body: Any = None
    v2: bool = False  # the protocol's {"error": ...} body, no code


SLUGGED = {
    "predict": Endpoint("POST", "/api/predict/{slug}/", PREDICT, {"data": IRIS_ROW}),
    # Whoever may predict on a model may send its feedback.
    "feedback": Endpoint(
        "POST",
        "/api/feedback/{slug}/",
        PREDICT,
        {"request_id": "access-table", "labels": ["setosa"]},
    ),
    "v2_infer": Endpoint("POST", "/v2/models/{slug}/infer", CALLS, V2_BODY, True),
    "v2_metadata": Endpoint("GET", "/v2/models/{slug}", CALLS, v2=True),
    "v2_ready": Endpoint("GET", "/v2/models/{slug}/ready", CALLS, v2=True),
    "model_detail": Endpoint("GET", "/api/models/{slug}/", CATALOG),
    "version_detail": Endpoint("GET", "/api/models/{slug}/versions/1/", CATALOG),
    "version_list": Endpoint("GET", "/api/models/{slug}/versions/", CATALOG),
    "history": Endpoint("GET", "/api/models/{slug}/history/", HISTORY),
    "model_health": Endpoint("GET", "/api/models/{slug}/health/", HEALTH),
    "activate": Endpoint("POST", "/api/models/{slug}/activate/", WRITE, {"version": 1}),
}


def _slugged_cases() -> list[Any]:
    return [
        pytest.param(name, caller, model, id=f"{name}-{caller}-{model}")
        for name in SLUGGED
        for caller in CALLERS
        for model in MODELS
    ]


# --- how a case is sent and checked ------------------------------------------


def send(world: World, caller: str, method: str, path: str, body: Any = None) -> Any:
    client = Client()
    if caller in world.sessions:
        client.force_login(world.sessions[caller])
    headers = {**world.headers[caller], "HTTP_X_REQUEST_ID": "access-table"}
    if method == "GET":
        return client.get(path, **headers)
    return client.post(
        path, json.dumps(body), content_type="application/json", **headers
    )


def assert_outcome(response: Any, expected: str, *, v2: bool = False) -> None:
    status, _, code = expected.partition(" ")
    assert response.status_code == int(status), response.content[:500]
    if not code:
        return
    body = response.json()
    if v2:
        assert set(body) == {"error"}, body
    else:
        assert body["code"] == code, body


def assert_no_private_slug(response: Any) -> None:
    assert PRIVATE.encode() not in response.content
    for name, value in response.items():
        assert PRIVATE not in value, name


def comparable_headers(response: Any) -> dict[str, str]:
    return {
        name.lower(): value
        for name, value in response.items()
        if name.lower() != "x-request-id"
    }


def assert_same_as_unknown(private: Any, unknown: Any) -> None:
    """The private model's refusal is the unknown slug's, byte for byte."""
    assert private.status_code == unknown.status_code
    assert private.content.replace(PRIVATE.encode(), UNKNOWN.encode()) == (
        unknown.content
    )
    assert comparable_headers(private) == comparable_headers(unknown)


# --- the table -----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("endpoint", "caller", "model"), _slugged_cases())
def test_model_endpoint_answers_each_caller_as_the_table_says(
    world: World, endpoint: str, caller: str, model: str
) -> None:
    """Where the private model is hidden from the caller, its answer is the
    unknown slug's answer (which echoes the slug asked for, as any 404 does)."""
    spec = SLUGGED[endpoint]
    public, private, unknown = spec.table[caller]
    expected = {"public": public, "private": private, "unknown": unknown}[model]
    path = spec.path.format(slug=MODELS[model])
    response = send(world, caller, spec.method, path, spec.body)
    assert_outcome(response, expected, v2=spec.v2)
    if model == "private" and private == unknown:
        twin = send(
            world, caller, spec.method, spec.path.format(slug=UNKNOWN), spec.body
        )
        assert_same_as_unknown(response, twin)


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_model_list_shows_the_private_model_only_to_who_may_know_it(
    world: World, caller: str
) -> None:
    response = send(world, caller, "GET", "/api/models/")
    if caller in BAD_CREDENTIAL:
        assert_outcome(response, BAD)
        return
    assert_outcome(response, OK)
    slugs = [m["slug"] for m in response.json()]
    if caller in SEES_PRIVATE_IN_CATALOG:
        assert slugs == [PUBLIC, PRIVATE]
    else:
        assert slugs == [PUBLIC]
        assert_no_private_slug(response)


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_stats_answer_staff_and_management_keys_of_staff(
    world: World, caller: str
) -> None:
    response = send(world, caller, "GET", "/api/stats/")
    assert_outcome(response, STATS[caller])


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/readyz", "/v2/health/ready"])
@pytest.mark.parametrize("caller", CALLERS)
def test_readiness_names_models_only_to_staff_and_management_keys(
    world: World, caller: str, path: str
) -> None:
    """Counts for everyone (a bad credential is anonymous here: a health
    check refuses no one); which models, only to who may read the registry."""
    response = send(world, caller, "GET", path)
    assert_outcome(response, OK)
    body = response.json()
    assert body["counts"] == {"models": 2, "serving": 2, "failing": 0}
    detail = SEES_V2_HEALTH_DETAIL if path.startswith("/v2") else SEES_HEALTH_DETAIL
    if caller in detail:
        assert set(body["models"]) == {PUBLIC, PRIVATE}
    else:
        assert "models" not in body
        assert_no_private_slug(response)


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_metrics_never_name_the_private_model_without_a_metrics_token(
    world: World, caller: str
) -> None:
    """Unprotected /metrics answers anyone, so a private model's series carry
    an opaque label, whoever asks."""
    body = {"data": IRIS_ROW}
    for slug in (PUBLIC, PRIVATE):
        called = send(world, "staff_token", "POST", f"/api/predict/{slug}/", body)
        assert called.status_code == 200
    response = send(world, caller, "GET", "/metrics")
    assert response.status_code == 200
    assert f'model="{PUBLIC}"'.encode() in response.content
    assert b'model="private-' in response.content
    assert_no_private_slug(response)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/docs/", "/api/schema/"])
@pytest.mark.parametrize("caller", CALLERS)
def test_api_documents_answer_anyone_and_name_the_private_model_only_to_its_callers(
    world: World, caller: str, path: str
) -> None:
    """The schema has an operation per model the caller may call (DRF reads
    the session there, so a staff browser sees the private one in the docs)."""
    response = send(world, caller, "GET", path)
    expected = BAD if caller in BAD_CREDENTIAL else OK
    assert response.status_code == int(expected[:3])
    if path == "/api/schema/" and caller in SEES_PRIVATE_IN_SCHEMA:
        assert PRIVATE.encode() in response.content
    else:
        assert_no_private_slug(response)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/", "/dashboard/"])
@pytest.mark.parametrize("caller", CALLERS)
def test_admin_and_dashboard_answer_only_a_staff_session(
    world: World, caller: str, path: str
) -> None:
    """Tokens and keys are for the API: the admin pages read the session."""
    response = send(world, caller, "GET", path)
    if caller == "staff_session":
        assert response.status_code == 200
    else:
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
        assert_no_private_slug(response)


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_metrics_with_a_metrics_token_refuse_every_other_credential(
    world: World, caller: str, settings: Any
) -> None:
    """MODELHUB_METRICS_TOKEN is the scraper's own secret: no user token, API
    key or session stands in for it."""
    settings.MODELHUB_METRICS_TOKEN = "scrape-secret"
    response = send(world, caller, "GET", "/metrics")
    assert_outcome(response, ANON)
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'


@pytest.mark.django_db
def test_metrics_with_a_metrics_token_name_private_models_to_the_scraper(
    world: World, settings: Any
) -> None:
    settings.MODELHUB_METRICS_TOKEN = "scrape-secret"
    called = send(
        world, "staff_token", "POST", f"/api/predict/{PRIVATE}/", {"data": IRIS_ROW}
    )
    assert called.status_code == 200
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert response.status_code == 200
    assert f'model="{PRIVATE}"'.encode() in response.content
