"""Pages of the imports app (server-rendered, login required)."""

from django.urls import path

from . import views

# Hothashes may be "raw:<hex>" or "video:<hex>": the str converter accepts ":" and stops only at "/".
urlpatterns = [
    path("imports/new/", views.import_new, name="import-new"),
    path("sessions/<int:session_id>/", views.session_detail, name="session-detail"),
    path(
        "sessions/<int:session_id>/regenerate-index/", views.session_regenerate_index, name="session-regenerate-index"
    ),
    path("sessions/<int:session_id>/verify-source/", views.session_verify_source, name="session-verify-source"),
    path("photos/", views.photo_list, name="photo-list"),
    path("photos/<str:hothash>/", views.photo_detail, name="photo-detail"),
    path("photos/<str:hothash>/hotpreview.jpg", views.photo_hotpreview, name="photo-hotpreview"),
    path("photos/<str:hothash>/preview.jpg", views.photo_preview, name="photo-preview"),
    # The item's original file, byte ranges and all (views.photo_original), e.g. the photo page's <video> src.
    path("photos/<str:hothash>/original", views.photo_original, name="photo-original"),
    # A motion photo's embedded video (views.photo_motion), where it lies in the original.
    path("photos/<str:hothash>/motion", views.photo_motion, name="photo-motion"),
]
