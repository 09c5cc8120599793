"""Pages of the storages app (server-rendered, login required)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("storages/new/", views.storage_new, name="storage-new"),
    path("storages/<uuid:storage_uuid>/", views.storage_detail, name="storage-detail"),
    path("storages/<uuid:storage_uuid>/copy/", views.storage_copy, name="storage-copy"),
    path("storages/<uuid:storage_uuid>/migrate/", views.storage_migrate, name="storage-migrate"),
    path("storages/<uuid:storage_uuid>/retire-check/", views.storage_retire_check, name="storage-retire-check"),
    path("storages/<uuid:storage_uuid>/actions/<slug:action>/", views.storage_action, name="storage-action"),
]
