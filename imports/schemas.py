"""Request and response shapes of the import-session and author routes."""

from datetime import datetime
from uuid import UUID

from ninja import Schema
from pydantic import ConfigDict, EmailStr, Field

from storages.layout import session_index_file


class AuthorIn(Schema):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=200)
    email: EmailStr | None = None


class AuthorUpdateIn(Schema):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    email: EmailStr | None = None


class AuthorOut(Schema):
    id: int
    name: str
    email: str
    created_at: datetime


class AuthorList(Schema):
    authors: list[AuthorOut]
    count: int


class SessionCreateIn(Schema):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(..., min_length=1, max_length=300)
    description: str | None = Field("", max_length=10_000)
    default_author_id: int | None = Field(None, ge=1)
    file_storage_id: int | None = Field(None, ge=1)
    file_storage_uuid: UUID | None = None


class SessionOut(Schema):
    id: int
    title: str
    description: str
    imported_at: datetime
    images_count: int
    file_storage_id: int
    file_storage_uuid: UUID
    storage_directory: str
    default_author_id: int | None
    default_author: str | None
    source_path: str
    target_subdirectory: str
    index_file: str

    @staticmethod
    def from_session(session) -> dict:
        return {
            "id": session.id,
            "title": session.title,
            "description": session.description,
            "imported_at": session.imported_at,
            "images_count": session.images_count,
            "file_storage_id": session.file_storage_id,
            "file_storage_uuid": session.file_storage.storage_uuid,
            "storage_directory": session.file_storage.directory_name,
            "default_author_id": session.default_author_id,
            "default_author": session.default_author.name if session.default_author else None,
            "source_path": session.source_path,
            "target_subdirectory": session.target_subdirectory,
            "index_file": session_index_file(session.id),
        }


class SessionList(Schema):
    import_sessions: list[SessionOut]
    count: int
    page: int
    pages: int


class ImportIn(Schema):
    model_config = ConfigDict(extra="forbid")
    source_path: str = Field(..., max_length=4096, examples=["/media/card/DCIM"])
    target_subdirectory: str | None = Field("", max_length=1024, examples=["2024/italy"])
    recursive: bool = True


class ImportFailure(Schema):
    path: str
    code: str
    reason: str


class ImportResultOut(Schema):
    job_id: int
    status: str
    session_id: int
    storage_uuid: UUID
    source_path: str
    target_subdirectory: str
    total: int
    done: int
    imported: int
    duplicates: int
    failed: int
    companions: int = 0
    skipped: int = 0
    photos_created: int
    videos_created: int = 0
    bytes_copied: int
    failures: list[ImportFailure]
    skipped_files: list[ImportFailure] = []
    cancelled: bool
    duration_s: float
    files_per_s: float
    images_count: int


class VerifyProblem(Schema):
    path: str = Field(description="relative to the source folder")
    code: str
    reason: str


class VerifySourceOut(Schema):
    job_id: int
    status: str
    session_id: int
    source_path: str
    storage_uuid: UUID
    safe_to_format: bool = Field(description="true only when every file of the source is in the storage, same bytes")
    checked_files: int
    archived_files: int
    not_archived_files: int
    bytes_read: int
    problems: list[VerifyProblem] = Field(description="each file that is not safe, with the reason (first 1000)")
    checked_at: datetime
    duration_s: float


class PhotoFileOut(Schema):
    id: int
    path: str
    original_filename: str
    checksum: str
    file_format: str
    file_size: int
    mtime_ns: int
    status: str
    is_primary: bool
    role: str = Field(description="original, or a companion's role: sidecar, edit, thumbnail, proxy, motion")
    storage_uuid: UUID
    session_id: int
    last_seen_at: datetime | None

    @staticmethod
    def from_file(image_file) -> dict:
        return {
            "id": image_file.id,
            "path": image_file.relative_path,
            "original_filename": image_file.original_filename,
            "checksum": image_file.checksum,
            "file_format": image_file.file_format,
            "file_size": image_file.file_size,
            "mtime_ns": image_file.mtime_ns,
            "status": image_file.status,
            "is_primary": image_file.is_primary,
            "role": image_file.role,
            "storage_uuid": image_file.file_storage.storage_uuid,
            "session_id": image_file.import_session_id,
            "last_seen_at": image_file.last_seen_at,
        }


class PhotoOut(Schema):
    hothash: str
    hothash_version: str
    media_type: str = Field(description="photo or video")
    duration_s: float | None = Field(description="a video's length in seconds")
    codec: str = Field(description="a video's codec as FFmpeg names it (h264, hevc, ...); empty for a photo")
    width: int | None
    height: int | None
    taken_at: datetime | None
    gps_latitude: float | None
    gps_longitude: float | None
    camera_make: str
    camera_model: str
    has_hotpreview: bool
    hotpreview_url: str | None
    title: str
    description: str
    rating: int
    tags: list[str]
    author_id: int | None
    author: str | None
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def from_photo(photo) -> dict:
        return {
            "hothash": photo.hothash,
            "hothash_version": photo.hothash_version,
            "media_type": photo.media_type,
            "duration_s": photo.duration_s,
            "codec": photo.codec,
            "width": photo.width,
            "height": photo.height,
            "taken_at": photo.taken_at,
            "gps_latitude": photo.gps_latitude,
            "gps_longitude": photo.gps_longitude,
            "camera_make": photo.camera_make,
            "camera_model": photo.camera_model,
            "has_hotpreview": photo.has_hotpreview,
            "hotpreview_url": f"/api/v1/photos/{photo.hothash}/hotpreview" if photo.has_hotpreview else None,
            "title": photo.title,
            "description": photo.description,
            "rating": photo.rating,
            "tags": photo.tags or [],
            "author_id": photo.author_id,
            "author": photo.author.name if photo.author else None,
            "created_at": photo.created_at,
            "updated_at": photo.updated_at,
        }


class SidecarWriteOut(Schema):
    storage_uuid: UUID
    status: str = Field(description="written, or not_written (reason says why: unplugged, read-only, ...)")
    path: str | None
    reason: str


class CopyHolderOut(Schema):
    storage_uuid: UUID
    display_name: str
    role: str = Field(description="the storage's role in the copy policy: primary, backup or archive")
    available: bool = Field(description="the storage's last accessibility check found it (no disk is read here)")
    verified_at: datetime | None = Field(
        description="the last time a file of this storage with these bytes was read back equal to the checksum"
    )


class CopiesOut(Schema):
    count: int = Field(description="storages holding a present file with the primary file's checksum")
    available: int = Field(description="how many of those storages are available now")
    storages: list[CopyHolderOut]


class PhotoDetailOut(PhotoOut):
    files: list[PhotoFileOut]
    copies: CopiesOut
    sidecar_writes: list[SidecarWriteOut] = Field(
        [], description="after a change: the XMP sidecar written on each storage set to write sidecars, or why not"
    )


class PhotoList(Schema):
    photos: list[PhotoOut]
    count: int
    page: int
    pages: int


class PhotoUpdateIn(Schema):
    """Only the fields sent are changed; author_id null clears the author."""

    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(None, max_length=300)
    description: str | None = Field(None, max_length=10_000)
    rating: int | None = Field(None, ge=0, le=5)
    tags: list[str] | None = Field(None, max_length=100)
    author_id: int | None = Field(None, ge=1)
