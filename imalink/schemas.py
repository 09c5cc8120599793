"""The response envelope and the error schema shared by every API route."""

from functools import cache
from typing import Any

from ninja import Schema
from ninja.responses import codes_4xx, codes_5xx
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
    mapping = {200: envelope(schema), codes_4xx: ErrorResponse, codes_5xx: ErrorResponse}
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
