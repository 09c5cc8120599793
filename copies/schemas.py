"""Request and response shapes of the copies routes (issue 17): replicate a storage into another, migrate one."""

from typing import Any
from uuid import UUID

from ninja import Schema
from pydantic import ConfigDict, Field


class ReplicateIn(Schema):
    model_config = ConfigDict(extra="forbid")
    target_storage_uuid: UUID = Field(..., description="The storage that receives the copies.")
    session_ids: list[int] | None = Field(
        None, min_length=1, max_length=10_000, description="The source's sessions to copy; all of them when left out."
    )


class FailedFile(Schema):
    path: str
    code: str
    reason: str


class ReplicationOut(Schema):
    job_id: int | None = None
    status: str | None = None
    source_storage_uuid: str
    target_storage_uuid: str
    session_ids: list[int]
    mirror_sessions: dict[str, int] = Field(description="Source session id -> the target's session mirroring it.")
    total_files: int
    total_bytes: int
    copied_files: int
    found_in_place: int
    already_present: int
    bytes_copied: int
    failed: list[FailedFile]
    failed_count: int
    cancelled: bool
    duration_s: float
    deleted: int


class MigrateIn(Schema):
    model_config = ConfigDict(extra="forbid")
    new_base_path: str = Field(
        ...,
        max_length=4096,
        examples=["/media/new-drive"],
        description="The folder to hold the storage folder: the copy lands in {new_base_path}/{directory_name}.",
    )


class MigrationOut(Schema):
    job_id: int | None = None
    status: str | None = None
    storage_uuid: str
    old_base_path: str
    new_base_path: str
    old_copy: str
    new_copy: str
    old_copy_left_untouched: bool
    files_total: int
    files_copied: int
    files_already_there: int
    files_set_aside: int
    bytes_total: int
    bytes_copied: int
    files_verified: int
    database_files_checked: int
    not_copied: list[dict[str, str]]
    switched: bool
    migration: dict[str, Any] | None
    duration_s: float
    message: str
