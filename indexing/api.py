"""Routes under /api/v1/jobs/ and /api/v1/storage-index/: jobs' progress and results, and the indexes."""

from django.core.paginator import Paginator
from django.db.models import Count
from ninja import Query, Router

from imalink.schemas import ok, responses
from imports.services import session_get
from storages.locks import storage_lock
from storages.services import storage_get, storage_require_available

from . import jobs
from .models import Job
from .schemas import IndexWritten, JobList, JobOut
from .writer import write_master_index, write_session_index

jobs_router = Router(tags=["jobs"])
index_router = Router(tags=["storage-index"])

INDEX_LOCK_WAIT = 10.0


@jobs_router.get("/", response=responses(JobList), summary="Recent jobs, newest first")
def list_jobs(request, status: str | None = None, page: int = Query(1, ge=1), page_size: int = Query(50, ge=1, le=500)):
    queryset = Job.objects.select_related("storage")
    if status:
        queryset = queryset.filter(status=status)
    paginator = Paginator(queryset, page_size)
    current = paginator.get_page(page)
    return ok({"jobs": [JobOut.from_job(j) for j in current.object_list], "count": paginator.count, "page": current.number, "pages": paginator.num_pages})


@jobs_router.get("/{job_id}", response=responses(JobOut), summary="A job's status, progress and result")
def get_job(request, job_id: int):
    return ok(JobOut.from_job(jobs.job_get(job_id)))


@jobs_router.post("/{job_id}/cancel", response=responses(JobOut), summary="Stop a job at its next safe point")
def cancel_job(request, job_id: int):
    return ok(JobOut.from_job(jobs.job_cancel(jobs.job_get(job_id))))


@index_router.post("/session/{session_id}", response=responses(IndexWritten), summary="Write one session's index file")
def generate_session_index(request, session_id: int):
    session = session_get(session_id)
    storage = session.file_storage
    storage_require_available(storage, writable=True)
    with storage_lock(storage, wait=INDEX_LOCK_WAIT):
        written = write_session_index(session)
    return ok({"storage_uuid": storage.storage_uuid, "session_ids": [session.id], "index_files": [f"imports/session_{session.id}.json"], "written": int(written)})


@index_router.post("/generate/{storage_uuid}", response=responses(IndexWritten), summary="Write every session index and the master index")
def generate_storage_indexes(request, storage_uuid: str):
    storage = storage_get(storage_uuid)
    storage_require_available(storage, writable=True)
    sessions = list(storage.import_sessions.select_related("file_storage", "default_author").annotate(n=Count("image_files")).order_by("id"))
    written = 0
    with storage_lock(storage, wait=INDEX_LOCK_WAIT):
        for session in sessions:
            written += write_session_index(session)
        written += write_master_index(storage)
    files = [f"imports/session_{s.id}.json" for s in sessions] + ["index.json"]
    return ok({"storage_uuid": storage.storage_uuid, "session_ids": [s.id for s in sessions], "index_files": files, "written": written})
