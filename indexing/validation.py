"""Validating a storage (DESIGN §6): prove that the files under photos/ are still the bytes the database knows.

`quick` compares size and mtime_ns; `full` re-hashes every file. Files are only ever opened read-only; the one
write is to the database, where a file found corrupted is flagged `modified` until its checksum is accepted.
"""

import logging
import os
import stat
import time
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from imports import metadata
from imports.checksums import CHUNK, fd_checksum, index_checksum
from imports.models import ImageFile
from imports.sources import is_junk
from storages import drive
from storages.locks import storage_lock
from storages.services import storage_require_available
from storages.unsafe import mark_unsafe

from .models import ValidationCheckpoint
from .scanner import FULL_ROW, walk_photos
from .writer import write_master_index, write_session_index

logger = logging.getLogger("imalink.indexing")

MODES = ("quick", "full")
_ROW = FULL_ROW  # the scan's row, as the scan reads it
REASON_CHECKSUM = "checksum mismatch"
REASON_SIZE = "size changed"
REASON_MTIME = "mtime changed (contents not compared: run a full validation)"
REASON_FLAGGED = "flagged modified earlier (contents not compared: run a full validation, or accept its checksum)"


@dataclass
class ValidationReport:
    storage_uuid: str
    mode: str
    validated_files: int = 0
    files_checked: int = 0
    missing_files: list = field(default_factory=list)
    extra_files: list = field(default_factory=list)
    corrupted_files: list = field(default_factory=list)
    # Sidecars whose bytes changed: other programs edit them, so that is not damage (docs/MEDIA.md). A full
    # validation records the new checksum (`recorded`); a quick one leaves that to the next scan.
    sidecars_changed: list = field(default_factory=list)
    flagged_files: int = 0  # rows this run newly set to status "modified"
    skipped: list = field(default_factory=list)  # folders or files the walk could not read
    bytes_read: int = 0
    duration_s: float = 0.0
    # A run with a time budget checks the rows in path order from `started_after` and stops when the budget
    # is spent; `cursor` is the last path it checked and `complete` says whether it reached the end.
    started_after: str = ""
    cursor: str = ""
    complete: bool = True

    @property
    def is_clean(self) -> bool:
        return not (self.missing_files or self.corrupted_files)

    def as_dict(self) -> dict:
        return asdict(self)


def hash_file(
    storage: drive.Storage, relative: str, buffer: bytearray, *, from_drive: bool = True
) -> tuple[str, int, os.stat_result]:
    """(xxh3-128 hex, bytes read, fstat) of one file of a storage, read into `buffer` without allocating per chunk.

    The file is opened through the storage's drive.Storage: from its descriptor, nothing followed, never blocked
    on, with O_NOATIME where the kernel allows it (the access time stays as it was); anything but a plain file
    raises UnsafeLayout. With from_drive, the file's clean pages are dropped from the page cache first, so the
    bytes hashed are the drive's and not a copy in memory, which would hide bit rot. (Dropping them again
    afterwards, to spare the cache, and POSIX_FADV_SEQUENTIAL both made cold reads slower here, so neither is done.)
    """
    fd, st = storage.open_read(relative, noatime=True)
    try:
        if from_drive:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        checksum, read = fd_checksum(fd, buffer)
        return checksum, read, st
    finally:
        os.close(fd)


def _shown(path: str) -> str:
    """A path fit for JSON, also when its name is not valid UTF-8."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _on_disk(storage: drive.Storage, path: str, disk: dict) -> tuple[int, int] | None:
    """(size, mtime_ns) of the row's file, or None when it is not there. The walk answers nearly always; a path
    it did not see is looked up directly (the walk skips junk folders and folders it cannot read), without
    following: a folder, a link or anything but a plain file where the row's file belongs raises UnsafeLayout."""
    found = disk.get(path)
    if found is not None:
        return found
    try:
        st = storage.lstat(path)
    except drive.UnsafeLayout:
        raise
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise drive.UnsafeLayout(storage.shown(path), drive.describe_entry(st.st_mode), "a file")
    return st.st_size, st.st_mtime_ns


def validate_storage(
    storage,
    *,
    mode: str = "quick",
    progress=None,
    should_stop=None,
    from_drive: bool = True,
    budget_s: float | None = None,
    start_after: str = "",
) -> ValidationReport:
    """Compare every row of the storage that is not `missing` with its file under photos/.

    Rows are never moved or marked missing here (that is the scan's job); a corrupted file's row is flagged
    `modified` and stays so until accept_checksums() or a scan finds its known bytes again.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    progress = progress or (lambda **kw: None)
    started = time.monotonic()
    report = ValidationReport(storage_uuid=str(storage.storage_uuid), mode=mode, started_after=start_after)
    storage_require_available(storage)
    with storage_lock(storage, wait=settings.IMALINK_LOCK_WAIT, should_stop=should_stop):
        storage_require_available(storage)  # again under the lock: the drive may have gone while we waited
        root = str(storage.full_path)
        progress(stage="walking", total=None, done=0, force=True)
        try:
            with drive.Storage(root) as opened:  # every file is reached from this one descriptor, nothing followed
                _validate_locked(
                    storage, opened, mode, report, started, progress, should_stop, from_drive, budget_s, start_after
                )
        except drive.UnsafeLayout as exc:
            mark_unsafe(storage, exc)  # the storage is unsafe: recorded so, and nothing is flagged
            raise
    report.duration_s = round(time.monotonic() - started, 3)
    progress(stage="done", done=report.files_checked, current=None, bytes_read=report.bytes_read, force=True)
    logger.info(
        "%s validation of %s: %d validated, %d missing, %d corrupted, %d extra, %d bytes read in %.2fs",
        mode,
        storage.storage_uuid,
        report.validated_files,
        len(report.missing_files),
        len(report.corrupted_files),
        len(report.extra_files),
        report.bytes_read,
        report.duration_s,
    )
    return report


def _validate_locked(
    storage, opened: drive.Storage, mode, report, started, progress, should_stop, from_drive, budget_s, start_after
) -> None:
    """The body of validate_storage under the storage lock, with the storage opened once for the run."""
    found, report.skipped = walk_photos(str(storage.full_path))
    disk = {path: (size, mtime_ns) for path, size, mtime_ns in found}
    rows = sorted(
        ImageFile.objects.filter(file_storage=storage).exclude(status=ImageFile.Status.MISSING).values_list(*_ROW),
        key=lambda r: r[1],
    )
    if start_after:
        rows = [r for r in rows if r[1] > start_after]
    if budget_s is not None:
        deadline = started + budget_s
        budgeted_stop = should_stop

        def should_stop():  # noqa: F811 - the budget is one more reason to stop, at a file boundary
            if budgeted_stop:
                budgeted_stop()
            # At least one file per slice, so a cycle always advances however small the budget.
            if time.monotonic() >= deadline and report.files_checked > 0:
                raise _BudgetSpent()

    to_flag: list[int] = []  # what a run stopped by its budget has found so far is still flagged
    to_record: list[tuple] = []  # (file id, checksum, size, mtime_ns) of sidecars read again in full
    to_verify: list[int] = []  # rows a full validation re-hashed and found equal (issue 17: verified_at)
    try:
        _compare(opened, rows, disk, mode, report, progress, should_stop, from_drive, to_flag, to_record, to_verify)
    except _BudgetSpent:
        report.complete = False
    known = {r[1] for r in rows}
    report.extra_files = [
        {"path": _shown(path), "file_size": disk[path][0]}
        for path in sorted(disk.keys() - known)
        if not is_junk(path.rsplit("/", 1)[1])
    ]
    # An unplugged drive reads as every file missing or unreadable: flag nothing unless it is still here.
    storage_require_available(storage)
    report.flagged_files = _flag_modified(to_flag)
    _record_verified(to_verify)
    _record_sidecars(opened, to_record)


def _record_sidecars(opened: drive.Storage, found: list[tuple]) -> None:
    """Sidecars read in full with new bytes, as a scan takes them: the new checksum recorded, and what they say
    applied to their item when newer than the user's last change in ImaLink (imports/metadata.py)."""
    for file_id, hothash, path, checksum, size, mtime_ns in found:
        with transaction.atomic():
            ImageFile.objects.filter(pk=file_id, role=ImageFile.Role.SIDECAR).update(
                checksum=checksum, file_size=size, mtime_ns=mtime_ns, status=ImageFile.Status.PRESENT
            )
            fields, _why = metadata.read_stored_sidecar(opened, path, size)
            if fields is not None:
                metadata.apply_sidecar(hothash, fields, mtime_ns)


class _BudgetSpent(Exception):
    pass


def _compare(
    opened: drive.Storage,
    rows,
    disk,
    mode,
    report,
    progress,
    should_stop,
    from_drive,
    to_flag: list[int],
    to_record,
    to_verify: list[int],
) -> None:
    """Check each row against its file; fill the report, and `to_flag` with the ids of rows to flag `modified`.

    report.cursor is the path of the last row fully checked, so a run stopped between files resumes after it.
    """
    full = mode == "full"
    buffer = bytearray(CHUNK) if full else None
    total_bytes = sum(r[2] for r in rows) if full else None
    progress(stage="checking", total=len(rows), done=0, bytes_total=total_bytes, bytes_read=0, force=True)
    for done, (file_id, path, size, mtime_ns, checksum, status, hothash, session_id, role) in enumerate(rows, start=1):
        if should_stop and (full or done % 1000 == 0):
            should_stop()
        known = {"file_id": file_id, "hothash": hothash, "path": path, "session_id": session_id}
        sidecar = role == ImageFile.Role.SIDECAR
        on_disk = _on_disk(opened, path, disk)
        report.files_checked += 1
        report.cursor = path  # a budget only ever stops the run at the top of the loop, after this row
        if on_disk is None:
            report.missing_files.append(known)
        elif full:
            progress(done=done - 1, current=path)
            try:
                actual, read, _ = hash_file(opened, path, buffer, from_drive=from_drive)
            except OSError as exc:
                # A read error on a drive that is there is what a failing sector looks like; it is reported,
                # not flagged, since it is just as often a permission problem.
                report.corrupted_files.append(
                    {
                        **known,
                        "expected": index_checksum(checksum),
                        "actual": None,
                        "reason": f"read error: {exc.strerror or exc}",
                    }
                )
            else:
                report.bytes_read += read
                if actual == checksum:
                    report.validated_files += 1
                    to_verify.append(file_id)
                elif sidecar:
                    st = opened.lstat(path)
                    report.sidecars_changed.append({**known, "recorded": True})
                    to_record.append((file_id, hothash, path, actual, st.st_size, st.st_mtime_ns))
                else:
                    report.corrupted_files.append(
                        {
                            **known,
                            "expected": index_checksum(checksum),
                            "actual": index_checksum(actual),
                            "reason": REASON_CHECKSUM,
                        }
                    )
                    if status == ImageFile.Status.PRESENT:
                        to_flag.append(file_id)
            progress(done=done, bytes_read=report.bytes_read)
        elif sidecar and on_disk != (size, mtime_ns):
            report.sidecars_changed.append({**known, "recorded": False})
        else:
            reason = None
            if on_disk[0] != size:
                reason = REASON_SIZE
                if status == ImageFile.Status.PRESENT:
                    to_flag.append(file_id)  # other bytes for certain
            elif on_disk[1] != mtime_ns:
                reason = REASON_MTIME  # maybe only touched: a scan or a full validation will tell
            elif status == ImageFile.Status.MODIFIED:
                reason = REASON_FLAGGED
            if reason:
                report.corrupted_files.append(
                    {**known, "expected": index_checksum(checksum), "actual": None, "reason": reason}
                )
            else:
                report.validated_files += 1
            if done % 500 == 0:
                progress(done=done)


def _record_verified(file_ids: list[int]) -> None:
    """The rows whose bytes a full validation read back equal to their checksum: verified now (issue 17)."""
    now = timezone.now()
    with transaction.atomic():
        for start in range(0, len(file_ids), 500):
            ImageFile.objects.filter(pk__in=file_ids[start : start + 500]).update(verified_at=now)


def _flag_modified(file_ids: list[int]) -> int:
    flagged = 0
    with transaction.atomic():
        for start in range(0, len(file_ids), 500):
            flagged += ImageFile.objects.filter(
                pk__in=file_ids[start : start + 500], status=ImageFile.Status.PRESENT
            ).update(status=ImageFile.Status.MODIFIED)
    return flagged


def accept_checksums(file_ids: list[int]) -> dict:
    """Take each file's bytes as they are now as its known-good bytes: re-hash it, store checksum, size and
    mtime_ns, and set it `present`. The affected session indexes and the master index are rewritten.

    Every storage involved must be available and writable (else 409, and nothing is changed).
    """

    wanted = list(dict.fromkeys(file_ids))
    rows = {
        f.pk: f
        for f in ImageFile.objects.filter(pk__in=wanted).select_related(
            "file_storage", "import_session__file_storage", "import_session__default_author"
        )
    }
    refused = [{"file_id": i, "reason": "no such file"} for i in wanted if i not in rows]
    by_storage: dict[int, list[ImageFile]] = {}
    for file_id in wanted:
        if file_id in rows:
            by_storage.setdefault(rows[file_id].file_storage_id, []).append(rows[file_id])
    storages = {files[0].file_storage_id: files[0].file_storage for files in by_storage.values()}
    for storage in storages.values():
        storage_require_available(storage, writable=True)

    accepted = []
    buffer = bytearray(CHUNK)
    for storage_id, files in by_storage.items():
        storage = storages[storage_id]
        with storage_lock(storage, wait=settings.IMALINK_LOCK_WAIT):
            storage_require_available(storage, writable=True)
            sessions = {}
            try:
                with drive.Storage(storage.full_path) as opened:
                    for image_file in files:
                        entry = _accept_one(opened, image_file, buffer)
                        if "reason" in entry:
                            refused.append(entry)
                        else:
                            accepted.append(entry)
                            sessions[image_file.import_session_id] = image_file.import_session
            except drive.UnsafeLayout as exc:
                mark_unsafe(storage, exc)
                raise
            for session in sessions.values():
                write_session_index(session)
            if sessions:
                write_master_index(storage)
    refused.sort(key=lambda e: e["file_id"])
    logger.info("accepted the checksums of %d files, refused %d", len(accepted), len(refused))
    return {"accepted": accepted, "refused": refused}


def _accept_one(opened: drive.Storage, image_file: ImageFile, buffer: bytearray) -> dict:
    file_id, path = image_file.pk, image_file.relative_path
    if image_file.status == ImageFile.Status.MISSING:
        return {"file_id": file_id, "reason": "the file is marked missing: a scan decides where it is"}
    try:
        checksum, _, before = hash_file(opened, path, buffer, from_drive=True)
        after = opened.lstat(path)
    except FileNotFoundError:
        return {"file_id": file_id, "reason": f"the file is missing on disk at {path}"}
    except OSError as exc:
        return {"file_id": file_id, "reason": f"the file cannot be read: {exc.strerror or exc}"}
    if (before.st_size, before.st_mtime_ns, before.st_ino) != (after.st_size, after.st_mtime_ns, after.st_ino):
        return {"file_id": file_id, "reason": "the file changed while it was read; try again"}
    ImageFile.objects.filter(pk=file_id).update(
        checksum=checksum, file_size=after.st_size, mtime_ns=after.st_mtime_ns, status=ImageFile.Status.PRESENT
    )
    return {
        "file_id": file_id,
        "path": path,
        "old_checksum": index_checksum(image_file.checksum),
        "new_checksum": index_checksum(checksum),
    }


def run_validate_job(job, ctx) -> dict:
    params = job.params
    if params.get("incremental"):
        return validate_incrementally(
            job.storage, budget_s=params.get("budget_s"), progress=ctx.progress, should_stop=ctx.check_cancelled
        )
    return validate_storage(
        job.storage, mode=params.get("mode", "quick"), progress=ctx.progress, should_stop=ctx.check_cancelled
    ).as_dict()


def validate_incrementally(
    storage, *, budget_s: float | None, cycle_days: int = 30, progress=None, should_stop=None
) -> dict:
    """One night's slice of the monthly full validation, as git-annex's `fsck --incremental` does.

    Each run re-hashes files in path order from where the last one stopped, for at most budget_s seconds,
    and records its place in a ValidationCheckpoint. When a cycle reaches the end it is complete, and the
    next cycle starts once it is cycle_days old, so a huge storage is validated over several nights without
    ever blocking a worker for a day.
    """

    checkpoint, _ = ValidationCheckpoint.objects.get_or_create(storage=storage)
    now = timezone.now()
    if checkpoint.completed_at and (now - checkpoint.cycle_started_at).days < cycle_days:
        return {
            "skipped": True,
            "reason": f"a full validation cycle completed on {checkpoint.completed_at:%Y-%m-%d}",
            "storage_uuid": str(storage.storage_uuid),
        }
    if checkpoint.completed_at or not checkpoint.cycle_started_at:
        checkpoint.cycle_started_at, checkpoint.completed_at, checkpoint.cursor = now, None, ""
    report = validate_storage(
        storage,
        mode="full",
        budget_s=budget_s,
        start_after=checkpoint.cursor,
        progress=progress,
        should_stop=should_stop,
    )
    checkpoint.cursor = report.cursor if not report.complete else ""
    checkpoint.last_run_at = timezone.now()
    checkpoint.files_checked_in_cycle = (
        checkpoint.files_checked_in_cycle if report.started_after else 0
    ) + report.files_checked
    if report.complete:
        checkpoint.completed_at = checkpoint.last_run_at
    checkpoint.save()
    return {
        **report.as_dict(),
        "cycle_started_at": checkpoint.cycle_started_at.isoformat(),
        "cycle_files_checked": checkpoint.files_checked_in_cycle,
    }
