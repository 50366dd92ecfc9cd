"""Monitoring's pages: the staff dashboard and the Prometheus metrics."""

from django.urls import path

from . import dashboard, scrape

urlpatterns = [
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    # The name django_prometheus.urls gives it.
    path("metrics", scrape.metrics, name="prometheus-django-metrics"),
]
