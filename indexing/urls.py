"""Pages of the indexing app: recovery and health (server-rendered, login required)."""

from django.urls import path

from . import views

urlpatterns = [
    path("recovery/", views.recovery, name="recovery"),
    path("health/", views.health, name="health"),
]
