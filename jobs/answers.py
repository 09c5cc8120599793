"""How an API route answers with a job: start it, wait for it under the sync/async rule of DESIGN §5, and reply.

The one place a route turns a job into its 200 (the result) or 202 (where to follow it) answer.
"""

from collections.abc import Callable

from ninja import Status

from imalink.schemas import ok

from .services import job_response, job_start


def job_answer(
    request,
    *,
    kind: str,
    storage=None,
    session=None,
    params: dict | None = None,
    wait: float | None = None,
    on_result: Callable[[dict], dict] | None = None,
) -> Status:
    """Start a `kind` job for the request's user and answer with it; `on_result` reshapes a finished job's data."""
    job = job_start(kind=kind, storage=storage, session=session, params=params, user=request.auth)
    status, data = job_response(job, wait=wait)
    if status == 200 and on_result is not None:
        data = on_result(data)
    return Status(status, ok(data))
