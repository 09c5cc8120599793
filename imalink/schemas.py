"""The response envelope and the error schema shared by every API route."""

from functools import cache
from typing import Any

from ninja import Schema
from pydantic import create_model

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
COMPONENTS = "#/components/schemas/{model}"
# OpenAPI 3's status code ranges: every operation answers its errors in one shape, whatever the code.
ERROR_RANGES = {
    "4XX": "A client error, in the error shape.",
    "5XX": "A server error (503: a service is unreachable), in the error shape.",
}


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
    """The response map of a route: its envelope on 200, and on each extra code (`_202=JobAccepted`).

    Errors are not listed here: they never pass through a route's response models (imalink.api's handlers shape
    them), and the document declares them once per operation as 4XX and 5XX (declare_error_ranges). Listing
    every code from 400 to 599 here made the document 1.1 MB and its build take seconds.
    """
    mapping = {200: envelope(schema)}
    for status, other in extra.items():
        mapping[int(status.lstrip("_"))] = envelope(other)
    return mapping


def declare_error_ranges(document: dict) -> dict:
    """Give every operation of an OpenAPI document the error shape on 4XX and 5XX, and the shape's components."""
    error_schema = ErrorResponse.model_json_schema(ref_template=COMPONENTS)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in {**error_schema.pop("$defs", {}), ErrorResponse.__name__: error_schema}.items():
        if components.setdefault(name, definition) != definition:
            raise ValueError(f"the OpenAPI document already has another schema named {name}")
    content = {"application/json": {"schema": {"$ref": COMPONENTS.format(model=ErrorResponse.__name__)}}}
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in HTTP_METHODS:
                continue
            for status, description in ERROR_RANGES.items():
                operation.setdefault("responses", {})[status] = {"description": description, "content": content}
    return document


def ok(data) -> dict:
    return {"success": True, "data": data}


class JobAccepted(Schema):
    """What a long operation answers with when it is still running: where to follow it."""

    job_id: int
    status: str
    status_url: str
    result: Any = None
