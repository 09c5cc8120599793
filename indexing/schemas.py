"""Response shapes of the indexing routes."""

from typing import Any, Literal
from uuid import UUID

from ninja import Schema
from pydantic import ConfigDict, Field


class IndexWritten(Schema):
    job_id: int | None = None
    status: str | None = None
    storage_uuid: UUID
    session_ids: list[int]
    index_files: list[str]
    written: int


class MovedFile(Schema):
    hothash: str
    old_path: str
    new_path: str
    session_id: int


class KnownFile(Schema):
    hothash: str
    path: str
    session_id: int


class NewFile(Schema):
    path: str
    file_size: int
    adopted: bool
    moved_from_storage_uuid: UUID | None = Field(
        None, description="adopt_new: the storage this file was moved from by hand, recorded as one move"
    )


class CrossMove(Schema):
    file_id: int
    hothash: str
    from_storage_uuid: UUID
    old_path: str
    old_session_id: int
    new_path: str
    session_id: int = Field(description="the session of this storage the file is now in: its Adopted files session")


class HeldBack(Schema):
    hothash: str
    path: str
    from_storage_uuid: UUID
    old_path: str
    reason: str


class ScanOut(Schema):
    job_id: int | None = None
    status: str | None = None
    storage_uuid: UUID
    dry_run: bool
    adopt_new: bool
    changes_detected: bool
    moved_files: list[MovedFile]
    missing_files: list[KnownFile]
    new_files: list[NewFile]
    modified_files: list[KnownFile]
    restored_files: list[KnownFile]
    skipped: list[dict[str, Any]]
    unchanged_count: int
    files_on_disk: int
    bytes_read: int
    duration_s: float
    affected_sessions: list[int]
    adopted: dict[str, Any] | None
    moved_in: list[CrossMove] = Field([], description="adopt_new: files moved here from another storage by hand")
    held_back: list[HeldBack] = Field(
        [], description="adopt_new: new files left untracked until the storage they were moved from is back"
    )


class IndexState(Schema):
    exists: bool
    readable: bool
    current: bool
    status: str
    problem: str | None
    generated_at: str | None


class SessionIndexState(IndexState):
    session_id: int
    title: str
    index_file: str


class IndexBackup(Schema):
    name: str
    size: int
    modified_at: str


class IndexStatusOut(Schema):
    storage_uuid: UUID
    available: bool
    reason: str | None
    reason_code: str | None = None
    master_index_exists: bool
    master_index: IndexState
    sessions: list[SessionIndexState]
    healthy: bool
    last_generated: str | None
    last_scan: str | None
    backups: list[IndexBackup]


class KnownFileRow(Schema):
    file_id: int
    hothash: str
    path: str
    session_id: int


class ExtraFile(Schema):
    path: str
    file_size: int


class CorruptedFile(KnownFileRow):
    expected: str
    actual: str | None
    reason: str


class ValidationOut(Schema):
    job_id: int | None = None
    status: str | None = None
    storage_uuid: UUID
    mode: Literal["quick", "full"]
    validated_files: int
    files_checked: int
    missing_files: list[KnownFileRow]
    extra_files: list[ExtraFile]
    corrupted_files: list[CorruptedFile]
    flagged_files: int
    skipped: list[dict[str, Any]]
    bytes_read: int
    duration_s: float


class AcceptChecksumIn(Schema):
    model_config = ConfigDict(extra="forbid")
    file_ids: list[int] = Field(..., min_length=1, max_length=10_000)


class AcceptedChecksum(Schema):
    file_id: int
    path: str
    old_checksum: str
    new_checksum: str


class RefusedChecksum(Schema):
    file_id: int
    reason: str


class AcceptChecksumOut(Schema):
    accepted: list[AcceptedChecksum]
    refused: list[RefusedChecksum]


class RepairedFile(Schema):
    file_id: int
    hothash: str
    path: str = Field(description="where the good copy now is (its old path, unless a file of record held it)")
    old_path: str | None = None
    status: str = Field(description="the file's status before: modified (corrupt) or missing")
    session_id: int
    quarantined: str | None = Field(description="where the damaged file was moved (.imalink/quarantine/<UTC>/...)")
    source_storage_uuid: UUID | None = Field(description="the storage the good copy came from (none: it was good)")
    source_path: str | None


class UnrepairedFile(Schema):
    file_id: int
    hothash: str
    path: str
    status: str
    session_id: int
    reason: str


class RepairOut(Schema):
    job_id: int | None = None
    status: str | None = None
    storage_uuid: UUID
    checked: int = Field(description="files of the storage that were corrupt (modified) or missing")
    repaired: list[RepairedFile]
    no_good_copy: list[UnrepairedFile] = Field(description="files whose good bytes no available storage holds")
    failed: list[UnrepairedFile] = Field(description="files a good copy was found for, that could not be put back")
    bytes_copied: int
    affected_sessions: list[int]
    duration_s: float


class ReconcileOut(Schema):
    job_id: int | None = None
    status: str | None = None
    storages_checked: list[UUID]
    unavailable_storages: list[dict[str, Any]]
    moves: list[CrossMove]
    held_back: list[HeldBack]
    duration_s: float
