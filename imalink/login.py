"""Logging in: the lockout page django-axes shows after too many failures, and password reset only with mail.

Password reset sends mail, so without a mail server (EMAIL_HOST unset) its pages answer 404 and send nothing.
"""

from functools import wraps

from axes.helpers import get_client_username, get_cool_off
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import Http404
from django.shortcuts import render


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the login page's 429, saying why, for how long, and who can lift it."""
    cool_off = get_cool_off(request)
    context = {
        "username": get_client_username(request, credentials) or "",
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cooloff_minutes": round(cool_off.total_seconds() / 60) if cool_off else None,
    }
    return render(request, "registration/locked_out.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)


def password_reset_enabled() -> bool:
    """Read at request time, so the setting can change without a new URL configuration."""
    return settings.IMALINK_MAIL_CONFIGURED


def mail_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not password_reset_enabled():
            raise Http404("Password reset is off: no mail server is configured (set EMAIL_HOST).")
        return view(request, *args, **kwargs)

    return wrapper


class LoginView(auth_views.LoginView):
    """Django's login page, told whether to offer the "Forgot your password?" link."""

    def get_context_data(self, **kwargs):
        return super().get_context_data(password_reset_enabled=password_reset_enabled(), **kwargs)
