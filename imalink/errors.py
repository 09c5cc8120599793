"""One error base class and one JSON error shape for the whole API.

Services raise ImalinkError subclasses; imalink.api turns them, and every other failure, into
{"success": false, "error": {"code", "message", "details"}} with the right status.
"""


class ImalinkError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict | None = None, status: int | None = None
    ):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code
        if status:
            self.status = status


class NotFound(ImalinkError):
    status = 404
    code = "not_found"


class Conflict(ImalinkError):
    status = 409
    code = "conflict"


class PathRejected(ImalinkError):
    """A client-supplied path that is not absolute, normalised, existing and inside the allowed roots."""

    status = 400
    code = "path_rejected"


class StorageUnavailable(Conflict):
    """The storage's drive is unplugged, unmounted or holds another storage: nothing may be written."""

    code = "storage_unavailable"


def error_body(code: str, message: str, details=None) -> dict:
    return {"success": False, "error": {"code": code, "message": message, "details": details or {}}}
