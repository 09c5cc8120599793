"""The JSON API at /api/v1: one NinjaAPI, each app's router, and the one place errors are shaped."""

import logging

from csp.decorators import csp_update
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError

from .auth import api_auth
from .errors import ImalinkError, error_body

logger = logging.getLogger("imalink.api")

api = NinjaAPI(
    title="ImaLink API",
    version="1",
    description="Self-describing photo storages, verified imports, scans and indexes.",
    auth=api_auth,
    docs_url="/docs",
    # Swagger UI's stylesheet draws its arrows and icons as data: images: the docs page (and the document
    # beside it) also allow images from data:, and nothing else in the site-wide Content-Security-Policy changes.
    docs_decorator=csp_update({"img-src": ["data:"]}),
    urls_namespace="api",
)


def _error(code: str, message: str, status: int, details=None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status)


@api.exception_handler(ImalinkError)
def _imalink_error(request, exc: ImalinkError):
    return _error(exc.code, exc.message, exc.status, exc.details)


@api.exception_handler(ValidationError)
def _validation_error(request, exc: ValidationError):
    problems = []
    for err in exc.errors:
        problems.append({"loc": [str(part) for part in err.get("loc", ())], "msg": err.get("msg", ""), "type": err.get("type", "")})
    return _error("validation_error", "The request did not validate: see details.errors.", 422, {"errors": problems})


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return _error("unauthorized", "Authentication required: log in, or send 'Authorization: Bearer <token>'.", 401)


@api.exception_handler(AuthorizationError)
def _forbidden(request, exc):
    return _error("forbidden", str(exc) or "You may not do this.", 403)


@api.exception_handler(PermissionDenied)
def _permission_denied(request, exc):
    return _error("forbidden", str(exc) or "You may not do this.", 403)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    codes = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 429: "throttled"}
    return _error(codes.get(exc.status_code, "http_error"), exc.message, exc.status_code)


@api.exception_handler(Http404)
def _not_found(request, exc):
    return _error("not_found", str(exc) or "Not found.", 404)


@api.exception_handler(ObjectDoesNotExist)
def _does_not_exist(request, exc):
    return _error("not_found", str(exc) or "Not found.", 404)


@api.exception_handler(OverflowError)
@api.exception_handler(DataError)
def _overflow(request, exc):
    # A number too big for the database (an id of 2**70, say) is the client's mistake, not a server error.
    return _error("validation_error", "A number in the request is out of range.", 422)


@api.exception_handler(Exception)
def _unexpected(request, exc):
    if isinstance(exc, (OperationalError, InterfaceError)) or type(exc).__name__ == "OperationalError":
        logger.warning("database unavailable during %s %s: %s", request.method, request.path, type(exc).__name__)
        return _error("service_unavailable", "The database is unreachable; try again shortly.", 503)
    if isinstance(exc, DatabaseError):
        logger.exception("database error during %s %s", request.method, request.path)
        return _error("database_error", "The database refused the operation.", 500)
    logger.exception("unexpected error during %s %s", request.method, request.path)
    return _error("internal_error", "An unexpected error occurred; it has been logged.", 500)


@csrf_exempt  # an unknown route answers 404 in the error shape for every method, cookie or not
def api_not_found(request, rest=""):
    """Django-level 404 for unknown /api/v1 paths, in the same error shape."""
    return _error("not_found", f"No API route at {request.path}.", 404)


from storages.api import router as storages_router  # noqa: E402
from imports.api import authors_router, photos_router, sessions_router  # noqa: E402
from indexing.api import index_router, jobs_router  # noqa: E402
from indexing.recovery_api import adopt_router, recovery_router  # noqa: E402
from indexing.health_api import health_router  # noqa: E402

api.add_router("/file-storage/", adopt_router)
api.add_router("/file-storage/", storages_router)
api.add_router("/import-sessions/", sessions_router)
api.add_router("/authors/", authors_router)
api.add_router("/photos/", photos_router)
api.add_router("/jobs/", jobs_router)
api.add_router("/storage-index/", index_router)
api.add_router("/storage-index/", recovery_router)
api.add_router("/health/", health_router)
