"""Who may use ImaLink: staff only, by bearer token or by a logged-in browser session with CSRF on unsafe methods.

Every route reads or writes server paths and there are no per-user permissions yet, so is_staff is the one gate.
"""

from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from ninja.errors import AuthorizationError, HttpError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from .errors import error_body
from .models import ApiToken

STAFF_ONLY = "ImaLink is for staff accounts only: ask an administrator to mark your account as staff."


def _staff_or_forbidden(user):
    """The user, if active and staff; None (401) if not active; 403 if active but not staff."""
    if user is None or not user.is_active:
        return None
    if not user.is_staff:
        raise AuthorizationError(403, STAFF_ONLY)
    return user


class TokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str):
        return _staff_or_forbidden(ApiToken.authenticate(token))


class LoggedInSession(APIKeyCookie):
    """Django's session, with the CSRF check only once we know someone is logged in.

    ninja's own SessionAuth checks CSRF first, which would answer an anonymous POST with 403 instead of 401.
    """

    param_name = "sessionid"

    def _get_key(self, request: HttpRequest):
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request: HttpRequest, key):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_active:
            return None
        if check_csrf(request):
            raise HttpError(403, "CSRF check failed: send the X-CSRFToken header with a session-authenticated request.")
        return _staff_or_forbidden(user)


api_auth = [TokenAuth(), LoggedInSession()]
UNAUTHORIZED = "Authentication required: log in, or send 'Authorization: Bearer <token>'."


def api_user(request: HttpRequest):
    """The staff user that api_auth finds behind a bearer token or the session, or None; 403 for non-staff."""
    for auth in api_auth:
        user = auth(request)
        if user:
            return user
    return None


def staff_required_for_docs(view):
    """The OpenAPI document and its docs page: staff only, by token or session, like every API route.

    The document answers 401 and 403 in the error shape; the docs page sends an anonymous browser to the login page.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        page = request.resolver_match is not None and request.resolver_match.url_name == "openapi-view"
        try:
            user = api_user(request)
        except HttpError as exc:  # AuthorizationError is one: a logged-in account that is not staff
            if page:
                raise PermissionDenied(exc.message) from None
            return JsonResponse(error_body("forbidden", exc.message), status=exc.status_code)
        if user is None:
            if page:
                return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
            return JsonResponse(error_body("unauthorized", UNAUTHORIZED), status=401)
        return view(request, *args, **kwargs)

    return wrapper


def staff_required(view):
    """Pages: anonymous visitors go to the login page; a logged-in account without staff rights gets 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        if not (user.is_active and user.is_staff):
            raise PermissionDenied(STAFF_ONLY)
        return view(request, *args, **kwargs)

    return wrapper
