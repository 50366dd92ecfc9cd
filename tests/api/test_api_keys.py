"""An API key's life: issued and shown once, stored as a hash, sent as
``Api-Key`` or ``Bearer``, used (and its use recorded), throttled, revoked or
expired; every refusal in the request log with its code and the key's name."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token

from api.access import issuing, keys
from api.models import ApiKey
from monitoring.models import RequestLog

pytestmark = pytest.mark.django_db

IRIS_ROW = {
    "sepal length (cm)": 5.1,
    "sepal width (cm)": 3.5,
    "petal length (cm)": 1.4,
    "petal width (cm)": 0.2,
}
SECRET_SLUG = "zz-orchid-vault-7q"


@pytest.fixture
def private_iris(publish, iris_classifier):
    return publish(iris_classifier, SECRET_SLUG, private=True)


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("robot-owner")


def predict(
    slug: str, authorization: str | None = None, request_id: str = "keys-test"
) -> Any:
    headers = {"HTTP_X_REQUEST_ID": request_id}
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization
    return Client().post(
        f"/api/predict/{slug}/",
        json.dumps({"data": IRIS_ROW}),
        content_type="application/json",
        **headers,
    )


def every_stored_value() -> list[str]:
    """Every value in every table, as text."""
    values = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            values.extend(str(v) for row in cursor.fetchall() for v in row)
    return values


# --- issued once, kept as a hash -------------------------------------------------


def test_new_key_is_kept_only_as_its_hash(owner, iris):
    key, secret = issuing.create_key(name="batch", owner=owner)
    assert predict("iris", f"Api-Key {secret}").status_code == 200
    prefix, _, random_part = secret.partition(".")
    assert key.prefix == prefix
    stored = every_stored_value()
    assert not [value for value in stored if random_part in value]
    assert ApiKey.objects.key_generator.verify(secret, key.hashed_key)


@pytest.mark.parametrize("scheme", ["Api-Key", "Bearer", "api-key", "bearer"])
def test_key_is_accepted_as_api_key_or_bearer(owner, iris, scheme):
    _, secret = issuing.create_key(name="batch", owner=owner)
    response = predict("iris", f"{scheme} {secret}")
    assert response.status_code == 200, response.content
    assert RequestLog.objects.get().key_name == "batch"


def test_user_token_still_works_beside_keys(owner, private_iris):
    private_iris.model.granted_users.add(owner)
    token = Token.objects.create(user=owner)
    response = predict(SECRET_SLUG, f"Token {token.key}")
    assert response.status_code == 200, response.content
    assert RequestLog.objects.get().key_name == ""


def test_key_revoked_in_this_process_is_refused_at_once_with_401(owner, iris):
    key, secret = issuing.create_key(name="batch", owner=owner)
    assert predict("iris", f"Api-Key {secret}").status_code == 200  # now cached
    issuing.revoke(key.prefix)
    response = predict("iris", f"Api-Key {secret}")
    assert response.status_code == 401
    assert response.json() == {
        "detail": "This API key was revoked.",
        "code": "authentication_failed",
    }
    assert response["WWW-Authenticate"] == "Token"
    catalog = Client().get("/api/models/", HTTP_AUTHORIZATION=f"Api-Key {secret}")
    assert catalog.status_code == 401


def test_key_that_expires_while_cached_is_refused_with_401(owner, iris):
    expires = timezone.now() + timedelta(seconds=0.5)
    _, secret = issuing.create_key(name="batch", owner=owner, expires=expires)
    assert predict("iris", f"Api-Key {secret}").status_code == 200  # now cached
    time.sleep(max(0.0, (expires - timezone.now()).total_seconds()) + 0.05)
    response = predict("iris", f"Api-Key {secret}")
    assert response.status_code == 401
    assert response.json()["detail"] == "This API key has expired."


def test_key_of_a_deactivated_owner_is_refused_with_401(owner, iris):
    _, secret = issuing.create_key(name="batch", owner=owner)
    owner.is_active = False
    owner.save()
    keys.forget()  # as the recheck would, MODELHUB_KEY_RECHECK_MS later
    assert predict("iris", f"Api-Key {secret}").status_code == 401


# --- last used -------------------------------------------------------------------


def last_used_updates(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('UPDATE "api_apikey"') and "last_used_at" in q["sql"]
    ]


def test_last_used_is_written_after_a_request_and_not_again_within_the_minute(
    owner, iris, monkeypatch
):
    key, secret = issuing.create_key(name="batch", owner=owner)
    assert key.last_used_at is None
    with CaptureQueriesContext(connection) as first:
        assert predict("iris", f"Api-Key {secret}").status_code == 200
    assert len(last_used_updates(first)) == 1
    key.refresh_from_db()
    assert timezone.now() - key.last_used_at < timedelta(seconds=5)

    with CaptureQueriesContext(connection) as within_the_minute:
        for _ in range(3):
            assert predict("iris", f"Api-Key {secret}").status_code == 200
    assert last_used_updates(within_the_minute) == []

    monkeypatch.setattr(keys, "LAST_USED_EVERY", 0.0)  # the minute has passed
    with CaptureQueriesContext(connection) as later:
        assert predict("iris", f"Api-Key {secret}").status_code == 200
    assert len(last_used_updates(later)) == 1


def test_cached_key_costs_no_query(owner, iris):
    _, secret = issuing.create_key(name="batch", owner=owner)
    assert predict("iris", f"Api-Key {secret}").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert predict("iris", f"Api-Key {secret}").status_code == 200
    assert not [q for q in queries.captured_queries if "api_apikey" in q["sql"]]


# --- manage.py apikey --------------------------------------------------------------


def apikey(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("apikey", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_apikey_create_prints_the_key_alone_once_and_list_never_shows_it(
    owner, iris, private_iris
):
    out, err = apikey(
        "create", "nightly-batch", "--owner", owner.username,
        "--model", SECRET_SLUG, "--rate", "10/minute", "--expires", "30d",
    )  # fmt: skip
    secret = out.removesuffix("\n")
    assert out == secret + "\n" and "\n" not in secret
    key = ApiKey.objects.get(name="nightly-batch")
    assert secret.startswith(key.prefix + ".")
    assert secret not in err and key.prefix in err
    assert (key.predict, key.throttle_rate) == ("listed", "10/minute")
    assert timedelta(days=29) < key.expiry_date - timezone.now() <= timedelta(days=30)
    assert predict(SECRET_SLUG, f"Api-Key {secret}").status_code == 200

    listed, _ = apikey("list")
    assert secret.partition(".")[2] not in listed
    (line,) = listed.splitlines()
    assert line.split("\t")[:5] == [
        key.prefix,
        "nightly-batch",
        owner.username,
        f"predict={SECRET_SLUG}",
        "management=none",
    ]
    assert "last_used=20" in line


def test_apikey_revoke_refuses_the_key_from_the_next_request(owner, iris):
    out, _ = apikey("create", "batch", "--owner", owner.username)
    secret = out.strip()
    assert predict("iris", f"Api-Key {secret}").status_code == 200
    prefix = secret.partition(".")[0]
    done, _ = apikey("revoke", prefix)
    assert done == f"Revoked 'batch' ({prefix}).\n"
    assert predict("iris", f"Api-Key {secret}").status_code == 401
    listed, _ = apikey("list")
    assert listed.rstrip().endswith("revoked")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--owner", "nobody"], "No user 'nobody'."),
        (["--owner", "robot-owner", "--model", "nope"], "No model with slug 'nope'."),
        (["--owner", "robot-owner", "--predict", "listed"], "needs at least one"),
        (["--owner", "robot-owner", "--expires", "2001-01-01"], "in the past"),
        (["--owner", "robot-owner", "--rate", "many"], "is not a rate"),
    ],
)
def test_apikey_create_refuses_bad_arguments_and_stores_nothing(
    owner, db, args, message
):
    with pytest.raises(CommandError, match=message):
        apikey("create", "batch", *args)
    assert not ApiKey.objects.exists()


def test_apikey_revoke_of_an_unknown_prefix_is_a_command_error(db):
    with pytest.raises(CommandError, match="No API key with prefix 'abcdefgh'"):
        apikey("revoke", "abcdefgh")


# --- the admin ------------------------------------------------------------------


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(
        django_user_model.objects.create_superuser("root", password="root-pass-123")
    )
    return client


def test_admin_shows_a_new_key_once_and_keeps_only_its_hash(
    superuser_client, owner, private_iris
):
    """The key is in the answer to the add form and nowhere else: not in a
    message the session would keep until the next page, not in a cache."""
    response = superuser_client.post(
        "/admin/api/apikey/add/",
        {
            "name": "dashboard-sync",
            "owner": owner.pk,
            "predict": "listed",
            "allowed_models": [private_iris.model.pk],
            "management": "none",
            "throttle_rate": "",
            "expiry_date_0": "",
            "expiry_date_1": "",
        },
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get(name="dashboard-sync")
    page = response.content.decode()
    (secret,) = re.findall(r'<code id="api-key">([^<]+)</code>', page)
    assert secret.startswith(key.prefix + ".")
    assert page.count(secret) == 1
    assert key.predict == "listed"
    assert list(key.allowed_models.all()) == [private_iris.model]
    assert predict(SECRET_SLUG, f"Api-Key {secret}").status_code == 200

    random_part = secret.partition(".")[2]
    for session in Session.objects.all():
        assert random_part not in json.dumps(session.get_decoded())
    assert not [v for v in every_stored_value() if random_part in v]
    for path in (f"/admin/api/apikey/{key.pk}/change/", "/admin/api/apikey/"):
        assert random_part.encode() not in superuser_client.get(path).content


def test_admin_revoke_action_refuses_the_key(superuser_client, owner, iris):
    key, secret = issuing.create_key(name="batch", owner=owner)
    assert predict("iris", f"Api-Key {secret}").status_code == 200
    superuser_client.post(
        "/admin/api/apikey/",
        {"action": "revoke", "_selected_action": [key.pk]},
    )
    key.refresh_from_db()
    assert key.revoked
    assert predict("iris", f"Api-Key {secret}").status_code == 401


# --- quotas -----------------------------------------------------------------------


def test_key_own_throttle_rate_overrides_the_default_with_429_and_retry_after(
    owner, iris, settings
):
    settings.MODELHUB_THROTTLE_RATE = "100/minute"
    _, tight = issuing.create_key(name="tight", owner=owner, throttle_rate="2/minute")
    _, loose = issuing.create_key(name="loose", owner=owner)
    statuses = [predict("iris", f"Api-Key {tight}").status_code for _ in range(2)]
    assert statuses == [200, 200]
    refused = predict("iris", f"Api-Key {tight}")
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 30
    assert [predict("iris", f"Api-Key {loose}").status_code for _ in range(3)] == [
        200
    ] * 3


def test_key_quota_counts_predict_and_v2_infer_together(owner, iris):
    """A key's own rate applies even when MODELHUB_THROTTLE_RATE is off."""
    _, secret = issuing.create_key(name="tight", owner=owner, throttle_rate="1/hour")
    assert predict("iris", f"Api-Key {secret}").status_code == 200
    body = {
        "inputs": [
            {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
            for name, value in IRIS_ROW.items()
        ]
    }
    refused = Client().post(
        "/v2/models/iris/infer",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert refused.status_code == 429
    wait = int(refused["Retry-After"])
    assert math.isclose(wait, 3600, abs_tol=5)


# --- the request log ------------------------------------------------------------


@pytest.fixture
def callers(owner, settings):
    """Named credentials for the log cases."""
    staff = get_user_model().objects.create_user("ops", is_staff=True)
    _, public_key = issuing.create_key(name="public-key", owner=owner)
    _, listed_key = issuing.create_key(
        name="listed-key", owner=owner, predict="listed", throttle_rate="1/hour"
    )
    revoked, revoked_key = issuing.create_key(name="revoked-key", owner=staff)
    issuing.revoke(revoked.prefix)
    return {
        "public": f"Api-Key {public_key}",
        "listed": f"Api-Key {listed_key}",
        "revoked": f"Api-Key {revoked_key}",
        "wrong": f"Api-Key {revoked.prefix}.{'x' * 32}",
        "none": None,
    }


@pytest.mark.parametrize(
    ("caller", "slug", "status", "code", "key_name"),
    [
        ("public", SECRET_SLUG, 404, "unknown_model", "public-key"),
        ("listed", "iris", 403, "forbidden", "listed-key"),
        ("none", SECRET_SLUG, 404, "unknown_model", ""),
        # An unproven credential is no one's: its name is not logged.
        ("revoked", "iris", 401, "authentication_failed", ""),
        ("wrong", "iris", 401, "authentication_failed", ""),
    ],
)
def test_refusal_is_logged_with_its_code_and_the_key_name(
    callers, iris, private_iris, caller, slug, status, code, key_name
):
    response = predict(slug, callers[caller], request_id=f"refused-{caller}")
    assert response.status_code == status
    row = RequestLog.objects.get(request_id=f"refused-{caller}")
    assert (row.status, row.error_code, row.key_name) == (status, code, key_name)


def test_throttled_request_is_logged_with_the_key_name(owner, iris):
    _, secret = issuing.create_key(name="tight", owner=owner, throttle_rate="1/hour")
    assert predict("iris", f"Api-Key {secret}", "first").status_code == 200
    assert predict("iris", f"Api-Key {secret}", "second").status_code == 429
    row = RequestLog.objects.get(request_id="second")
    assert (row.status, row.error_code, row.key_name) == (429, "throttled", "tight")


def test_apikey_create_takes_an_iso_expiry_as_utc(owner, db):
    apikey("create", "batch", "--owner", owner.username, "--expires", "2099-01-31")
    expiry = ApiKey.objects.get().expiry_date
    assert expiry.isoformat() == "2099-01-31T00:00:00+00:00"
