"""Routes under /api/v1/storage-index/: write, read, check and validate a storage's indexes, and scan it."""

from typing import Any, Literal

from ninja import Query, Router, Schema
from pydantic import ConfigDict, Field

from imalink.errors import Conflict, ImalinkError, NotFound, StorageUnavailable
from imalink.schemas import JobAccepted, ok, responses
from imports.models import ImportSession
from imports.services import session_get
from jobs.answers import job_answer
from storages import drive
from storages.layout import MASTER_INDEX
from storages.services import storage_get, storage_require_available

from .reader import read_index
from .schemas import (
    AcceptChecksumIn,
    AcceptChecksumOut,
    IndexStatusOut,
    IndexWritten,
    ReconcileOut,
    RepairOut,
    ScanOut,
    ValidationOut,
)
from .validation import accept_checksums
from .writer import index_status, session_index_file, unavailable_index_status

index_router = Router(tags=["storage-index"])


@index_router.post(
    "/session/{session_id}",
    response=responses(IndexWritten, _202=JobAccepted),
    summary="Write one session's index file (imports/session_<id>.json)",
)
def generate_session_index(request, session_id: int, wait: float | None = Query(None, ge=0)):
    session = session_get(session_id)
    storage_require_available(session.file_storage, writable=True)
    return job_answer(request, kind="index_session", storage=session.file_storage, session=session, wait=wait)


@index_router.post(
    "/generate/{storage_uuid}",
    response=responses(IndexWritten, _202=JobAccepted),
    summary="Write every session index and the master index of a storage",
)
def generate_storage_indexes(request, storage_uuid: str, wait: float | None = Query(None, ge=0)):
    storage = storage_get(storage_uuid)
    storage_require_available(storage, writable=True)
    return job_answer(request, kind="index_storage", storage=storage, wait=wait)


@index_router.post(
    "/scan/{storage_uuid}",
    response=responses(ScanOut, _202=JobAccepted),
    summary="Find moved, missing, modified and new files under photos/ (409 if the storage is unavailable)",
)
def scan(
    request, storage_uuid: str, dry_run: bool = False, adopt_new: bool = False, wait: float | None = Query(None, ge=0)
):
    storage = storage_get(storage_uuid)
    storage_require_available(storage)
    return job_answer(
        request, kind="scan", storage=storage, params={"dry_run": dry_run, "adopt_new": adopt_new}, wait=wait
    )


@index_router.get(
    "/status/{storage_uuid}",
    response=responses(IndexStatusOut),
    summary="Whether each index exists, parses and is current",
)
def status(request, storage_uuid: str):
    """A read: for an unavailable storage it answers 200 saying so (the seed's health script reads `data`)."""
    storage = storage_get(storage_uuid)
    try:
        storage_require_available(storage)
    except StorageUnavailable as exc:
        return ok(unavailable_index_status(storage, reason=exc.message, reason_code=exc.details.get("reason_code")))
    return ok(index_status(storage))


def _read_from_disk(storage, relative: str, what: str):
    path = storage.full_path / relative
    with drive.Storage(storage.full_path) as opened, opened.path_to(relative) as reached:
        reading = read_index(reached)  # reached from the storage's descriptor: no folder on the way is followed
    if reading.problem == "missing":
        raise NotFound(
            f"{what} does not exist on disk: regenerate it.", code="index_missing", details={"path": str(path)}
        )
    if reading.data is None:
        raise Conflict(
            f"{what} cannot be used: {reading.problem}.",
            code="index_corrupt",
            details={"path": str(path), "problem": reading.problem},
        )
    return ok(reading.data)


@index_router.get("/master/{storage_uuid}", response=responses(dict[str, Any]), summary="index.json as it is on disk")
def master(request, storage_uuid: str):
    storage = storage_get(storage_uuid)
    storage_require_available(storage)
    return _read_from_disk(storage, MASTER_INDEX, f"The master index of {storage.display_name!r}")


@index_router.get(
    "/session/{session_id}", response=responses(dict[str, Any]), summary="imports/session_<id>.json as it is on disk"
)
def session_index(request, session_id: int):
    session = session_get(session_id)
    storage_require_available(session.file_storage)
    return _read_from_disk(session.file_storage, session_index_file(session.id), f"The index of session {session.id}")


class ValidateIn(Schema):
    """The optional body of a validation: {"mode": "quick" | "full"}. Any other field is refused with 422."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["quick", "full"] | None = None


@index_router.post(
    "/validate/{storage_uuid}",
    response=responses(ValidationOut, _202=JobAccepted),
    summary="Check every file against the database: quick (size and mtime) or full (re-hash every file)",
)
def validate(
    request,
    storage_uuid: str,
    body: ValidateIn | None = None,
    mode: Literal["quick", "full"] | None = None,
    wait: float | None = Query(None, ge=0),
):
    chosen = validation_mode(query=mode, body=body.mode if body else None)
    storage = storage_get(storage_uuid)
    storage_require_available(storage)
    return job_answer(request, kind="validate", storage=storage, params={"mode": chosen}, wait=wait)


def validation_mode(*, query: str | None, body: str | None) -> str:
    """The mode from the query or the body, whichever the client used; quick when neither. Both, disagreeing: 422."""
    if query and body and query != body:
        raise ImalinkError(
            f"The query asks for a {query} validation and the body for a {body} one: send the mode once.",
            code="validation_error",
            status=422,
            details={"query": query, "body": body},
        )
    return query or body or "quick"


@index_router.post(
    "/accept-checksum",
    response=responses(AcceptChecksumOut),
    summary="Take files' current bytes as their known-good bytes (after a validation reported them corrupted)",
)
def accept_checksum(request, body: AcceptChecksumIn):
    return ok(accept_checksums(body.file_ids))


class BatchIn(Schema):
    model_config = ConfigDict(extra="forbid")
    session_ids: list[int] = Field(..., min_length=1, max_length=1000)


class BatchOut(Schema):
    job_id: int | None = None
    status: str | None = None
    children: list[dict[str, Any]]
    session_ids: list[int]
    written: int
    succeeded: int
    failed: int
    cancelled: int


@index_router.post(
    "/batch",
    response=responses(BatchOut, _202=JobAccepted),
    summary="Write many session indexes at once, in parallel across the workers (one parent job)",
)
def batch_generate(request, payload: BatchIn, wait: float | None = Query(None, ge=0)):

    wanted = sorted(set(payload.session_ids))
    sessions = {s.pk: s for s in ImportSession.objects.filter(pk__in=wanted).select_related("file_storage")}
    unknown = [i for i in wanted if i not in sessions]
    if unknown:
        raise NotFound(
            f"No import session with id {', '.join(map(str, unknown[:20]))}.", details={"session_ids": unknown[:100]}
        )
    for storage in {s.file_storage_id: s.file_storage for s in sessions.values()}.values():
        storage_require_available(storage, writable=True)
    return job_answer(request, kind="index_batch", storage=None, params={"session_ids": wanted}, wait=wait)


@index_router.post(
    "/repair/{storage_uuid}",
    response=responses(RepairOut, _202=JobAccepted),
    summary=(
        "Repair corrupt and missing files from good copies on other available storages; the damaged ones go to "
        ".imalink/quarantine/ (409 if the storage is unavailable)"
    ),
)
def repair(request, storage_uuid: str, wait: float | None = Query(None, ge=0)):
    storage = storage_get(storage_uuid)
    storage_require_available(storage, writable=True)
    return job_answer(request, kind="repair", storage=storage, wait=wait)


@index_router.post(
    "/reconcile",
    response=responses(ReconcileOut, _202=JobAccepted),
    summary=(
        "Record files moved by hand from one storage's photos/ into another's as moves, over every available "
        "storage (a file that left an unavailable storage waits)"
    ),
)
def reconcile(request, wait: float | None = Query(None, ge=0)):
    return job_answer(request, kind="reconcile", storage=None, wait=wait)
