"""URL wiring: the admin, the health endpoints, the API and the dashboard."""

from django.contrib import admin
from django.urls import include, path

from api.dataplane.urls import urlpatterns as prediction_urlpatterns

admin.site.site_header = "ModelHub"
admin.site.site_title = "ModelHub admin"
admin.site.index_title = "Model registry"
admin.site.site_url = "/"  # the landing page (api.pages)
# Registry templates come after the admin's own, so the index needs its name.
admin.site.index_template = "admin/modelhub_index.html"

urlpatterns = [
    *prediction_urlpatterns,  # the hot path: matched first, at the top level
    path("admin/", admin.site.urls),
    path("", include("api.urls")),
    path("", include("monitoring.urls")),
]

handler400 = "api.errors.bad_request"
handler403 = "api.errors.permission_denied"
handler404 = "api.errors.not_found"
handler500 = "api.errors.server_error"
