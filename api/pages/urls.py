"""The pages' routes: the landing page and each model's page."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("models/<slug:slug>/", views.model_page, name="model-page"),
]
