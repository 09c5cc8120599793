"""Pages of the imports app: thin views over the same services as the API."""

import logging

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import F, Prefetch
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from imalink.auth import staff_required
from imalink.errors import ImalinkError, StorageUnavailable
from imalink.not_found import or_404
from indexing import rewrite
from indexing.writer import session_index_state
from jobs import services as jobs
from jobs.services import job_start
from storages.layout import session_index_file
from storages.models import FileStorage
from storages.services import storage_require_available

from . import services
from .forms import ImportForm, PhotoForm
from .models import ImageFile, ImportSession, Photo
from .pipeline import import_validate

logger = logging.getLogger("imalink.imports")

THUMBS_PER_PAGE = 60
IMAGE_CACHE = "private, max-age=86400"


def _storage_problem(storage, *, writable: bool = False) -> str | None:
    try:
        storage_require_available(storage, writable=writable)
    except StorageUnavailable as exc:
        return exc.message
    return None


def _start_job(request, **kwargs):
    """Create the job with the rows it belongs to, then hand it to a worker once they are committed."""
    job = job_start(**kwargs, user=request.user, enqueue=False)

    def enqueue():
        if not jobs.job_enqueue_quietly(job.pk):
            messages.warning(
                request, "The job is queued, but no worker could be reached; it starts once the task broker is back."
            )

    transaction.on_commit(enqueue)
    return job


@staff_required
@require_http_methods(["GET", "POST"])
def import_new(request):
    if not FileStorage.objects.filter(is_active=True).exists():
        return render(request, "imports/import_new.html", {"no_storage": True})
    form = ImportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        # Everything is checked against an unsaved session first, so a bad path creates no session and no job.
        draft = ImportSession(title=data["title"], file_storage=data["storage"])
        try:
            import_validate(draft, data["source_path"], data["target_subdirectory"])
            with transaction.atomic():
                session = services.session_create(
                    title=data["title"],
                    description=data["description"],
                    default_author_id=data["author"].pk if data["author"] else None,
                    file_storage_id=data["storage"].pk,
                )
                job = _start_job(
                    request,
                    kind="import",
                    storage=session.file_storage,
                    session=session,
                    params={
                        "source_path": data["source_path"],
                        "target_subdirectory": data["target_subdirectory"],
                        "recursive": data["recursive"],
                    },
                )
        except ImalinkError as exc:
            field = exc.details.get("field") if isinstance(exc.details, dict) else None
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            return redirect(f"/jobs/{job.pk}/")
    return render(request, "imports/import_new.html", {"form": form})


@staff_required
@require_GET
def session_detail(request, session_id: int):
    session = or_404(services.session_get, session_id)
    storage = session.file_storage
    problem = _storage_problem(storage)
    index_file = session_index_file(session.pk)
    index = None
    if problem is None:
        index = session_index_state(session)

    session_files = Prefetch(
        "files",
        queryset=ImageFile.objects.filter(import_session=session).order_by("-is_primary", "id"),
        to_attr="session_files",
    )
    photos = (
        Photo.objects.filter(files__import_session=session)
        .distinct()
        .defer("hotpreview")
        .order_by(F("taken_at").asc(nulls_last=True), "id")
        .prefetch_related(session_files)
    )
    page = Paginator(photos, THUMBS_PER_PAGE).get_page(request.GET.get("page"))
    statuses = dict.fromkeys(ImageFile.Status.values, 0)
    for status in ImageFile.objects.filter(import_session=session).values_list("status", flat=True):
        statuses[status] += 1
    return render(
        request,
        "imports/session_detail.html",
        {
            "session": session,
            "storage": storage,
            "storage_problem": problem,
            "index": index,
            "index_file": index_file,
            "page": page,
            "statuses": statuses,
        },
    )


@staff_required
@require_POST
def session_regenerate_index(request, session_id: int):
    session = or_404(services.session_get, session_id)
    problem = _storage_problem(session.file_storage, writable=True)
    if problem:
        messages.error(request, f"The index cannot be regenerated now. {problem}")
        return redirect("session-detail", session_id=session.pk)
    with transaction.atomic():
        job = _start_job(request, kind="index_session", storage=session.file_storage, session=session)
    return redirect(f"/jobs/{job.pk}/")


@staff_required
@require_http_methods(["GET", "POST"])
def photo_detail(request, hothash: str):
    photo = or_404(services.photo_get, hothash)
    form = PhotoForm.for_photo(photo, request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            rewrite.photo_update(
                photo,
                title=data["title"],
                description=data["description"],
                rating=data["rating"],
                tags=data["tags"],
                author_id=data["author"].pk if data["author"] else None,
            )
        except ImalinkError as exc:
            field = exc.details.get("field")
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            messages.success(request, "The photo's details are saved.")
            return redirect("photo-detail", hothash=photo.hothash)
    files = list(services.photo_files(photo))
    for image_file in files:
        image_file.storage_problem = _storage_problem(image_file.file_storage)
    return render(request, "imports/photo_detail.html", {"photo": photo, "files": files, "form": form})


def _jpeg(data: bytes) -> HttpResponse:
    response = HttpResponse(data, content_type="image/jpeg")
    response["Cache-Control"] = IMAGE_CACHE
    return response


@staff_required
@require_GET
def photo_hotpreview(request, hothash: str):
    data = Photo.objects.filter(hothash=hothash).values_list("hotpreview", flat=True).first()
    if not data:
        raise Http404("This photo has no hotpreview.")
    return _jpeg(bytes(data))


@staff_required
@require_GET
def photo_preview(request, hothash: str):
    data = services.photo_preview_jpeg(or_404(services.photo_get, hothash))
    if not data:
        raise Http404("This photo has no preview.")
    return _jpeg(data)
