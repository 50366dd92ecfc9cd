"""Open Inference Protocol (KServe V2) routes; any other /v2 path is a V2 404."""

from django.urls import path, re_path

from . import views as v2_views

_MODEL = "v2/models/<slug:slug>"
# V2 versions are strings: digits name a version, anything else an alias.
_VERSION = f"{_MODEL}/versions/<str:version>"

urlpatterns = [
    path(f"{_MODEL}/infer", v2_views.infer, name="v2-infer"),  # tried first
    path(f"{_VERSION}/infer", v2_views.infer, name="v2-version-infer"),
    path("v2", v2_views.server_metadata, name="v2-server-metadata"),
    path("v2/health/live", v2_views.server_live, name="v2-live"),
    path("v2/health/ready", v2_views.server_ready, name="v2-ready"),
    path(_MODEL, v2_views.model_metadata, name="v2-model-metadata"),
    path(_VERSION, v2_views.model_metadata, name="v2-version-metadata"),
    path(f"{_MODEL}/ready", v2_views.model_ready, name="v2-model-ready"),
    path(f"{_VERSION}/ready", v2_views.model_ready, name="v2-version-ready"),
    re_path(r"^v2(?:/|$)", v2_views.not_found),
]
