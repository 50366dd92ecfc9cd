"""Management API, catalog and stats routes."""

from django.urls import path

from . import rollout_views, views

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
    path(
        "api/models/<slug:slug>/aliases/<str:name>/",
        rollout_views.AliasView.as_view(),
        name="model-alias",
    ),
    path(
        "api/models/<slug:slug>/policy/",
        rollout_views.PolicyView.as_view(),
        name="model-policy",
    ),
    path(
        "api/models/<slug:slug>/policy/promote/",
        rollout_views.PromoteView.as_view(),
        name="model-promote",
    ),
    path(
        "api/models/<slug:slug>/policy/abort/",
        rollout_views.AbortView.as_view(),
        name="model-abort",
    ),
    path("api/stats/", views.StatsView.as_view(), name="stats"),
]
