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
