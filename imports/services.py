"""Import sessions and authors: creating, changing and listing them, with the rules in one place."""

import uuid as uuid_lib

from django.db.models import Count, ProtectedError

from imalink.errors import Conflict, ImalinkError, NotFound
from storages.models import FileStorage

from .models import Author, ImportSession


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
            details={"file_storage_id": file_storage_id, "file_storage_uuid": str(file_storage_uuid) if file_storage_uuid else None},
        )
    if not storage.is_active:
        raise Conflict(f"Storage {storage.display_name!r} is deactivated: reactivate it before importing into it.", code="storage_inactive")
    return storage


def author_get(author_id: int) -> Author:
    author = Author.objects.filter(pk=author_id).first()
    if author is None:
        raise NotFound(f"No author with id {author_id}.", details={"author_id": author_id})
    return author


def session_get(session_id: int) -> ImportSession:
    session = (
        ImportSession.objects.select_related("file_storage", "default_author")
        .annotate(images_count_annotated=Count("image_files"))
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
    # An aggregate query drops Meta.ordering, so newest-first is spelled out for the paginator.
    sessions = (
        ImportSession.objects.select_related("file_storage", "default_author")
        .annotate(images_count_annotated=Count("image_files"))
        .order_by("-imported_at", "-id")
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
            raise ImalinkError("name must not be empty.", code="validation_error", status=422, details={"field": "name"})
        author.name = name.strip()
    if email is not None:
        author.email = email
    author.save()
    return author


def author_delete(author: Author) -> None:
    """Delete an author nobody refers to; one still named on sessions or photos is kept."""
    in_use = ImportSession.objects.filter(default_author=author).exists() or author.photos.exists()
    if in_use:
        raise Conflict(f"Author {author.name!r} is named on sessions or photos; change those first.", code="author_in_use")
    try:
        author.delete()
    except ProtectedError:
        raise Conflict(f"Author {author.name!r} is still referred to.", code="author_in_use") from None
