"""Response shapes of the job routes."""

from datetime import datetime
from typing import Any
from uuid import UUID

from ninja import Schema
from pydantic import Field

from .services import job_eta_seconds


class JobOut(Schema):
    id: int
    kind: str
    status: str
    storage_uuid: UUID | None
    session_id: int | None
    progress: dict[str, Any]
    eta_seconds: float | None
    result: Any
    errors: list[Any]
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str = Field(
        "", description='The process that runs or ran it, "host:pid"; empty while queued or while its children work'
    )
    heartbeat_at: datetime | None = Field(None, description="When that process last said it was alive")

    @staticmethod
    def from_job(job) -> dict:
        return {
            "id": job.id,
            "kind": job.kind,
            "status": job.status,
            "storage_uuid": job.storage.storage_uuid if job.storage_id else None,
            "session_id": job.session_id,
            "progress": job.progress or {},
            "eta_seconds": job_eta_seconds(job),
            "result": job.result,
            "errors": [
                {k: v for k, v in e.items() if k != "trace"} if isinstance(e, dict) else e for e in (job.errors or [])
            ],
            "cancel_requested": job.cancel_requested,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "worker": job.worker,
            "heartbeat_at": job.heartbeat_at,
        }


class JobList(Schema):
    jobs: list[JobOut]
    count: int
    page: int
    pages: int
