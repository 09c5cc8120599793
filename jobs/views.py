"""The job pages: the list, one job with its progress, and cancel (server-rendered, staff only).

The pages never write: a job whose owner is gone is shown failed (jobs.services.job_as_seen).
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from imalink.auth import staff_required
from imalink.errors import ImalinkError

from . import services as jobs
from .models import Job


@staff_required
def job_list(request):
    page = Paginator(Job.objects.select_related("storage", "session"), 50).get_page(request.GET.get("page"))
    page.object_list = [jobs.job_as_seen(job) for job in page.object_list]
    return render(request, "jobs/job_list.html", {"page": page})


@staff_required
def job_detail(request, job_id):
    job = jobs.job_as_seen(get_object_or_404(Job.objects.select_related("storage", "session"), pk=job_id))
    result = job.result or {}
    failures = result.get("failures") or (job.progress or {}).get("recent_failures") or []
    return render(
        request,
        "jobs/job_detail.html",
        {"job": job, "eta": jobs.job_eta_seconds(job), "result": result, "failures": failures},
    )


@staff_required
@require_POST
def job_cancel(request, job_id):
    job = get_object_or_404(Job, pk=job_id)
    try:
        jobs.job_cancel(job)
        messages.success(request, f"Job {job.pk} will stop at its next file.")
    except ImalinkError as exc:
        messages.error(request, exc.message)
    return redirect("job-detail", job_id=job.pk)
