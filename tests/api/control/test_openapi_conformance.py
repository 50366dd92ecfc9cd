"""The API answers as its own OpenAPI schema (/api/schema/) says it does.

schemathesis draws requests from the schema, valid and invalid ones, sends
them through the WSGI app (every middleware included, CSRF too, unlike the
Django test client) and checks each response against the schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sklearn.linear_model import LogisticRegression

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
MAX_EXAMPLES = 25  # per operation and phase: ~15 s for the whole schema
SERVED = ("iris", "example")
_SLUG = re.compile(r"[-a-zA-Z0-9_]+")


@pytest.fixture
def served_models(publish, iris_classifier) -> tuple[str, ...]:
    """iris, and a model taking x_1 and x_2 (positional names, as a numpy fit's)."""
    publish(iris_classifier, "iris")
    frame = pd.DataFrame({"x_1": [0.0, 1.0, 2.0, 3.0], "x_2": [3, 2, 1, 0]})
    publish(LogisticRegression().fit(frame, [0, 0, 1, 1]), "example")
    return SERVED


@pytest.fixture
def staff_token(staff_user) -> str:
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=staff_user).key


def _valid_version(value: Any) -> bool:
    return type(value) is int and 1 <= value <= 999_999_999


def some_served_paths(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    """The drawn path, or the same path naming a served model (and its v1).

    Only valid parts are swapped: a negative case keeps what it negates.
    """
    params = path_parameters or {}
    slug = params.get("slug")
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
        return st.just(path_parameters)
    served = [{**params, "slug": name} for name in SERVED]
    if _valid_version(params.get("version")):
        served += [{**p, "version": 1} for p in served]
    return st.sampled_from([path_parameters, *served])


def sometimes_unpinned(context: Any, query: dict[str, Any] | None) -> Any:
    """The drawn query, or the same without a valid ?version= (the active one)."""
    if not query or not _valid_version(query.get("version")):
        return st.just(query)
    return st.sampled_from([query, {k: v for k, v in query.items() if k != "version"}])


def sometimes_as_staff(token: str) -> Any:
    """Anonymous or staff, so the staff-only stats answer 200 and not only 401."""

    def flatmap_headers(context: Any, headers: dict[str, Any] | None) -> Any:
        staff = {**(headers or {}), "Authorization": f"Token {token}"}
        return st.sampled_from([headers, staff])

    return flatmap_headers


@pytest.fixture
def keep_test_transaction() -> Iterator[None]:
    """Requests through the bare WSGI handler must not close the connection.

    At each request's start and end Django closes a connection whose
    autocommit differs from its settings, which is the case inside the test's
    transaction: PostgreSQL would lose it (in-memory SQLite ignores close()).
    Django's own test client disconnects these handlers the same way.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(
    settings: Any,
    keep_test_transaction: None,
    served_models: tuple[str, ...],
    staff_token: str,
    fast_preflight: None,
) -> Any:
    settings.ALLOWED_HOSTS = ["localhost"]
    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", get_wsgi_application()
    )
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
    )
    schema.hook("flatmap_path_parameters")(some_served_paths)
    schema.hook("flatmap_query")(sometimes_unpinned)
    schema.hook("flatmap_headers")(sometimes_as_staff(staff_token))
    return schema


def is_documented_predict_example(case: schemathesis.Case) -> bool:
    return (
        case.meta is not None
        and case.meta.phase.name == TestPhase.EXAMPLES
        and case.operation.path.startswith("/api/predict/")
    )


def aim_at_example_model(case: schemathesis.Case) -> None:
    """The generic predict examples are one served model's bodies: send them
    to the slug the schema prefills (a model's own operation has no slug).

    Hooks do not reach the examples phase, hence the direct edit.
    """
    if "slug" not in case.path_parameters:
        return
    parameters = case.operation.definition.raw.get("parameters", [])
    for name in case.path_parameters:
        prefilled = next(p for p in parameters if p["name"] == name)
        case.path_parameters[name] = prefilled["example"]
    if case.query:
        case.query.pop("version", None)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_api_conforms_to_its_openapi_schema(case: schemathesis.Case) -> None:
    documented = is_documented_predict_example(case)
    if documented:
        aim_at_example_model(case)
    # Each case undoes its writes: a drawn DELETE or slug change of a served
    # model would leave later operations nothing to reach.
    with transaction.atomic():
        response = case.call_and_validate(checks=CHECKS)
        transaction.set_rollback(True)
    if documented:
        assert response.status_code == 200, response.text[:300]
