"""API and health routes."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import errors, views

# Django tries patterns in order: the root URLconf puts these first, outside
# any include (each level of include is another resolver and match object).
prediction_urlpatterns = [
    path("api/predict/<slug:slug>/", views.PredictView.as_view(), name="predict"),
    path(
        "api/predict/<slug:slug>/v<int:version>/",
        views.PredictView.as_view(),
        name="predict-version",
    ),
]

urlpatterns = [
    path("", include("api.v2_urls")),  # Open Inference Protocol (V2)
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("api/models/", views.ModelListView.as_view(), name="model-list"),
    path(
        "api/models/<slug:slug>/", views.ModelDetailView.as_view(), name="model-detail"
    ),
    path(
        "api/models/<slug:slug>/versions/",
        views.VersionListView.as_view(),
        name="model-versions",
    ),
    path(
        "api/models/<slug:slug>/versions/<int:version>/",
        views.VersionDetailView.as_view(),
        name="model-version",
    ),
    path(
        "api/models/<slug:slug>/activate/",
        views.ActivateView.as_view(),
        name="model-activate",
    ),
    path(
        "api/models/<slug:slug>/health/",
        views.ModelHealthView.as_view(),
        name="model-health",
    ),
    path("api/stats/", views.StatsView.as_view(), name="stats"),
    path("api/schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="openapi-schema"),
        name="api-docs",
    ),
    re_path(r"^api/", errors.api_not_found),
]
