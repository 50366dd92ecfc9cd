"""The API's routes by room, the health endpoints and the OpenAPI documents."""

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
    re_path(r"^api/", errors.api_not_found),
]
