"""Pages of the storages app: thin views over the same services as the API.

What is here beyond calling services is presentation only: figures for bars and the usage chart, and rows
for the last scan's tables. The overview never touches a drive except for a cheap look for index.json.
"""

import posixpath
from urllib.parse import quote

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import BigIntegerField, Count, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.forms.utils import ErrorList
from django.http import Http404
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.views.decorators.http import require_POST

from imalink.auth import staff_required
from imalink.errors import ImalinkError
from imalink.not_found import or_404
from imports.models import FileTotals, ImportSession
from imports.totals import storage_statistics, with_images_count
from indexing import rewrite
from indexing.models import HealthReport
from indexing.writer import index_file_exists
from jobs.models import Job
from jobs.services import job_start

from . import services
from .models import FileStorage
from .paths import allowed_roots

SESSIONS_PER_PAGE = 50
JOBS_SHOWN = 10
SCAN_ROWS_SHOWN = 200  # a scan of a big reorganisation can list thousands; the job page has them all


# --- presentation helpers ------------------------------------------------------------------------


def _free_space(storage: FileStorage) -> dict | None:
    """Figures for the free-space bar, from the last accessibility check (never from the disk)."""
    if storage.free_bytes is None or not storage.total_bytes:
        return None
    free_percent = round(100 * storage.free_bytes / storage.total_bytes, 1)
    return {
        "free": storage.free_bytes,
        "total": storage.total_bytes,
        "used": storage.total_bytes - storage.free_bytes,
        "free_percent": free_percent,
        "used_percent": round(100 - free_percent, 1),
        "low": services.low_on_space(storage.free_bytes),
    }


def _index_present(storage: FileStorage) -> bool | None:
    """Whether index.json is there; None when the drive is known to be unavailable (so it is not touched)."""
    if not storage.is_accessible:
        return None
    return index_file_exists(storage)


def _job_percent(job: Job) -> int:
    """The same figure static/js/jobs.js draws, so the bar does not jump when the script takes over."""
    progress = job.progress or {}
    total, done = progress.get("total") or 0, progress.get("done") or 0
    if total:
        return max(0, min(100, round(100 * done / total)))
    return 100 if job.status == Job.Status.SUCCEEDED else 0


def _with_percent(jobs):
    jobs = list(jobs)
    for job in jobs:
        job.percent = _job_percent(job)
    return jobs


CHART_WIDTH = 320
CHART_ROW = 38
CHART_BAR = 14


def _usage_chart(storages) -> dict:
    """One horizontal bar per storage, used beside free, laid out here and drawn as SVG by the template."""
    rows, labels = [], []
    for index, storage in enumerate(storages):
        space = _free_space(storage)
        y = index * CHART_ROW
        row = {"name": storage.display_name, "label_y": y + 12, "bar_y": y + 18, "height": CHART_BAR, "space": space}
        if space:
            used_width = round(CHART_WIDTH * space["used"] / space["total"], 2)
            row.update(used_width=used_width, free_x=used_width, free_width=round(CHART_WIDTH - used_width, 2))
            used, free = filesizeformat(space["used"]), filesizeformat(space["free"])
            row["used_title"] = f"{storage.display_name}: {used} used ({space['used_percent']}%)"
            row["free_title"] = f"{storage.display_name}: {free} free ({space['free_percent']}%)"
            labels.append(f"{storage.display_name}: {used} used, {free} free")
        else:
            row["unknown_title"] = f"{storage.display_name}: size unknown (not checked, or unavailable)"
            labels.append(f"{storage.display_name}: size unknown")
        rows.append(row)
    return {
        "rows": rows,
        "width": CHART_WIDTH,
        "height": max(len(rows), 1) * CHART_ROW,
        "aria_label": "Storage usage. " + "; ".join(labels) + "." if labels else "Storage usage: no storages.",
    }


def _per_storage(queryset, aggregate):
    """A correlated subquery, so files and sessions are counted in the storages' own query without
    the row multiplication a join of both reverse relations would cause."""
    values = (
        queryset.filter(file_storage=OuterRef("pk"))
        .order_by()
        .values("file_storage")
        .annotate(v=aggregate)
        .values("v")[:1]
    )
    return Coalesce(Subquery(values), 0, output_field=BigIntegerField())


def _scan_rows(entries, *, with_preview: bool = True) -> dict:
    rows = []
    for entry in entries[:SCAN_ROWS_SHOWN]:
        row = dict(entry)
        path = entry.get("new_path") or entry.get("path") or entry.get("old_path") or ""
        row["name"] = posixpath.basename(path)
        hothash = entry.get("hothash") or ""
        row["preview_url"] = (
            f"/photos/{quote(hothash, safe='')}/hotpreview.jpg"
            if with_preview and hothash and not hothash.startswith("raw:")
            else None
        )
        rows.append(row)
    return {"rows": rows, "count": len(entries), "truncated": len(entries) > SCAN_ROWS_SHOWN}


def _last_scan(storage: FileStorage) -> dict | None:
    job = (
        Job.objects.filter(kind="scan", storage=storage, status=Job.Status.SUCCEEDED)
        .order_by("-created_at", "-id")
        .first()
    )
    if job is None:
        return None
    result = job.result or {}
    return {
        "job": job,
        "result": result,
        "dry_run": bool(result.get("dry_run") or (job.params or {}).get("dry_run")),
        "moved": _scan_rows(result.get("moved_files") or []),
        "missing": _scan_rows(result.get("missing_files") or []),
        "modified": _scan_rows(result.get("modified_files") or []),
        "new": _scan_rows(result.get("new_files") or [], with_preview=False),
    }


# --- pages ---------------------------------------------------------------------------------------


@staff_required
def overview(request):
    storages = list(
        FileStorage.objects.annotate(
            files_count=_per_storage(FileTotals.objects.all(), Sum("present_files")),
            files_size=_per_storage(FileTotals.objects.all(), Sum("present_bytes")),
            missing_count=_per_storage(FileTotals.objects.all(), Sum("missing_files")),
            sessions_count=_per_storage(ImportSession.objects.all(), Count("id")),
        ).order_by("-is_active", "display_name", "id")
    )
    latest_health = HealthReport.objects.only("id", "created_at", "issues").first()
    for storage in storages:
        storage.space = _free_space(storage)
        storage.index_present = _index_present(storage)
        storage.health_issues = [
            i
            for i in (latest_health.issues if latest_health else [])
            if i.get("storage_uuid") == str(storage.storage_uuid)
        ]
    running = _with_percent(
        Job.objects.select_related("storage").filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING])[:JOBS_SHOWN]
    )
    recent = _with_percent(Job.objects.select_related("storage").filter(status__in=Job.FINISHED)[:JOBS_SHOWN])
    return render(
        request,
        "storages/overview.html",
        {
            "storages": storages,
            "running_jobs": running,
            "recent_jobs": recent,
            "chart": _usage_chart(storages),
            "latest_health": latest_health,
        },
    )


class PageErrorList(ErrorList):
    """Django's error list with the stylesheet's `error` class, so messages show in the error colour."""

    def __init__(self, initlist=None, error_class=None, **kwargs):
        super().__init__(initlist, error_class=f"error {error_class}" if error_class else "error", **kwargs)


class StorageForm(forms.Form):
    base_path = forms.CharField(
        label="Base path",
        max_length=4096,
        help_text="An existing folder on the drive, as an absolute path. ImaLink creates its storage folder inside it.",
    )
    display_name = forms.CharField(label="Display name", max_length=200)
    description = forms.CharField(label="Description", required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("error_class", PageErrorList)
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


@staff_required
def storage_new(request):
    form = StorageForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            storage = rewrite.storage_create(**form.cleaned_data)
        except ImalinkError as exc:
            field = exc.details.get("field")
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Created storage {storage.display_name!r} at {storage.full_path}.")
            return redirect("storage-detail", storage_uuid=storage.storage_uuid)
    return render(request, "storages/storage_new.html", {"form": form, "allowed_roots": allowed_roots()})


@staff_required
def storage_detail(request, storage_uuid):
    storage = or_404(services.storage_get, storage_uuid)
    sessions = with_images_count(ImportSession.objects.filter(file_storage=storage)).order_by("-imported_at", "-id")
    return render(
        request,
        "storages/storage_detail.html",
        {
            "storage": storage,
            "space": _free_space(storage),
            "index_present": _index_present(storage),
            "statistics": storage_statistics(storage)["statistics"],
            "sessions": Paginator(sessions, SESSIONS_PER_PAGE).get_page(request.GET.get("page")),
            "last_scan": _last_scan(storage),
        },
    )


# action -> (job kind, job params, the drive must be writable); None for the actions that are not jobs.
JOB_ACTIONS = {
    "scan": ("scan", {"dry_run": False, "adopt_new": False}, False),
    "scan-dry-run": ("scan", {"dry_run": True, "adopt_new": False}, False),
    "scan-adopt": ("scan", {"dry_run": False, "adopt_new": True}, False),
    "regenerate-indexes": ("index_storage", {}, True),
    "validate-quick": ("validate", {"mode": "quick"}, False),
    "validate-full": ("validate", {"mode": "full"}, False),
}


@staff_required
@require_POST
def storage_action(request, storage_uuid, action):
    storage = or_404(services.storage_get, storage_uuid)
    back = redirect("storage-detail", storage_uuid=storage.storage_uuid)
    if action in JOB_ACTIONS:
        kind, params, writable = JOB_ACTIONS[action]
        try:
            services.storage_require_available(storage, writable=writable)
            job = job_start(kind=kind, storage=storage, params=params, user=request.user)
        except ImalinkError as exc:
            # Record what the drive looks like now, so the page's badge agrees with the refusal.
            services.storage_check_accessibility(storage)
            messages.error(request, exc.message)
            return back
        messages.success(request, f"Started job #{job.pk} ({kind}) on {storage.display_name}.")
        return redirect(f"/jobs/{job.pk}/")
    if action == "check-accessibility":
        report = services.storage_check_accessibility(storage)
        if report.is_accessible and report.is_writable:
            messages.success(
                request,
                f"{storage.display_name} is accessible and writable ({filesizeformat(report.free_bytes)} free).",
            )
        elif report.is_accessible:
            messages.warning(request, f"{storage.display_name} is accessible but not writable: {report.reason}")
        else:
            messages.error(request, f"{storage.display_name} is unavailable: {report.reason}")
        return back
    if action in ("deactivate", "reactivate"):
        services.storage_set_active(storage, active=action == "reactivate")
        messages.success(request, f"{storage.display_name} is now {'active' if storage.is_active else 'inactive'}.")
        return back
    raise Http404(f"No storage action {action!r}.")
