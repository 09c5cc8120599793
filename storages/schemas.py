"""Request and response shapes of the file-storage routes, with the seed's field names."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from ninja import Schema
from pydantic import ConfigDict, Field


class StorageCreateIn(Schema):
    model_config = ConfigDict(extra="forbid")
    base_path: str = Field(..., max_length=4096, examples=["/external/photos"])
    display_name: str = Field(..., min_length=1, max_length=200)
    description: str = Field("", max_length=10_000)


class StorageUpdateIn(Schema):
    model_config = ConfigDict(extra="forbid")
    display_name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    xmp_writeback: Literal["off", "sidecars"] | None = Field(
        None,
        description=(
            "off (the default), or sidecars: a change to a photo's rating, tags, title or description is written "
            "to its XMP sidecar on this storage (originals never are)."
        ),
    )
    role: Literal["primary", "backup", "archive"] | None = Field(
        None,
        description=(
            "The storage's role in the copy policy (issue 17): primary, backup or archive. Scheduled replication "
            "copies each primary to the backups that are connected; every role's files count as copies."
        ),
    )
    base_path: str | None = Field(
        None,
        max_length=4096,
        examples=["/new/larger/drive"],
        description=(
            "Drive migration: accepted only if {base_path}/{directory_name}/.imalink/storage.json "
            "holds this storage's uuid."
        ),
    )


class StorageOut(Schema):
    id: int
    uuid: UUID
    storage_uuid: UUID
    directory_name: str
    base_path: str
    full_path: str
    display_name: str
    description: str
    is_active: bool
    xmp_writeback: str
    role: str = Field(description="primary, backup or archive (the copy policy)")
    created_at: datetime
    updated_at: datetime
    last_scan_at: datetime | None
    last_index_at: datetime | None
    is_accessible: bool | None
    is_writable: bool | None
    free_space_gb: float | None
    total_space_gb: float | None
    accessibility_checked_at: datetime | None
    accessibility_reason: str

    @staticmethod
    def from_storage(storage) -> dict:
        gb = 1024**3
        return {
            "id": storage.id,
            "uuid": storage.storage_uuid,
            "storage_uuid": storage.storage_uuid,
            "directory_name": storage.directory_name,
            "base_path": storage.base_path,
            "full_path": str(storage.full_path),
            "display_name": storage.display_name,
            "description": storage.description,
            "is_active": storage.is_active,
            "xmp_writeback": storage.xmp_writeback,
            "role": storage.role,
            "created_at": storage.created_at,
            "updated_at": storage.updated_at,
            "last_scan_at": storage.last_scan_at,
            "last_index_at": storage.last_index_at,
            "is_accessible": storage.is_accessible,
            "is_writable": storage.is_writable,
            "free_space_gb": round(storage.free_bytes / gb, 3) if storage.free_bytes is not None else None,
            "total_space_gb": round(storage.total_bytes / gb, 3) if storage.total_bytes is not None else None,
            "accessibility_checked_at": storage.accessibility_checked_at,
            "accessibility_reason": storage.accessibility_reason,
        }


class IndexStatusSummary(Schema):
    healthy: bool
    master_index_exists: bool
    master_index_status: str
    stale_session_ids: list[int]
    missing_session_ids: list[int]
    corrupt_session_ids: list[int]


class MigrationOut(Schema):
    storage_uuid: UUID
    old_base_path: str
    new_base_path: str
    changed: bool
    master_index_rewritten: bool
    accessibility: "AccessibilityOut"
    index_status: IndexStatusSummary | None


class StorageUpdateOut(StorageOut):
    """StorageOut, plus what the drive migration did when base_path was sent."""

    migration: MigrationOut | None = None


class StorageList(Schema):
    storages: list[StorageOut]
    count: int


class AccessibilityOut(Schema):
    storage_uuid: UUID
    full_path: str
    is_accessible: bool
    is_writable: bool
    free_space_gb: float | None = None
    total_space_gb: float | None = None
    free_bytes: int | None = None
    total_bytes: int | None = None
    checked_at: datetime
    reason: str | None = None
    reason_code: str | None = None


class StatisticsFigures(Schema):
    total_files: int
    total_size_mb: float
    total_size_bytes: int
    photos: int = Field(description="media items, photos and videos alike (the seed's name)")
    videos: int = Field(0, description="how many of those items are videos")
    missing_files: int
    photos_only_here: int = Field(
        0, description="photos whose only copy (a present file with the primary file's checksum) is in this storage"
    )


class SessionSummary(Schema):
    id: int
    title: str
    imported_at: datetime
    images_count: int


class StatisticsOut(Schema):
    storage_uuid: UUID
    statistics: StatisticsFigures
    import_sessions: list[SessionSummary]


class RetirePhotoOut(Schema):
    hothash: str
    title: str
    taken_at: datetime | None
    path: str | None = Field(description="its file on this storage, relative to the storage folder")
    copies: int = Field(description="how many storages hold a copy of it")


class RetireCheckOut(Schema):
    storage_uuid: UUID
    safe_to_retire: bool = Field(
        description="true when no photo has its only copy, or its only verified copy, on this storage"
    )
    only_copy_count: int
    only_copy: list[RetirePhotoOut] = Field(description="photos whose only copy is here (the first `limit`)")
    only_verified_copy_count: int
    only_verified_copy: list[RetirePhotoOut] = Field(
        description="photos with other copies, none of them verified, whose verified copy is here (the first `limit`)"
    )
    limit: int


MigrationOut.model_rebuild()
StorageUpdateOut.model_rebuild()
