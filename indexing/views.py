"""Pages of the indexing app: thin views over the same services as the API (recovery and health)."""

from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse

from imalink.auth import staff_required
from imalink.errors import ImalinkError
from jobs import services as jobs
from jobs.models import Job
from storages.paths import resolve_client_dir

from .forms import RecoveryForm
from .models import HealthReport

FIND_WAIT_S = 3.0  # how long the page waits for a find job before showing its progress instead


@staff_required
def recovery(request):
    form = RecoveryForm(request.POST or None)
    found = None
    if request.method == "POST" and form.is_valid():
        try:
            roots = [str(resolve_client_dir(root, field="search_roots")) for root in form.cleaned_data["search_roots"]]
        except ImalinkError as exc:
            form.add_error("search_roots", exc.message)
        else:
            action = request.POST.get("action", "find")
            if action == "find":
                # The search and the reading of indexes run in a worker, never in this request (it waits a moment
                # for a quick answer only when the job was really sent); the page shows the job's result.
                job = jobs.job_start(kind="recovery_find", params={"search_roots": roots}, user=request.user)
                job.refresh_from_db()
                if job.enqueued_at is not None:
                    jobs.job_wait(job, FIND_WAIT_S)
                return redirect(f"{reverse('recovery')}?find={job.pk}")
            elif action in ("dry_run", "recover"):
                job = jobs.job_start(
                    kind="recover", params={"search_roots": roots, "dry_run": action == "dry_run"}, user=request.user
                )
                return redirect("job-detail", job_id=job.pk)
            elif action == "drill":
                job = jobs.job_start(kind="recovery_drill", params={"search_roots": roots}, user=request.user)
                return redirect("job-detail", job_id=job.pk)
    find_job = None
    if request.method == "GET" and request.GET.get("find", "").isdigit():
        find_job = Job.objects.filter(pk=int(request.GET["find"]), kind="recovery_find").first()
        if find_job is not None:
            find_job = jobs.job_as_seen(find_job)
            form = RecoveryForm(initial={"search_roots": "\n".join(find_job.params.get("search_roots", []))})
            if find_job.status == Job.Status.SUCCEEDED:
                found = (find_job.result or {}).get("storages", [])
    recent = Job.objects.filter(kind__in=("recover", "recovery_drill")).order_by("-created_at")[:10]
    return render(
        request, "indexing/recovery.html", {"form": form, "found": found, "recent": recent, "find_job": find_job}
    )


@staff_required
def health(request):
    if request.method == "POST":
        job = jobs.job_start(kind="health_check", user=request.user)
        return redirect("job-detail", job_id=job.pk)
    reports = HealthReport.objects.all()
    latest = reports.first()
    page = Paginator(reports, 30).get_page(request.GET.get("page"))
    return render(request, "indexing/health.html", {"latest": latest, "page": page})
