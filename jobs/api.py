"""The job routes (/api/v1/jobs/): list, one job, cancel. The reads never write (jobs.services.job_as_seen)."""

from django.core.paginator import Paginator
from ninja import Query, Router

from imalink.schemas import ok, responses

from . import services as jobs
from .models import Job
from .schemas import JobList, JobOut

router = Router(tags=["jobs"])


@router.get("/", response=responses(JobList), summary="Recent jobs, newest first")
def list_jobs(request, status: str | None = None, page: int = Query(1, ge=1), page_size: int = Query(50, ge=1, le=500)):
    queryset = Job.objects.select_related("storage")
    if status:
        queryset = queryset.filter(status=status)
    paginator = Paginator(queryset, page_size)
    current = paginator.get_page(page)
    return ok(
        {
            "jobs": [JobOut.from_job(jobs.job_as_seen(j)) for j in current.object_list],
            "count": paginator.count,
            "page": current.number,
            "pages": paginator.num_pages,
        }
    )


@router.get("/{job_id}", response=responses(JobOut), summary="A job's status, progress and result")
def get_job(request, job_id: int):
    return ok(JobOut.from_job(jobs.job_get(job_id)))


@router.post("/{job_id}/cancel", response=responses(JobOut), summary="Stop a job at its next safe point")
def cancel_job(request, job_id: int):
    return ok(JobOut.from_job(jobs.job_cancel(jobs.job_get(job_id))))
