"""/api/predict/ routes, matched before any other (modelhub.urls)."""

from django.urls import path

from .feedback import FeedbackView
from .views import PredictView

# Django tries patterns in order: the root URLconf puts these first, outside
# any include (each level of include is another resolver and match object).
urlpatterns = [
    path("api/predict/<slug:slug>/", PredictView.as_view(), name="predict"),
    path(
        "api/predict/<slug:slug>/v<int:version>/",
        PredictView.as_view(),
        name="predict-version",
    ),
    path(
        "api/predict/<slug:slug>@<slug:alias>/",
        PredictView.as_view(),
        name="predict-alias",
    ),
    path("api/feedback/<slug:slug>/", FeedbackView.as_view(), name="feedback"),
]
