"""API authentication: a bearer token, or a logged-in browser session with CSRF on unsafe methods."""

from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from .models import ApiToken


class TokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str):
        return ApiToken.authenticate(token)


class LoggedInSession(APIKeyCookie):
    """Django's session, with the CSRF check only once we know someone is logged in.

    ninja's own SessionAuth checks CSRF first, which would answer an anonymous POST with 403 instead of 401.
    """

    param_name = "sessionid"

    def _get_key(self, request: HttpRequest):
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request: HttpRequest, key):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        if check_csrf(request):
            raise HttpError(403, "CSRF check failed: send the X-CSRFToken header with a session-authenticated request.")
        return user


api_auth = [TokenAuth(), LoggedInSession()]
