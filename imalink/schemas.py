"""The response envelope and the error schema shared by every API route."""

from functools import cache
from typing import Any

from ninja import Schema
# Every 4xx and 5xx: ninja's codes_4xx leaves out 422 and others that this API does answer with.
ERROR_CODES_4XX = frozenset(range(400, 500))
ERROR_CODES_5XX = frozenset(range(500, 600))
from pydantic import create_model


class ErrorDetail(Schema):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorResponse(Schema):
    success: bool = False
    error: ErrorDetail


@cache
def envelope(schema):
    """`{"success": true, "data": <schema>}` as a named model, so the OpenAPI document describes it."""
    name = getattr(schema, "__name__", "Data")
    return create_model(f"{name}Response", __base__=Schema, success=(bool, True), data=(schema, ...))


def responses(schema, **extra) -> dict:
    """The response map of a route: its envelope on 200, the error shape on every 4xx and 5xx."""
    mapping = {200: envelope(schema), ERROR_CODES_4XX: ErrorResponse, ERROR_CODES_5XX: ErrorResponse}
    for status, other in extra.items():
        mapping[int(status.lstrip("_"))] = envelope(other)
    return mapping


def ok(data) -> dict:
    return {"success": True, "data": data}


class JobAccepted(Schema):
    """What a long operation answers with when it is still running: where to follow it."""

    job_id: int
    status: str
    status_url: str
    result: Any = None
