"""Request and response shapes of the import-session and author routes."""

from datetime import datetime
from uuid import UUID

from ninja import Schema
from pydantic import ConfigDict, EmailStr, Field


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
            "index_file": f"imports/session_{session.id}.json",
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
    photos_created: int
    bytes_copied: int
    failures: list[ImportFailure]
    cancelled: bool
    duration_s: float
    files_per_s: float
    images_count: int
