"""Routes under /api/v1/file-storage/ for copies across storages (issue 17): thin doors into copies' jobs."""

from uuid import UUID

from ninja import Query, Router

from imalink.schemas import JobAccepted, responses
from jobs.answers import job_answer
from storages.services import storage_get

from . import migration, replication
from .schemas import MigrateIn, MigrationOut, ReplicateIn, ReplicationOut

router = Router(tags=["copies"])


@router.post(
    "/{uuid}/replicate",
    response=responses(ReplicationOut, _202=JobAccepted),
    summary="Copy this storage's sessions (all, or session_ids) into another storage, verified (409 if either is "
    "unavailable)",
)
def replicate(request, uuid: UUID, payload: ReplicateIn, wait: float | None = Query(None, ge=0)):
    source = storage_get(uuid)
    target = storage_get(payload.target_storage_uuid)
    replication.replication_check(source, target, payload.session_ids)  # refused here, before a job exists
    params = {"target_storage_uuid": str(target.storage_uuid), "session_ids": payload.session_ids}
    return job_answer(request, kind=replication.JOB_KIND, storage=source, params=params, wait=wait)


@router.post(
    "/{uuid}/migrate",
    response=responses(MigrationOut, _202=JobAccepted),
    summary="Move the storage to another drive: copy it whole to new_base_path, verified, check it against the "
    "database, then switch base_path (the old copy is left untouched)",
)
def migrate(request, uuid: UUID, payload: MigrateIn, wait: float | None = Query(None, ge=0)):
    storage = storage_get(uuid)
    migration.migration_check(storage, payload.new_base_path)  # refused here, before a job exists
    params = {"new_base_path": payload.new_base_path}
    return job_answer(request, kind=migration.JOB_KIND, storage=storage, params=params, wait=wait)
