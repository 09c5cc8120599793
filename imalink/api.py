"""The JSON API at /api/v1: one NinjaAPI, each app's router, and the one place errors are shaped."""

import json
import logging
import threading

import kombu.exceptions
import redis.exceptions
from csp.decorators import csp_update
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, RequestDataTooBig
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError
from ninja.responses import NinjaJSONEncoder

from .auth import UNAUTHORIZED, api_auth, staff_required_for_docs
from .errors import ImalinkError, error_body
from .limits import too_large_body
from .schemas import declare_error_ranges

logger = logging.getLogger("imalink.api")

# What kombu and redis-py raise when the broker cannot be reached (kombu wraps most of them in OperationalError).
BROKER_ERRORS = (
    kombu.exceptions.OperationalError,
    kombu.exceptions.ConnectionError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)

BROKER_DOWN = (
    "The task broker is unreachable, so the work was not handed to a worker. A job this request recorded stays queued "
    "and is sent again once the broker answers (see /api/v1/jobs/)."
)


class ImalinkAPI(NinjaAPI):
    """NinjaAPI whose OpenAPI document is built once per process, every operation declaring 4XX and 5XX errors."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._documents: dict = {}
        self._document_lock = threading.Lock()

    def _document(self, path_prefix, path_params) -> tuple[dict, bytes]:
        # The lock makes twenty first fetches wait for one build, not run twenty.
        key = (path_prefix, tuple(sorted((path_params or {}).items())))
        with self._document_lock:
            if key not in self._documents:
                document = declare_error_ranges(
                    super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
                )
                self._documents[key] = (document, json.dumps(document, cls=NinjaJSONEncoder).encode())
            return self._documents[key]

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        return self._document(path_prefix, path_params)[0]  # shared, not copied: callers only read it

    def _get_urls(self):
        # ninja's own view serialises the document again on every fetch (about 1 ms of CPU); this one sends the
        # bytes made with it. The same name, so the docs page finds it.
        urls = super()._get_urls()
        view = self.docs_decorator(self._document_view) if self.docs_decorator else self._document_view
        document_url = path(self.openapi_url.lstrip("/"), view, name="openapi-json")
        return [document_url if getattr(url, "name", None) == "openapi-json" else url for url in urls]

    def _document_view(self, request, **path_params):
        return HttpResponse(self._document(None, path_params)[1], content_type=self.get_content_type())


def openapi_document_build() -> None:
    """Build the OpenAPI document now: the web server does as each worker starts (imalink/wsgi.py), because a build
    on the first fetch holds the GIL for a few hundred milliseconds while that worker's other requests wait."""
    api.get_openapi_schema(path_params={})  # what the document's URL asks for


def _docs_access(view):
    """The document and the docs page: staff only (imalink.auth), and a Content-Security-Policy of their own."""
    # Swagger UI's stylesheet draws its arrows and icons as data: images: the docs page (and the document
    # beside it) also allow images from data:, and nothing else in the site-wide Content-Security-Policy changes.
    return csp_update({"img-src": ["data:"]})(staff_required_for_docs(view))


api = ImalinkAPI(
    title="ImaLink API",
    version="1",
    description="Self-describing photo storages, verified imports, scans and indexes.",
    auth=api_auth,
    docs_url="/docs",
    docs_decorator=_docs_access,
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
        problems.append(
            {"loc": [str(part) for part in err.get("loc", ())], "msg": err.get("msg", ""), "type": err.get("type", "")}
        )
    return _error("validation_error", "The request did not validate: see details.errors.", 422, {"errors": problems})


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return _error("unauthorized", UNAUTHORIZED, 401)


@api.exception_handler(AuthorizationError)
def _forbidden(request, exc):
    return _error("forbidden", str(exc) or "You may not do this.", 403)


@api.exception_handler(PermissionDenied)
def _permission_denied(request, exc):
    return _error("forbidden", str(exc) or "You may not do this.", 403)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    codes = {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        429: "throttled",
    }
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


@api.exception_handler(RequestDataTooBig)
def _too_large(request, exc):
    # Rarely reached: imalink.limits refuses an oversized body before it is read; this is Django's own check.
    return JsonResponse(too_large_body(settings.DATA_UPLOAD_MAX_MEMORY_SIZE), status=413)


@api.exception_handler(Exception)
def _unexpected(request, exc):
    if isinstance(exc, BROKER_ERRORS):
        logger.warning(
            "task broker unreachable during %s %s: %s: %s", request.method, request.path, type(exc).__name__, exc
        )
        return _error("broker_unavailable", BROKER_DOWN, 503)
    if isinstance(exc, (OperationalError, InterfaceError)):
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


from imports.api import authors_router, photos_router, sessions_router  # noqa: E402
from indexing.api import index_router  # noqa: E402
from indexing.health_api import health_router  # noqa: E402
from indexing.recovery_api import adopt_router, recovery_router  # noqa: E402
from jobs.api import router as jobs_router  # noqa: E402
from storages.api import router as storages_router  # noqa: E402

api.add_router("/file-storage/", adopt_router)
api.add_router("/file-storage/", storages_router)
api.add_router("/file-storage/", "copies.api.router")  # issue 17: replicate, migrate
api.add_router("/import-sessions/", sessions_router)
api.add_router("/authors/", authors_router)
api.add_router("/photos/", photos_router)
api.add_router("/jobs/", jobs_router)
api.add_router("/storage-index/", index_router)
api.add_router("/storage-index/", recovery_router)
api.add_router("/health/", health_router)
