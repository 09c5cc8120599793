"""Import sessions and authors: creating, changing and listing them, with the rules in one place."""

import logging
import os
import uuid as uuid_lib

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, ProtectedError
from django.utils import timezone

from imalink.errors import Conflict, ImalinkError, NotFound, StorageUnavailable
from storages import drive
from storages.models import FileStorage
from storages.services import storage_require_available

from . import media
from .models import Author, ImageFile, ImportSession, Photo, SourceEntry, StoragePhoto
from .totals import with_images_count
from .writeback import write_sidecars

logger = logging.getLogger("imalink.imports")


def _storage_for_session(file_storage_id, file_storage_uuid) -> FileStorage:
    if file_storage_id is None and file_storage_uuid is None:
        raise ImalinkError(
            "Name the storage: give file_storage_id or file_storage_uuid.",
            code="validation_error",
            status=422,
            details={"fields": ["file_storage_id", "file_storage_uuid"]},
        )
    storages = FileStorage.objects.all()
    if file_storage_id is not None:
        storages = storages.filter(pk=file_storage_id)
    if file_storage_uuid is not None:
        try:
            storages = storages.filter(storage_uuid=uuid_lib.UUID(str(file_storage_uuid)))
        except ValueError:
            raise NotFound(f"No storage with uuid {file_storage_uuid!r}.") from None
    storage = storages.first()
    if storage is None:
        raise NotFound(
            "No storage matches the file_storage_id / file_storage_uuid given.",
            details={
                "file_storage_id": file_storage_id,
                "file_storage_uuid": str(file_storage_uuid) if file_storage_uuid else None,
            },
        )
    if not storage.is_active:
        raise Conflict(
            f"Storage {storage.display_name!r} is deactivated: reactivate it before importing into it.",
            code="storage_inactive",
        )
    return storage


def author_get(author_id: int) -> Author:
    author = Author.objects.filter(pk=author_id).first()
    if author is None:
        raise NotFound(f"No author with id {author_id}.", details={"author_id": author_id})
    return author


def session_get(session_id: int) -> ImportSession:
    session = (
        with_images_count(ImportSession.objects.select_related("file_storage", "default_author"))
        .filter(pk=session_id)
        .first()
    )
    if session is None:
        raise NotFound(f"No import session with id {session_id}.", details={"session_id": session_id})
    return session


def session_create(
    *,
    title: str,
    description: str = "",
    default_author_id: int | None = None,
    file_storage_id: int | None = None,
    file_storage_uuid=None,
) -> ImportSession:
    storage = _storage_for_session(file_storage_id, file_storage_uuid)
    author = author_get(default_author_id) if default_author_id is not None else None
    title = (title or "").strip()
    if not title:
        raise ImalinkError("title must not be empty.", code="validation_error", status=422, details={"field": "title"})
    session = ImportSession.objects.create(
        title=title, description=description or "", file_storage=storage, default_author=author
    )
    return session_get(session.pk)


def sessions_list(*, storage_uuid=None):
    # Newest first, spelled out for the paginator.
    sessions = with_images_count(ImportSession.objects.select_related("file_storage", "default_author")).order_by(
        "-imported_at", "-id"
    )
    if storage_uuid is not None:
        sessions = sessions.filter(file_storage__storage_uuid=storage_uuid)
    return sessions


def author_create(*, name: str, email: str = "") -> Author:
    name = (name or "").strip()
    if not name:
        raise ImalinkError("name must not be empty.", code="validation_error", status=422, details={"field": "name"})
    return Author.objects.create(name=name, email=email or "")


def author_update(author: Author, *, name: str | None = None, email: str | None = None) -> Author:
    if name is not None:
        if not name.strip():
            raise ImalinkError(
                "name must not be empty.", code="validation_error", status=422, details={"field": "name"}
            )
        author.name = name.strip()
    if email is not None:
        author.email = email
    author.save()
    return author


def author_delete(author: Author) -> None:
    """Delete an author nobody refers to; one still named on sessions or photos is kept."""
    in_use = ImportSession.objects.filter(default_author=author).exists() or author.photos.exists()
    if in_use:
        raise Conflict(
            f"Author {author.name!r} is named on sessions or photos; change those first.", code="author_in_use"
        )
    try:
        author.delete()
    except ProtectedError:
        raise Conflict(f"Author {author.name!r} is still referred to.", code="author_in_use") from None


# --- photos -----------------------------------------------------------------------------------------

_UNSET = object()
MAX_TAGS = 100
MAX_TAG_LENGTH = 100
PREVIEW_SIDE = 1024


def photo_get(hothash: str) -> Photo:
    photo = Photo.objects.select_related("author").filter(hothash=hothash).first()
    if photo is None:
        raise NotFound(f"No photo with hothash {hothash!r}.", details={"hothash": hothash})
    return photo


def photos_list(*, storage_uuid=None, session_id: int | None = None, q: str | None = None, media_type=None):
    """Photos newest first (undated ones last), without their hotpreview bytes."""
    photos = Photo.objects.select_related("author").defer("hotpreview")
    if media_type is not None:
        photos = photos.filter(media_type=media_type)
    if storage_uuid is not None:
        # Its kept (storage, photo) rows, one unique-index probe per photo: a join and DISTINCT over 100,000 photos
        # cost 116-162 ms at 20,000 (issue 17's pages benchmark).
        photos = photos.filter(
            Exists(StoragePhoto.objects.filter(file_storage__storage_uuid=storage_uuid, photo=OuterRef("pk")))
        )
    if session_id is not None:
        photos = photos.filter(Exists(ImageFile.objects.filter(import_session_id=session_id, photo=OuterRef("pk"))))
    if q:
        photos = photos.filter(title__icontains=q.strip())
    return photos.order_by(F("taken_at").desc(nulls_last=True), "-id")


def photo_files(photo: Photo):
    return photo.files.select_related("file_storage", "import_session").order_by("-is_primary", "id")


def photo_original_file(hothash: str) -> ImageFile:
    """The file that stands for an item as a whole (the photo page plays it, /photos/<hothash>/original answers
    it): its primary original, else its first other original on record. A companion never stands for its item.

    NotFound for an unknown item, and for one whose every original is recorded missing.
    """
    image_file = (
        ImageFile.objects.select_related("file_storage")
        .filter(photo__hothash=hothash, role=ImageFile.Role.ORIGINAL)
        .exclude(status=ImageFile.Status.MISSING)
        .order_by("-is_primary", "id")
        .first()
    )
    if image_file is None:
        if not Photo.objects.filter(hothash=hothash).exists():
            raise NotFound(f"No photo with hothash {hothash!r}.", details={"hothash": hothash})
        raise NotFound(f"No original of {hothash!r} is on record: every copy is missing.", code="no_original")
    return image_file


def session_source_entries(session: ImportSession, *, fate: str | None = None):
    """The files of the session's source folder with their fates, in path order; only one fate when given."""
    entries = SourceEntry.objects.filter(import_session=session).order_by("path", "id")
    if fate:
        entries = entries.filter(fate=fate)
    return entries


def session_fate_counts(session: ImportSession) -> dict[str, int]:
    """How many source files met each fate (every fate named, zero included), counted by the database."""
    counts = dict.fromkeys(SourceEntry.Fate.values, 0)
    for fate, count in (
        SourceEntry.objects.filter(import_session=session)
        .order_by()
        .values("fate")
        .annotate(n=Count("id"))
        .values_list("fate", "n")
    ):
        counts[fate] = count
    return counts


def stored_items(storage, relative_paths) -> dict[str, str]:
    """The hothash of the item each of these storage paths is a file of, for the paths recorded on the storage."""
    return dict(
        ImageFile.objects.filter(file_storage=storage, relative_path__in=list(relative_paths))
        .exclude(status=ImageFile.Status.MISSING)
        .values_list("relative_path", "photo__hothash")
    )


def _clean_tags(tags) -> list[str]:
    def reject(message):
        raise ImalinkError(message, code="validation_error", status=422, details={"field": "tags"})

    if not isinstance(tags, (list, tuple)):
        reject("tags must be a list of strings.")
    cleaned: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            reject("Every tag must be a non-empty string.")
        tag = tag.strip()
        if len(tag) > MAX_TAG_LENGTH:
            reject(f"A tag may be at most {MAX_TAG_LENGTH} characters long.")
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_TAGS:
        reject(f"A photo may have at most {MAX_TAGS} tags.")
    return cleaned


def photo_update(
    photo: Photo, *, title=None, description=None, rating=None, tags=None, author_id=_UNSET, on_saved=None
) -> Photo:
    """Change the user's metadata of a photo; `on_saved(photo)` runs in the same transaction (indexing's
    rewrite.photo_update passes the queueing of its session indexes).

    None leaves a field as it is, except author_id, where None clears the author (leave it out to keep it).
    """
    if title is not None:
        if not isinstance(title, str) or len(title) > 300:
            raise ImalinkError(
                "title must be text of at most 300 characters.",
                code="validation_error",
                status=422,
                details={"field": "title"},
            )
        photo.title = title.strip()
    if description is not None:
        if not isinstance(description, str):
            raise ImalinkError(
                "description must be text.", code="validation_error", status=422, details={"field": "description"}
            )
        photo.description = description
    if rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, int) or not 0 <= rating <= 5:
            raise ImalinkError(
                "rating must be a whole number from 0 to 5.",
                code="validation_error",
                status=422,
                details={"field": "rating"},
            )
        photo.rating = rating
    if tags is not None:
        photo.tags = _clean_tags(tags)
    if author_id is not _UNSET:
        photo.author = author_get(author_id) if author_id is not None else None
    metadata_changed = any(value is not None for value in (title, description, rating, tags))
    if metadata_changed:
        photo.metadata_edited_at = timezone.now()
    with transaction.atomic():
        photo.save()
        if on_saved is not None:
            on_saved(photo)  # the indexing app queues the rewrite of the session indexes that name this photo
    # On storages set to write sidecars; each one says whether it was written, and why not (imports/writeback.py).
    photo.sidecar_writes = write_sidecars(photo) if metadata_changed else []
    return photo


def photo_preview_jpeg(photo: Photo) -> bytes | None:
    """A ~1024 px JPEG rendered from the primary file when its storage is available, else the hotpreview.

    A video's is its hotpreview (its poster frame): the page plays the video itself."""
    if photo.media_type == Photo.MediaType.VIDEO:
        return bytes(photo.hotpreview) if photo.hotpreview else None
    image_file = (
        photo.files.select_related("file_storage")
        .filter(status=ImageFile.Status.PRESENT, role=ImageFile.Role.ORIGINAL)
        .order_by("-is_primary", "id")
        .first()
    )
    if image_file is not None:
        rendered = _render_from_file(image_file)
        if rendered is not None:
            return rendered
    return bytes(photo.hotpreview) if photo.hotpreview else None


def _render_from_file(image_file: ImageFile) -> bytes | None:
    """The preview rendered from the file on the drive, read through the storage's descriptor (storages.drive):
    a link, a pipe or a folder where the file belongs is never followed or opened, and the hotpreview stands in."""
    storage = image_file.file_storage
    try:
        storage_require_available(storage)
        with drive.Storage(storage.full_path) as opened:
            fd, _st = opened.open_read(image_file.relative_path)
    except (StorageUnavailable, OSError):
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            return media.render_preview(
                handle,
                file_format=image_file.file_format,
                max_side=PREVIEW_SIDE,
                max_pixels=settings.IMALINK_MAX_PIXELS,
            )
        except Exception as exc:  # a file changed or damaged on disk falls back to the hotpreview
            logger.info(
                "no preview rendered from %s: %s: %s",
                storage.full_path / image_file.relative_path,
                type(exc).__name__,
                exc,
            )
            return None


def session_target_folders(storage) -> set[str]:
    """photos/<target> and each folder on the way to it, for every import session's target on this storage: the
    folders of ImaLink's own that storages' layout check must find to be folders (registered in ImportsConfig)."""
    folders = set()
    for target in (
        ImportSession.objects.filter(file_storage_id=storage.pk)
        .exclude(target_subdirectory="")
        .values_list("target_subdirectory", flat=True)
        .distinct()
    ):
        parts = [p for p in target.split("/") if p and p not in (".", "..")]
        folders.update("/".join(["photos", *parts[:n]]) for n in range(1, len(parts) + 1))
    return folders
