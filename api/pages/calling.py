"""How to call a version: its endpoint URLs, an example body, snippets, its
schema and classes, the one thing the model page and the admin both show."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from registry.models import ModelVersion

from . import snippets
from .examples import PLACEHOLDERS, example_for


@dataclass(frozen=True)
class Endpoint:
    label: str
    url: str


@dataclass(frozen=True)
class FeatureRow:
    name: str
    type: str
    categories: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Calling:
    """Everything the panel shows about calling one version."""

    slug: str
    number: int
    pinned: bool
    private: bool
    ready: bool
    endpoints: list[Endpoint]
    try_path: str  # what Try it posts to: same origin, so a relative path
    body_json: str
    placeholders: bool
    curl: str
    requests: str
    tritonclient: str
    features: list[FeatureRow]
    classes: list[Any] | None
    auth_header: str | None


def how_to_call(
    version: ModelVersion, *, request: HttpRequest, pinned: bool
) -> Calling:
    """``pinned``: the snippets call this version's own URLs; else the model's
    active URLs, which follow each activation."""
    model = version.model
    slug, number = model.slug, version.number
    paths = {
        "active": reverse("predict", args=[slug]),
        "pinned": reverse("predict-version", args=[slug, number]),
        "v2_active": reverse("v2-infer", args=[slug]),
        "v2_pinned": reverse("v2-version-infer", args=[slug, number]),
    }
    urls = {key: request.build_absolute_uri(path) for key, path in paths.items()}
    called = "pinned" if pinned else "active"
    example = example_for(version)
    body = example.rest_body()
    private = model.private
    return Calling(
        slug=slug,
        number=number,
        pinned=pinned,
        private=private,
        ready=version.status == ModelVersion.Status.READY,
        endpoints=[
            Endpoint("Active version", urls["active"]),
            Endpoint(f"Version {number} (pinned)", urls["pinned"]),
            Endpoint("V2 (Open Inference Protocol)", urls["v2_active"]),
            Endpoint(f"V2, version {number}", urls["v2_pinned"]),
        ],
        try_path=paths[called],
        body_json=json.dumps(body, indent=2),
        placeholders=example.source == PLACEHOLDERS,
        curl=snippets.curl(urls[called], body, private=private),
        requests=snippets.requests_code(urls[called], body, private=private),
        tritonclient=snippets.tritonclient_code(
            request.build_absolute_uri("/"),
            slug,
            example.row,
            version=number if pinned else None,
            private=private,
        ),
        features=[
            FeatureRow(
                name=str(f.get("name")),
                type=str(f.get("type", "number")),
                categories=list(f.get("categories") or []),
            )
            for f in (version.input_schema or {}).get("features") or []
        ],
        classes=version.classes,
        auth_header=snippets.AUTH_HEADER if private else None,
    )
