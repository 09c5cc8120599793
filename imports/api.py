"""Routes under /api/v1/import-sessions/, /api/v1/authors/ and /api/v1/photos/: thin doors into imports.services."""

from typing import Literal
from uuid import UUID

from django.core.paginator import Paginator
from django.http import HttpResponse
from ninja import Query, Router

from imalink.errors import NotFound
from imalink.schemas import JobAccepted, ok, responses
from indexing import rewrite
from jobs.answers import job_answer

from . import counting, services
from .models import Author
from .pipeline import import_validate
from .schemas import (
    AuthorIn,
    AuthorList,
    AuthorOut,
    AuthorUpdateIn,
    ImportIn,
    ImportResultOut,
    PhotoDetailOut,
    PhotoFileOut,
    PhotoList,
    PhotoOut,
    PhotoUpdateIn,
    SessionCreateIn,
    SessionList,
    SessionOut,
    VerifySourceOut,
)
from .verify import verify_validate

sessions_router = Router(tags=["import-sessions"])
authors_router = Router(tags=["authors"])
photos_router = Router(tags=["photos"])


@sessions_router.post("/create", response=responses(SessionOut), summary="Create an import session on a storage")
def create_session(request, payload: SessionCreateIn):
    session = services.session_create(**payload.dict())
    return ok(SessionOut.from_session(session))


@sessions_router.get("/", response=responses(SessionList), summary="List import sessions, newest first")
def list_sessions(
    request, storage_uuid: UUID | None = None, page: int = Query(1, ge=1), page_size: int = Query(100, ge=1, le=1000)
):
    paginator = Paginator(services.sessions_list(storage_uuid=storage_uuid), page_size)
    current = paginator.get_page(page)
    items = [SessionOut.from_session(s) for s in current.object_list]
    return ok(
        {"import_sessions": items, "count": paginator.count, "page": current.number, "pages": paginator.num_pages}
    )


@sessions_router.get("/{session_id}", response=responses(SessionOut), summary="One import session")
def get_session(request, session_id: int):
    return ok(SessionOut.from_session(services.session_get(session_id)))


@sessions_router.post(
    "/{session_id}/import",
    response=responses(ImportResultOut, _202=JobAccepted),
    summary=(
        "Import a folder into the session's storage (a job; waits up to IMALINK_SYNC_WAIT s, ?wait=0 for 202 at once)"
    ),
)
def import_into_session(request, session_id: int, payload: ImportIn, wait: float | None = Query(None, ge=0)):
    session = services.session_get(session_id)
    import_validate(session, payload.source_path, payload.target_subdirectory)
    return job_answer(
        request, kind="import", storage=session.file_storage, session=session, params=payload.dict(), wait=wait
    )


@sessions_router.post(
    "/{session_id}/verify-source",
    response=responses(VerifySourceOut, _202=JobAccepted),
    summary=(
        "Safe to format? Re-read the session's source folder against the storage (a job; waits up to "
        "IMALINK_SYNC_WAIT s, ?wait=0 for 202 at once)"
    ),
)
def verify_session_source(request, session_id: int, wait: float | None = Query(None, ge=0)):
    session = services.session_get(session_id)
    verify_validate(session)
    return job_answer(request, kind="verify_source", storage=session.file_storage, session=session, wait=wait)


def _author(author: Author) -> dict:
    return {"id": author.id, "name": author.name, "email": author.email, "created_at": author.created_at}


@authors_router.get("/", response=responses(AuthorList), summary="List authors")
def list_authors(request):
    authors = [_author(a) for a in Author.objects.all()]
    return ok({"authors": authors, "count": len(authors)})


@authors_router.post("/", response=responses(AuthorOut), summary="Create an author")
def create_author(request, payload: AuthorIn):
    return ok(_author(services.author_create(name=payload.name, email=payload.email or "")))


@authors_router.get("/{author_id}", response=responses(AuthorOut), summary="One author")
def get_author(request, author_id: int):
    return ok(_author(services.author_get(author_id)))


@authors_router.put("/{author_id}", response=responses(AuthorOut), summary="Change an author")
def update_author(request, author_id: int, payload: AuthorUpdateIn):
    author = services.author_update(services.author_get(author_id), **payload.dict(exclude_unset=True))
    return ok(_author(author))


@authors_router.delete("/{author_id}", response=responses(AuthorOut), summary="Delete an author nobody refers to")
def delete_author(request, author_id: int):
    author = services.author_get(author_id)
    data = _author(author)
    services.author_delete(author)
    return ok(data)


def _photo_detail(photo) -> dict:
    return {
        **PhotoOut.from_photo(photo),
        "files": [PhotoFileOut.from_file(f) for f in services.photo_files(photo)],
        "copies": counting.photo_copies(photo),
    }


@photos_router.get("/", response=responses(PhotoList), summary="List photos, newest first")
def list_photos(
    request,
    storage_uuid: UUID | None = None,
    session_id: int | None = Query(None, ge=1),
    q: str | None = Query(None, max_length=300, description="Part of the title"),
    media_type: Literal["photo", "video"] | None = Query(None, description="Only photos, or only videos"),
    copies_lt: int | None = Query(
        None, ge=1, le=1000, description="Only photos kept in fewer than this many storages (under-protected)"
    ),
    page: int = Query(1, ge=1),
    page_size: int = Query(100, ge=1, le=500),
):
    if copies_lt is None:
        found = services.photos_list(storage_uuid=storage_uuid, session_id=session_id, q=q, media_type=media_type)
    else:  # the storage is matched by its kept (storage, photo) rows: at 100,000 photos a join and DISTINCT is slow
        found = services.photos_list(session_id=session_id, q=q, media_type=media_type)
        found = counting.fewest_copies_first(counting.with_fewer_copies(found, copies_lt, storage_uuid=storage_uuid))
    paginator = Paginator(found, page_size)
    current = paginator.get_page(page)
    items = [PhotoOut.from_photo(p) for p in current.object_list]
    return ok({"photos": items, "count": paginator.count, "page": current.number, "pages": paginator.num_pages})


# Hothashes are hex, or "raw:<hex>" for a RAW without a readable preview; the str converter lets ":" through.
@photos_router.get("/{hothash}", response=responses(PhotoDetailOut), summary="One photo with its files")
def get_photo(request, hothash: str):
    return ok(_photo_detail(services.photo_get(hothash)))


@photos_router.get(
    "/{hothash}/hotpreview",
    summary="The photo's hotpreview JPEG (from the database, so it works while the drive is unplugged)",
    openapi_extra={
        "responses": {
            200: {
                "description": "The hotpreview",
                "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
            }
        }
    },
)
def get_photo_hotpreview(request, hothash: str):
    photo = services.photo_get(hothash)
    if not photo.hotpreview:
        raise NotFound(f"Photo {hothash!r} has no hotpreview.", code="no_hotpreview", details={"hothash": hothash})
    response = HttpResponse(bytes(photo.hotpreview), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return response


@photos_router.put(
    "/{hothash}",
    response=responses(PhotoDetailOut),
    summary="Change a photo's title, description, rating, tags or author",
)
def update_photo(request, hothash: str, payload: PhotoUpdateIn):
    photo = rewrite.photo_update(services.photo_get(hothash), **payload.dict(exclude_unset=True))
    return ok({**_photo_detail(photo), "sidecar_writes": photo.sidecar_writes})
