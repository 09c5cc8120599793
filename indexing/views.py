"""Pages of the indexing app: thin views over the same services as the API (jobs, recovery, health)."""

from pathlib import Path

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from imalink.auth import staff_required
from imalink.errors import ImalinkError
from storages.paths import resolve_client_dir

from . import jobs
from .forms import RecoveryForm
from .models import HealthReport, Job
from .reader import read_index
from .recovery import find_storage_folders


@staff_required
def job_list(request):
    jobs.jobs_sweep_stale(resend=False)
    page = Paginator(Job.objects.select_related("storage", "session"), 50).get_page(request.GET.get("page"))
    return render(request, "indexing/job_list.html", {"page": page})


@staff_required
def job_detail(request, job_id):
    job = jobs.job_checked(get_object_or_404(Job.objects.select_related("storage", "session"), pk=job_id))
    result = job.result or {}
    failures = result.get("failures") or (job.progress or {}).get("recent_failures") or []
    return render(request, "indexing/job_detail.html", {"job": job, "eta": jobs.job_eta_seconds(job), "result": result, "failures": failures})


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


def _describe(folder: Path) -> dict:
    """What a found storage's master index holds, read from disk (never trusted beyond display)."""
    reading = read_index(folder / "index.json", max_bytes=64 * 1024 * 1024)
    info = {"path": str(folder), "problem": reading.problem, "display_name": None, "sessions": [], "total_files": None}
    if reading.data:
        storage_info = reading.data.get("storage_info") if isinstance(reading.data.get("storage_info"), dict) else {}
        info["display_name"] = str(storage_info.get("display_name") or "")[:200] or None
        info["total_files"] = storage_info.get("total_files") if isinstance(storage_info.get("total_files"), int) else None
        sessions = reading.data.get("import_sessions") if isinstance(reading.data.get("import_sessions"), list) else []
        info["sessions"] = [
            {"title": str(s.get("title", ""))[:200], "file_count": s.get("file_count") if isinstance(s.get("file_count"), int) else None}
            for s in sessions[:50] if isinstance(s, dict)
        ]
    return info


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
                found = [_describe(folder) for folder in find_storage_folders([Path(r) for r in roots])]
            elif action in ("dry_run", "recover"):
                job = jobs.job_start(kind="recover", params={"search_roots": roots, "dry_run": action == "dry_run"}, user=request.user)
                return redirect("job-detail", job_id=job.pk)
            elif action == "drill":
                job = jobs.job_start(kind="recovery_drill", params={"search_roots": roots}, user=request.user)
                return redirect("job-detail", job_id=job.pk)
    recent = Job.objects.filter(kind__in=("recover", "recovery_drill")).order_by("-created_at")[:10]
    return render(request, "indexing/recovery.html", {"form": form, "found": found, "recent": recent})


@staff_required
def health(request):
    if request.method == "POST":
        job = jobs.job_start(kind="health_check", user=request.user)
        return redirect("job-detail", job_id=job.pk)
    reports = HealthReport.objects.all()
    latest = reports.first()
    page = Paginator(reports, 30).get_page(request.GET.get("page"))
    return render(request, "indexing/health.html", {"latest": latest, "page": page})
