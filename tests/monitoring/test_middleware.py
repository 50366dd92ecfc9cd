"""The request-log middleware's view of a path: which model a request is for."""

from __future__ import annotations

import pytest

from monitoring.middleware import prediction_slug


@pytest.mark.parametrize(
    ("path", "slug"),
    [
        ("/api/predict/iris/", "iris"),
        ("/api/predict/iris/v2/", "iris"),
        ("/api/predict/iris", "iris"),
        ("/v2/models/iris/infer", "iris"),
        ("/v2/models/iris/versions/3/infer", "iris"),
        ("/v2/models/iris/versions/x/infer", "iris"),
        ("/v2/models/iris", None),
        ("/v2/models/iris/ready", None),
        ("/v2/models/iris/infer/", None),
        ("/v2/models/a/b/infer", None),
        ("/v2", None),
        ("/api/models/iris/", None),
    ],
)
def test_prediction_slug_names_the_logged_model(path, slug):
    assert prediction_slug(path) == slug
