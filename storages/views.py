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
from django.views.decorators.http import require_GET, require_POST

from copies import migration, replication
from imalink.auth import staff_required
from imalink.errors import ImalinkError
from imalink.not_found import or_404
from imports import counting
from imports.models import FileTotals, ImportSession, Photo
from imports.totals import storage_statistics, with_images_count
from indexing import rewrite
from indexing.models import HealthReport
from indexing.writer import index_file_exists
from jobs.models import Job
from jobs.services import job_start

from . import services
from .forms import CopyForm, MigrateForm
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


def protection_bar(*, photos: int, below: int, only_here: int, wanted: int) -> dict:
    """Figures for a copies bar: of `photos`, how many are kept in at least `wanted` storages (protected), how many
    fewer, and how many only here. Counting is copies' (imports.counting); this only lays the figures out."""
    protected = max(photos - below, 0)
    percent = round(100 * protected / photos, 1) if photos else 100.0
    return {
        "photos": photos,
        "protected": protected,
        "below": below,
        "only_here": only_here,
        "wanted": wanted,
        "percent": percent,
        "low": below > 0,
        "below_url": None,
        "only_here_url": None,
    }


def storage_protection(storage: FileStorage, *, photos: int, only_here: int) -> dict:
    """The storage page's copies bar: its photos kept in min_copies() storages or more, against those only here."""
    wanted = services.min_copies()
    below = counting.under_protected_on(storage, wanted)
    bar = protection_bar(photos=photos, below=below, only_here=only_here, wanted=wanted)
    bar["below_url"] = f"/photos/?copies_lt={wanted}&storage_uuid={storage.storage_uuid}"
    bar["only_here_url"] = f"/photos/?only_on={storage.storage_uuid}"
    return bar


def overview_protection(storages) -> dict | None:
    """The overview's protection summary: all photos, those kept in min_copies() storages or more, and per storage
    those whose only copy it holds (each with a link to their list)."""
    total = Photo.objects.count()
    if not total:
        return None
    wanted = services.min_copies()
    below = counting.with_fewer_copies(Photo.objects.all(), wanted).count()
    only = []
    for storage in storages:
        count = counting.photos_only_here(storage)
        if count:
            only.append({"storage": storage, "count": count, "url": f"/photos/?only_on={storage.storage_uuid}"})
    bar = protection_bar(photos=total, below=below, only_here=sum(o["count"] for o in only), wanted=wanted)
    bar.update(only=only, below_url=f"/photos/?copies_lt={wanted}")
    return bar


def _last_validation(storage: FileStorage) -> dict | None:
    """The storage's latest finished validation, with the corrupt and missing files it found."""
    job = (
        Job.objects.filter(kind="validate", storage=storage, status=Job.Status.SUCCEEDED)
        .order_by("-finished_at", "-id")
        .first()
    )
    if job is None:
        return None
    result = job.result or {}
    corrupted, missing = len(result.get("corrupted_files") or []), len(result.get("missing_files") or [])
    return {"job": job, "corrupted": corrupted, "missing": missing, "problems": corrupted + missing}


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
            "protection": overview_protection(storages),
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


def _detail(request, storage: FileStorage, *, copy_form=None, migrate_form=None, status=200):
    sessions = with_images_count(ImportSession.objects.filter(file_storage=storage)).order_by("-imported_at", "-id")
    statistics = storage_statistics(storage)["statistics"]
    return render(
        request,
        "storages/storage_detail.html",
        {
            "storage": storage,
            "space": _free_space(storage),
            "index_present": _index_present(storage),
            "statistics": statistics,
            "sessions": Paginator(sessions, SESSIONS_PER_PAGE).get_page(request.GET.get("page")),
            "last_scan": _last_scan(storage),
            "protection": storage_protection(
                storage, photos=statistics["photos"], only_here=statistics["photos_only_here"]
            ),
            "copy_form": copy_form or CopyForm(storage),
            "migrate_form": migrate_form or MigrateForm(),
            "last_validation": _last_validation(storage),
        },
        status=status,
    )


@staff_required
def storage_detail(request, storage_uuid):
    return _detail(request, or_404(services.storage_get, storage_uuid))


def _form_errors(form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


def copy_start(request, source: FileStorage, form: CopyForm):
    """Start the replication that a valid "Copy to…" form asks for; (job, None), or (None, why it is refused)."""
    target, session_id = form.cleaned_data["target"], form.cleaned_data.get("session")
    session_ids = [session_id] if session_id else None
    try:
        replication.replication_check(source, target, session_ids)
    except ImalinkError as exc:
        return None, exc.message
    params = {"target_storage_uuid": str(target.storage_uuid), "session_ids": session_ids}
    session = ImportSession.objects.get(pk=session_id) if session_id else None
    job = job_start(kind=replication.JOB_KIND, storage=source, session=session, params=params, user=request.user)
    return job, None


@staff_required
@require_POST
def storage_copy(request, storage_uuid):
    """ "Copy to…" on the storage page (every session) and on a session page (that session, in `session`)."""
    storage = or_404(services.storage_get, storage_uuid)
    form = CopyForm(storage, request.POST)
    session_id = request.POST.get("session")
    back = f"/sessions/{session_id}/#copies" if session_id and session_id.isdigit() else None
    if not form.is_valid():
        problem = _form_errors(form)
    else:
        job, problem = copy_start(request, storage, form)
        if job is not None:
            target = form.cleaned_data["target"]
            messages.success(request, f"Started job #{job.pk}: copying to {target.display_name}.")
            return redirect(f"/jobs/{job.pk}/")
    messages.error(request, f"Nothing was copied. {problem}")
    return redirect(back or f"/storages/{storage.storage_uuid}/#copies")


@staff_required
@require_POST
def storage_migrate(request, storage_uuid):
    """Start the migration job (copies.migration) to the new base path; a refusal is shown on the form."""
    storage = or_404(services.storage_get, storage_uuid)
    form = MigrateForm(request.POST)
    if form.is_valid():
        new_base_path = form.cleaned_data["new_base_path"]
        try:
            migration.migration_check(storage, new_base_path)
        except ImalinkError as exc:
            form.add_error("new_base_path", exc.message)
        else:
            job = job_start(
                kind=migration.JOB_KIND, storage=storage, params={"new_base_path": new_base_path}, user=request.user
            )
            messages.success(request, f"Started job #{job.pk}: moving {storage.display_name} to {new_base_path}.")
            return redirect(f"/jobs/{job.pk}/")
    return _detail(request, storage, migrate_form=form, status=400)


RETIRE_LISTED = 100


@staff_required
@require_GET
def storage_retire_check(request, storage_uuid):
    """Whether the storage can be retired (imports.counting.retire_check, from the database alone)."""
    storage = or_404(services.storage_get, storage_uuid)
    answer = counting.retire_check(storage, limit=RETIRE_LISTED)
    return render(request, "storages/retire_check.html", {"storage": storage, "answer": answer})


# action -> (job kind, job params, the drive must be writable); None for the actions that are not jobs.
JOB_ACTIONS = {
    "scan": ("scan", {"dry_run": False, "adopt_new": False}, False),
    "scan-dry-run": ("scan", {"dry_run": True, "adopt_new": False}, False),
    "scan-adopt": ("scan", {"dry_run": False, "adopt_new": True}, False),
    "regenerate-indexes": ("index_storage", {}, True),
    "validate-quick": ("validate", {"mode": "quick"}, False),
    "validate-full": ("validate", {"mode": "full"}, False),
    "repair": ("repair", {}, True),  # copies.repair: from good copies on other available storages
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
