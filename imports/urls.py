"""Pages of the imports app (server-rendered, login required)."""

from django.urls import path

from . import views

# Hothashes may be "raw:<hex>": the str converter accepts ":" and stops only at "/".
urlpatterns = [
    path("imports/new/", views.import_new, name="import-new"),
    path("sessions/<int:session_id>/", views.session_detail, name="session-detail"),
    path(
        "sessions/<int:session_id>/regenerate-index/", views.session_regenerate_index, name="session-regenerate-index"
    ),
    path("photos/<str:hothash>/", views.photo_detail, name="photo-detail"),
    path("photos/<str:hothash>/hotpreview.jpg", views.photo_hotpreview, name="photo-hotpreview"),
    path("photos/<str:hothash>/preview.jpg", views.photo_preview, name="photo-preview"),
]
