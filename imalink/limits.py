"""One limit on the size of a request body (IMALINK_MAX_REQUEST_BYTES) for every route, API, pages and admin alike.

A body over it answers 413 before it is read: in the API's error shape under /api/, as plain text elsewhere.
"""

import io
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpResponse, JsonResponse

from .errors import error_body

logger = logging.getLogger("imalink.limits")

API_PREFIX = "/api/"


def too_large_body(limit: int) -> dict:
    return error_body(
        "request_too_large",
        f"The request body is larger than this server accepts ({limit:,} bytes; IMALINK_MAX_REQUEST_BYTES).",
        {"limit_bytes": limit},
    )


def too_large_response(request, limit: int) -> HttpResponse:
    logger.warning("refused a request body over %s bytes: %s %s", limit, request.method, request.path)
    if request.path_info.startswith(API_PREFIX):
        return JsonResponse(too_large_body(limit), status=413)
    return HttpResponse(
        f"Request body too large: this server accepts at most {limit:,} bytes.\n",
        status=413,
        content_type="text/plain; charset=utf-8",
    )


def _declared_length(request) -> int | None:
    try:
        return int(request.META["CONTENT_LENGTH"])
    except (KeyError, ValueError):
        return None


def _chunked(request) -> bool:
    return "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()


class RequestSizeLimitMiddleware:
    """Refuses a declared Content-Length over the limit unread; reads a chunked body only up to the limit.

    Django reads nothing of a body sent without Content-Length (chunked, which gunicorn accepts): such a body is read
    here, at most limit + 1 bytes, and handed on with its length, so it is either refused or processed like any other.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.IMALINK_MAX_REQUEST_BYTES
        declared = _declared_length(request)
        if declared is not None and declared > limit:
            return too_large_response(request, limit)
        if declared is None and _chunked(request):
            body = request.META["wsgi.input"].read(limit + 1)
            if len(body) > limit:
                return too_large_response(request, limit)
            request.META["CONTENT_LENGTH"] = str(len(body))
            request._stream = LimitedStream(io.BytesIO(body), len(body))  # what WSGIRequest reads the body from
        return self.get_response(request)

    def process_exception(self, request, exception):
        # A page's own read of a body Django finds too big (its DATA_UPLOAD_MAX_MEMORY_SIZE);
        # the API's are in imalink.api.
        if isinstance(exception, RequestDataTooBig):
            return too_large_response(request, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        return None
