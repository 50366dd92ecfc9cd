"""The API's routes by room, the health endpoints, the OpenAPI documents and
the pages people read."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import errors, health

urlpatterns = [
    path("", include("api.v2.urls")),  # Open Inference Protocol (V2)
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("api.control.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="openapi-schema"),
        name="api-docs",
    ),
    path("", include("api.pages.urls")),  # the landing page, each model's page
    re_path(r"^api/", errors.api_not_found),
]
