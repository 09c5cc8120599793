"""The project's URLs: admin, the API under /api/v1/, metrics, login, and each app's pages."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from .api import api, api_not_found
from .login import LoginView, mail_required
from .metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    re_path(r"^api/v1/(?P<rest>.*)$", api_not_found),
    path("metrics", metrics_view, name="metrics"),
    # Ahead of django.contrib.auth.urls, which has the same paths and names: our login page, and the four
    # password-reset pages, which answer 404 unless mail is configured.
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/password_reset/", mail_required(auth_views.PasswordResetView.as_view()), name="password_reset"),
    path(
        "accounts/password_reset/done/",
        mail_required(auth_views.PasswordResetDoneView.as_view()),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        mail_required(auth_views.PasswordResetConfirmView.as_view()),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        mail_required(auth_views.PasswordResetCompleteView.as_view()),
        name="password_reset_complete",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("storages.urls")),
    path("", include("imports.urls")),
    path("", include("indexing.urls")),
    path("", include("jobs.urls")),
]
