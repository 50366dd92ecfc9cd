"""Management API, catalog and stats routes."""

from django.urls import path

from . import views

urlpatterns = [
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
        "api/models/<slug:slug>/history/",
        views.HistoryView.as_view(),
        name="model-history",
    ),
    path(
        "api/models/<slug:slug>/health/",
        views.ModelHealthView.as_view(),
        name="model-health",
    ),
    path("api/stats/", views.StatsView.as_view(), name="stats"),
]
