"""Pages of the imports app: thin views over the same services as the API."""

import logging
import os
import re

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import F, Prefetch
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import get_conditional_response
from django.utils.http import content_disposition_header, http_date, parse_http_date_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from imalink.auth import staff_required
from imalink.errors import ImalinkError, NotFound, StorageUnavailable
from imalink.not_found import or_404
from indexing import rewrite
from indexing.writer import session_index_state
from jobs import services as jobs
from jobs.models import Job
from jobs.services import job_start
from storages import drive
from storages.forms import CopyForm
from storages.layout import session_index_file
from storages.models import FileStorage
from storages.services import min_copies, storage_require_available
from storages.services import storage_get as storages_get
from storages.views import protection_bar

from . import counting, services
from .forms import ImportForm, PhotoForm
from .models import ImageFile, ImportSession, Photo, SourceEntry
from .motion import embedded_video
from .pipeline import import_validate
from .verify import verify_validate

logger = logging.getLogger("imalink.imports")

THUMBS_PER_PAGE = 60
SOURCE_FILES_PER_PAGE = 100
IMAGE_CACHE = "private, max-age=86400"
# An original on a drive can change (a scan then says modified): the browser keeps it, but asks again each time.
ORIGINAL_CACHE = "private, no-cache"
ORIGINAL_CHUNK = 256 * 1024
# The Content-Type of an original by the format its content was sniffed as (imports.media, imports.video);
# any other (a RAW) is sent as bytes to download, and X-Content-Type-Options: nosniff keeps browsers to it.
ORIGINAL_TYPES = {
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "mov": "video/quicktime",
    "3gp": "video/3gpp",
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "avi": "video/x-msvideo",
    "mts": "video/mp2t",
    "mpg": "video/mpeg",
    "flv": "video/x-flv",
    "wmv": "video/x-ms-wmv",
    "jpeg": "image/jpeg",
    "mpo": "image/jpeg",
    "png": "image/png",
    "tiff": "image/tiff",
    "webp": "image/webp",
    "heic": "image/heic",
}


def duration_label(seconds: float | None) -> str | None:
    """A video's length to the nearest second, as m:ss, or h:mm:ss from an hour on; None when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:  # NaN and negatives are not lengths
        return None
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _query_without(request, *names: str) -> str:
    """The page's query string less these parameters, so a pager or filter link keeps the others."""
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


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


FATE_BADGES = {
    SourceEntry.Fate.ARCHIVED: "ok",
    SourceEntry.Fate.COMPANION: "ok",
    SourceEntry.Fate.DUPLICATE: "ok",
    SourceEntry.Fate.FAILED: "bad",
    SourceEntry.Fate.SKIPPED: "warn",
}


def _source_files(request, session: ImportSession) -> dict:
    """The session's source files with their fates, one page of them, filtered by ?fate= (links keep the rest)."""
    fate = request.GET.get("fate")
    if fate not in SourceEntry.Fate.values:
        fate = None
    counts = services.session_fate_counts(session)
    entries = Paginator(services.session_source_entries(session, fate=fate), SOURCE_FILES_PER_PAGE).get_page(
        request.GET.get("files_page")
    )
    entries.object_list = list(entries.object_list)
    items = services.stored_items(session.file_storage, {e.stored_path for e in entries.object_list if e.stored_path})
    for entry in entries.object_list:
        entry.badge = FATE_BADGES.get(entry.fate, "warn")
        entry.item_hothash = items.get(entry.stored_path)
    rest = _query_without(request, "fate", "files_page")
    filters = [{"label": "all", "count": sum(counts.values()), "query": rest, "current": fate is None}]
    for value, count in counts.items():
        if count or value == fate:
            query = f"{rest}&fate={value}" if rest else f"fate={value}"
            filters.append({"label": value, "count": count, "query": query, "current": value == fate})
    return {
        "entries": entries,
        "fate": fate,
        "total": sum(counts.values()),
        "filters": filters,
        "query": _query_without(request, "files_page"),
    }


def _verification(session: ImportSession) -> dict:
    """The session's "safe to format" verdict: its latest finished verify_source job, and one still under way.

    A job whose worker is gone is shown as the jobs pages show it (failed, jobs.services.job_as_seen), so it
    no longer counts as under way; the page writes nothing.
    """
    verifications = Job.objects.filter(kind="verify_source", session=session)
    active = verifications.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).order_by("-created_at", "-id")
    active = active.first()
    if active is not None:
        active = jobs.job_as_seen(active)
        if active.is_finished:
            active = None
        else:
            progress = active.progress or {}
            total, done = progress.get("total") or 0, progress.get("done") or 0
            active.percent = max(0, min(100, round(100 * done / total))) if total else 0
    last = verifications.filter(status__in=Job.FINISHED).order_by("-finished_at", "-id").first()
    error = None
    if last is not None and last.status == Job.Status.FAILED:
        error = (last.errors or [{}])[-1].get("error") or "The job failed."
    result = (last.result or {}) if last is not None and last.status == Job.Status.SUCCEEDED else None
    return {"active": active, "last": last, "result": result, "error": error}


def _session_protection(session: ImportSession) -> dict:
    """The session's copies bar: its photos kept in min_copies() storages or more, against those only on its
    storage (imports.counting counts; this picks the session's photos)."""
    wanted = min_copies()
    photos = Photo.objects.filter(files__import_session=session).values("id")
    bar = protection_bar(
        photos=Photo.objects.filter(pk__in=photos).count(),
        below=counting.with_fewer_copies(Photo.objects.filter(pk__in=photos), wanted).count(),
        only_here=counting.only_here(session.file_storage).filter(pk__in=photos).count(),
        wanted=wanted,
    )
    bar["below_url"] = f"/photos/?copies_lt={wanted}&session_id={session.pk}"
    bar["only_here_url"] = f"/photos/?only_on={session.file_storage.storage_uuid}&session_id={session.pk}"
    return bar


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
    page.object_list = list(page.object_list)
    for photo in page.object_list:
        photo.is_video = photo.media_type == Photo.MediaType.VIDEO
        photo.duration_label = duration_label(photo.duration_s) if photo.is_video else None
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
            "thumbs_query": _query_without(request, "page"),
            "statuses": statuses,
            "source": _source_files(request, session),
            "verification": _verification(session),
            "protection": _session_protection(session),
            "copy_form": CopyForm(storage),
        },
    )


@staff_required
@require_POST
def session_verify_source(request, session_id: int):
    """Start the "safe to format?" job (imports.verify) and come back to the session page, which follows the job
    and shows its verdict once it is done (the job page has no view of this kind's result)."""
    session = or_404(services.session_get, session_id)
    back = reverse("session-detail", args=[session.pk]) + "#verify"
    try:
        verify_validate(session)
    except ImalinkError as exc:
        messages.error(request, f"The source cannot be verified now. {exc.message}")
        return redirect(back)
    with transaction.atomic():
        job = _start_job(request, kind="verify_source", storage=session.file_storage, session=session)
    messages.success(request, f"Verifying the source folder against the storage (job #{job.pk}).")
    return redirect(back)


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
    problems = {}  # one look at each storage, however many of its files the item has
    for image_file in files:
        if image_file.file_storage_id not in problems:
            problems[image_file.file_storage_id] = _storage_problem(image_file.file_storage)
        image_file.storage_problem = problems[image_file.file_storage_id]
    try:
        original = services.photo_original_file(photo.hothash)
    except NotFound:
        original, original_problem = None, None
    else:
        storage_id = original.file_storage_id
        original_problem = problems[storage_id] if storage_id in problems else _storage_problem(original.file_storage)
    is_video = photo.media_type == Photo.MediaType.VIDEO
    return render(
        request,
        "imports/photo_detail.html",
        {
            "photo": photo,
            "files": files,
            "form": form,
            "is_video": is_video,
            "duration_label": duration_label(photo.duration_s) if is_video else None,
            "original": original,
            "original_problem": original_problem,
            "original_available": original is not None and original_problem is None,
            "copies": counting.photo_copies(photo),
        },
    )


class PhotoFilterError(ValueError):
    """A photos-list filter that cannot be read; its message is shown on the page."""


def _photo_filters(request) -> tuple[dict, list[str]]:
    """The photos list's filters from the query string, named as the API's list names them (so a link of the API,
    such as the health check's, is a link of this page without /api/v1): copies_lt (a number of storages),
    storage_uuid, session_id, and only_on (a storage's uuid: the photos whose only copy it holds), each checked,
    with a phrase per filter for the page's heading."""
    found, said = {}, []
    raw = request.GET.get("copies_lt")
    if raw:
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise PhotoFilterError(f"copies_lt must be a whole number of storages from 1 to 1000, not {raw!r}.")
        found["copies_lt"] = int(raw)
        said.append(f"kept in fewer than {raw} storage{'s' if raw != '1' else ''}")
    for name in ("storage_uuid", "only_on"):
        raw = request.GET.get(name)
        if raw:
            try:
                found[name] = storages_get(raw)
            except NotFound:
                raise PhotoFilterError(f"There is no storage {raw!r} ({name}).") from None
            said.append(("with a file on " if name == "storage_uuid" else "only on ") + found[name].display_name)
    raw = request.GET.get("session_id")
    if raw:
        if not raw.isdigit() or not ImportSession.objects.filter(pk=int(raw)).exists():
            raise PhotoFilterError(f"There is no import session {raw!r}.")
        found["session_id"] = int(raw)
        said.append(f"in session #{raw}")
    return found, said


@staff_required
@require_GET
def photo_list(request):
    """Photos, newest first (fewest copies first when filtered by copies_lt), filtered as the overview's and storage
    pages' copies links ask (the API's list)."""
    try:
        filters, said = _photo_filters(request)
    except PhotoFilterError as exc:
        return render(request, "imports/photo_list.html", {"error": str(exc)}, status=400)
    storage = filters.get("storage_uuid")
    photos = services.photos_list(
        storage_uuid=storage.storage_uuid if storage else None, session_id=filters.get("session_id")
    )
    if "copies_lt" in filters:
        photos = counting.fewest_copies_first(counting.with_fewer_copies(photos, filters["copies_lt"]))
    if "only_on" in filters:
        photos = photos.filter(pk__in=counting.only_here(filters["only_on"]).values("id"))
    page = Paginator(counting.with_copies_count(photos), THUMBS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "imports/photo_list.html",
        {"page": page, "said": said, "thumbs_query": _query_without(request, "page")},
    )


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


# --- the original file, with byte ranges ----------------------------------------------------------------

MAX_RANGE_HEADER = 200  # one range of two 20-digit numbers fits many times over
_BYTE_RANGE = re.compile(r"([0-9]*)-([0-9]*)")


class RangeNotSatisfiable(Exception):
    """A well-formed Range that asks only for bytes past the end of the file: answered 416."""


def parse_byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range (first, last), inclusive and within the file, that a Range header asks of a file of
    `size` bytes; None to answer with the whole file; RangeNotSatisfiable for 416 (RFC 9110 §14).

    None stands for: no header, a unit other than bytes, a malformed header (an invalid range-spec such as
    `5-3` makes the whole header invalid, and such a header is ignored), and several ranges, which a server may
    answer whole (a <video> element never asks for more than one). `bytes=a-b` is cut at the end of the file,
    `bytes=-n` is the last n bytes (the whole file if n is larger), and a range that starts at or after the end,
    or `bytes=-0`, or any range of an empty file, is unsatisfiable. Only ASCII digits count as digits.
    """
    if not header or len(header) > MAX_RANGE_HEADER:
        return None
    unit, equals, ranges = header.partition("=")
    if not equals or unit.strip().lower() != "bytes" or "," in ranges:
        return None
    match = _BYTE_RANGE.fullmatch(ranges.strip(" \t"))
    if match is None or match.group(0) == "-":
        return None
    first, last = match.groups()
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    return start, min(int(last), size - 1) if last else size - 1


def _if_range_holds(request, etag: str, last_modified: int) -> bool:
    """Whether a Range may be honoured: no If-Range, or one naming this very version of the file (its strong
    ETag, or exactly its Last-Modified date); otherwise the client's earlier bytes are stale and it gets all."""
    value = request.headers.get("If-Range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == etag
    return parse_http_date_safe(value) == last_modified


class FileChunks:
    """Bytes `first` to `first + length` of an open file, read ORIGINAL_CHUNK at a time with pread, so a video of
    any size is streamed in bounded memory. Django closes it with the response, read to the end or not, and that
    closes the descriptor. A file that shrinks under it ends the body early (the client sees it cut short)."""

    def __init__(self, fd: int, first: int, length: int, *, shown: str):
        self.fd, self.first, self.length, self.shown = fd, first, length, shown

    def __iter__(self):
        offset, left = self.first, self.length
        while left > 0:
            chunk = os.pread(self.fd, min(ORIGINAL_CHUNK, left), offset)
            if not chunk:
                logger.warning("%s ended %d bytes early while it was being sent", self.shown, left)
                return
            offset += len(chunk)
            left -= len(chunk)
            yield chunk

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _original_error(request, image_file: ImageFile, hothash: str, message: str, *, status: int) -> HttpResponse:
    return render(
        request,
        "imports/original_unavailable.html",
        {"image_file": image_file, "hothash": hothash, "message": message, "status": status},
        status=status,
    )


def _open_original(image_file: ImageFile):
    """(descriptor, fstat) of the original through the storage's descriptor (storages.drive), or the error page's
    (status, message): nothing in the storage is followed, and a pipe in the file's place is never waited on."""
    storage = image_file.file_storage
    shown = f"{image_file.relative_path} on {storage.display_name}"
    try:
        storage_require_available(storage)
        opened = drive.Storage(storage.full_path)
    except StorageUnavailable as exc:
        return None, (409, f"{exc.message} Connect the drive to open {image_file.original_filename}.")
    except OSError as exc:  # the drive went between the check and the open
        return None, (409, f"Storage {storage.display_name!r} is unavailable: {exc.strerror}.")
    with opened:
        try:
            return opened.open_read(image_file.relative_path), None
        except drive.UnsafeLayout as exc:
            return None, (409, exc.message)
        except (FileNotFoundError, NotADirectoryError):
            return None, (404, f"{shown} is not on the drive: it was moved or deleted. A scan of the storage finds it.")
        except ValueError:
            return None, (409, f"{image_file.relative_path!r} is not a path inside the storage.")
        except OSError as exc:
            return None, (503, f"{shown} cannot be read now: {exc.strerror}.")


@staff_required
@require_GET
def photo_original(request, hothash: str):
    """GET /photos/<hothash>/original: the item's original file (services.photo_original_file: its primary
    original), streamed from its storage for the photo page's <video> and for download. Staff only, like every page.

    It answers byte ranges, as a <video> element asks to seek: `Accept-Ranges: bytes`, one `bytes=` range as 206
    with its Content-Range, 416 for a range past the end, and 200 with the whole file for none, for several, or
    for an If-Range naming another version (parse_byte_range). ETag and Last-Modified come from the file as it is
    on the drive, so conditional requests are Django's (304, 412). Range support is written here because Django
    has none for files and the packages that add it (django-ranged-response, django-ranged-fileresponse) have not
    been released since 2017.

    The answer is an error page saying why, never a 500: 404 for an unknown item or a file gone from the drive,
    409 for an unplugged drive or a link, pipe or folder where the file belongs, 503 for a read error.
    """
    image_file = or_404(services.photo_original_file, hothash)
    opened, error = _open_original(image_file)
    if error:
        return _original_error(request, image_file, hothash, error[1], status=error[0])
    fd, st = opened
    content_type = ORIGINAL_TYPES.get(image_file.file_format, "application/octet-stream")
    return _ranged(request, fd, st, 0, st.st_size, content_type, image_file.original_filename, image_file.relative_path)


@staff_required
@require_GET
def photo_motion(request, hothash: str):
    """GET /photos/<hothash>/motion: a motion photo's embedded video (imports/motion.py), streamed from the
    original's bytes where it lies, with byte ranges as photo_original answers them. 404 when it has none."""
    image_file = or_404(services.photo_original_file, hothash)
    opened, error = _open_original(image_file)
    if error:
        return _original_error(request, image_file, hothash, error[1], status=error[0])
    fd, st = opened
    try:
        found = embedded_video(lambda offset, n: os.pread(fd, n, offset), st.st_size)
    except OSError as exc:
        os.close(fd)
        return _original_error(request, image_file, hothash, f"cannot be read now: {exc.strerror}.", status=503)
    if found is None:
        os.close(fd)
        message = f"{image_file.original_filename} holds no embedded video."
        return _original_error(request, image_file, hothash, message, status=404)
    name = f"{image_file.original_filename.rsplit('.', 1)[0]}.motion.mp4"
    return _ranged(request, fd, st, found.offset, found.length, found.mime, name, image_file.relative_path)


def _ranged(request, fd: int, st, start: int, size: int, content_type: str, filename: str, shown: str):
    """The bytes start..start+size of an open file as one resource, with ranges, ETag and Last-Modified (see
    photo_original). Takes the descriptor over: it is closed with the response, or here if none streams it."""
    body = None
    try:
        etag = f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}' + (f"-{start:x}" if start else "") + '"'
        last_modified = int(st.st_mtime)
        response = get_conditional_response(request, etag=etag, last_modified=last_modified)
        if response is None:
            # An If-Range naming another version voids the Range before it is read (RFC 9110 §13.1.5).
            asked = request.headers.get("Range") if _if_range_holds(request, etag, last_modified) else None
            try:
                wanted = parse_byte_range(asked, size)
            except RangeNotSatisfiable:
                response = HttpResponse(
                    f"Range not satisfiable: the file is {size} bytes.", status=416, content_type="text/plain"
                )
                response["Content-Range"] = f"bytes */{size}"
            else:
                first, last = wanted if wanted is not None else (0, size - 1)
                body = FileChunks(fd, start + first, last - first + 1, shown=shown)
                response = StreamingHttpResponse(body, status=206 if wanted else 200, content_type=content_type)
                response["Content-Length"] = str(last - first + 1)
                if wanted:
                    response["Content-Range"] = f"bytes {first}-{last}/{size}"
                response["Content-Disposition"] = content_disposition_header(
                    content_type == "application/octet-stream", filename
                )
        response["Accept-Ranges"] = "bytes"
        response["ETag"] = etag
        response["Last-Modified"] = http_date(last_modified)
        response["Cache-Control"] = ORIGINAL_CACHE
        return response
    finally:
        if body is None:
            os.close(fd)
