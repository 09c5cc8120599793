from django.contrib import admin
from django.urls import include, path, re_path

from .api import api, api_not_found
from .metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    re_path(r"^api/v1/(?P<rest>.*)$", api_not_found),
    path("metrics", metrics_view, name="metrics"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("storages.urls")),
    path("", include("imports.urls")),
    path("", include("indexing.urls")),
]
