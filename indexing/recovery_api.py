"""Routes for disaster recovery: POST /storage-index/recover, /storage-index/recovery-drill, and
POST /file-storage/adopt for one storage folder."""

from typing import Any

from ninja import Query, Router, Schema
from pydantic import ConfigDict, Field

from imalink.schemas import JobAccepted, responses
from jobs.answers import job_answer
from storages.paths import resolve_client_dir

from .recovery import check_storage_folder

recovery_router = Router(tags=["recovery"])
adopt_router = Router(tags=["file-storage"])


class RecoverIn(Schema):
    model_config = ConfigDict(extra="forbid")
    search_roots: list[str] = Field(..., min_length=1, max_length=100)
    dry_run: bool = False


class DrillIn(Schema):
    model_config = ConfigDict(extra="forbid")
    search_roots: list[str] | None = Field(None, max_length=100)


class AdoptIn(Schema):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., max_length=4096, examples=["/media/backup/imalink_20241018_143052_a1b2c3d4"])
    dry_run: bool = False


class RecoveryOut(Schema):
    job_id: int | None = None
    status: str | None = None
    search_roots: list[str]
    dry_run: bool
    found: int
    storages: list[dict[str, Any]]
    duration_s: float


class DrillOut(Schema):
    job_id: int | None = None
    status: str | None = None
    search_roots: list[str]
    storages_checked: list[str]
    differences: list[dict[str, Any]]
    difference_count: int
    recovery: dict[str, Any] | None
    passed: bool
    duration_s: float


@recovery_router.post(
    "/recover",
    response=responses(RecoveryOut, _202=JobAccepted),
    summary="Rebuild the database from the storages' indexes",
)
def recover(request, payload: RecoverIn, wait: float | None = Query(None, ge=0)):
    roots = [str(resolve_client_dir(root, field="search_roots")) for root in payload.search_roots]
    return job_answer(request, kind="recover", params={"search_roots": roots, "dry_run": payload.dry_run}, wait=wait)


@recovery_router.post(
    "/recovery-drill",
    response=responses(DrillOut, _202=JobAccepted),
    summary="Rebuild into a scratch database and compare with the live one",
)
def drill(request, payload: DrillIn | None = None, wait: float | None = Query(None, ge=0)):
    roots = [
        str(resolve_client_dir(root, field="search_roots"))
        for root in (payload.search_roots if payload and payload.search_roots else [])
    ]
    return job_answer(request, kind="recovery_drill", params={"search_roots": roots}, wait=wait)


@adopt_router.post(
    "/adopt",
    response=responses(RecoveryOut, _202=JobAccepted),
    summary="Register one existing storage folder from its indexes",
)
def adopt(request, payload: AdoptIn, wait: float | None = Query(None, ge=0)):
    folder = check_storage_folder(payload.path)
    return job_answer(
        request,
        kind="recover",
        params={"search_roots": [str(folder.parent)], "folders": [str(folder)], "dry_run": payload.dry_run},
        wait=wait,
    )
