"""Repair from a copy (issue 17 point 6), as git-annex's fsck and get do: each file of a storage that is corrupt, or
missing while the storage is available, gets its bytes back from a good copy on another available storage.

- Corrupt is the verdict a full validation records (and a scan's, for other bytes at a file's path): the row is
  `modified`. A file whose bytes are equal to its checksum again is only marked present.
- The damaged file is moved into `.imalink/quarantine/<UTC>/<its path>` (drive.Storage.rename: nothing deleted), and
  the good copy is put back with the import's verified copy (temp, fsync, re-read, compare, rename), read from a
  descriptor opened through the other storage, so nothing on either drive is followed. A copy that fails
  verification is tried from the next storage; when none is good the damaged file goes back where it was.
- A good copy is a present file with the recorded checksum on another storage that is available now, the
  most recently verified first. A file whose bytes are nowhere else is reported in no_good_copy, untouched.
- The storage's lock is held throughout; the session indexes that changed and the master index are rewritten.
"""

import errno
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import PurePosixPath

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from imalink.errors import ImalinkError
from imports.checksums import drive_checksum
from imports.copying import CopyVerificationFailed, copy_verified
from imports.models import ImageFile, ImportSession
from indexing.writer import write_master_index, write_session_index
from storages import drive
from storages.layout import QUARANTINE_DIR
from storages.locks import storage_lock
from storages.services import storage_require_available
from storages.unsafe import mark_unsafe

logger = logging.getLogger("imalink.copies")
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


@dataclass
class RepairReport:
    storage_uuid: str
    checked: int = 0
    repaired: list = field(default_factory=list)
    no_good_copy: list = field(default_factory=list)
    failed: list = field(default_factory=list)  # a good copy was found but could not be put back (disk full, ...)
    bytes_copied: int = 0
    affected_sessions: list = field(default_factory=list)
    duration_s: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


class _Sources:
    """Other storages' present files with a checksum, each storage's availability checked once per run."""

    def __init__(self, storage):
        self.storage = storage
        self.available: dict[int, bool] = {}

    def _is_available(self, other) -> bool:
        if other.pk not in self.available:
            try:
                storage_require_available(other)
                self.available[other.pk] = True
            except ImalinkError:
                self.available[other.pk] = False
        return self.available[other.pk]

    def for_checksum(self, checksum: str) -> list[ImageFile]:
        candidates = (
            ImageFile.objects.filter(checksum=checksum, status=ImageFile.Status.PRESENT)
            .exclude(file_storage=self.storage)
            .select_related("file_storage")
            .order_by(F("verified_at").desc(nulls_last=True), "id")
        )
        return [c for c in candidates if c.file_storage.is_active and self._is_available(c.file_storage)]


def repair_storage(storage, *, progress=None, should_stop=None) -> RepairReport:
    """Repair every corrupt or missing file of the storage that a good copy elsewhere can restore."""
    progress = progress or (lambda **kw: None)
    started = time.monotonic()
    report = RepairReport(storage_uuid=str(storage.storage_uuid))
    storage_require_available(storage, writable=True)
    with storage_lock(storage, wait=settings.IMALINK_LOCK_WAIT, should_stop=should_stop):
        storage_require_available(storage, writable=True)  # again under the lock: the drive may have gone
        damaged = list(
            ImageFile.objects.filter(
                file_storage=storage, status__in=[ImageFile.Status.MODIFIED, ImageFile.Status.MISSING]
            )
            .select_related("photo")
            .order_by("relative_path", "id")
        )
        progress(stage="repairing", total=len(damaged), done=0, force=True)
        stamp = datetime.now(dt_timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        sources = _Sources(storage)
        sessions: set[int] = set()
        try:
            with drive.Storage(storage.full_path) as opened:
                for done, row in enumerate(damaged, start=1):
                    if should_stop:
                        should_stop()
                    progress(current=row.relative_path)
                    report.checked += 1
                    if _repair_one(storage, opened, row, stamp, sources, report):
                        sessions.add(row.import_session_id)
                    progress(done=done, repaired=len(report.repaired), no_good_copy=len(report.no_good_copy))
        except drive.UnsafeLayout as exc:
            mark_unsafe(storage, exc)
            raise
        if sessions:
            for session in ImportSession.objects.filter(pk__in=sessions, file_storage=storage).select_related(
                "file_storage", "default_author"
            ):
                write_session_index(session)
            write_master_index(storage)
        report.affected_sessions = sorted(sessions)
    report.duration_s = round(time.monotonic() - started, 3)
    progress(stage="done", current=None, force=True)
    logger.info(
        "repair of %s: %d repaired, %d without a good copy, %d failed, of %d checked",
        storage.storage_uuid,
        len(report.repaired),
        len(report.no_good_copy),
        len(report.failed),
        report.checked,
    )
    return report


def _known(row: ImageFile) -> dict:
    return {
        "file_id": row.pk,
        "hothash": row.photo.hothash,
        "path": row.relative_path,
        "status": row.status,
        "session_id": row.import_session_id,
    }


def _taken_paths(storage, row: ImageFile) -> set[str]:
    """The paths of the storage's other files on record: a copy put back never lands on one of them."""
    return set(
        ImageFile.objects.filter(file_storage=storage)
        .exclude(status=ImageFile.Status.MISSING)
        .exclude(pk=row.pk)
        .values_list("relative_path", flat=True)
    )


def _mark_present(row: ImageFile, opened: drive.Storage, path: str) -> None:
    st = opened.lstat(path)
    now = timezone.now()
    ImageFile.objects.filter(pk=row.pk).update(
        relative_path=path,
        status=ImageFile.Status.PRESENT,
        file_size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        last_seen_at=now,
        verified_at=now,
    )


def _repair_one(storage, opened: drive.Storage, row: ImageFile, stamp: str, sources: _Sources, report) -> bool:
    """Repair one row; True when its row changed (its session index must be rewritten)."""
    known = _known(row)
    path = row.relative_path
    on_disk = opened.kind(path)  # a link or a pipe where the file belongs raises UnsafeLayout
    if on_disk == "file" and row.status == ImageFile.Status.MODIFIED:
        try:
            if drive_checksum(opened, path) == row.checksum:  # its bytes are good again: nothing to copy
                _mark_present(row, opened, path)
                report.repaired.append({**known, "quarantined": None, "source_storage_uuid": None, "source_path": None})
                return True
        except OSError:
            pass  # unreadable: damaged, and repaired like any other
    damaged_here = on_disk == "file" and row.status == ImageFile.Status.MODIFIED
    candidates = sources.for_checksum(row.checksum)
    if not candidates:
        report.no_good_copy.append({**known, "reason": "no available storage holds a present file with its checksum"})
        return False
    quarantined = None
    if damaged_here:
        quarantined = (QUARANTINE_DIR / stamp / path).as_posix()
        opened.rename(path, quarantined, create_folders=True)
    taken = _taken_paths(storage, row)
    problems, storage_trouble = [], None
    for candidate in candidates:
        source = candidate.file_storage
        try:
            with drive.Storage(source.full_path) as other:
                fd, st = other.open_read(candidate.relative_path)
            if st.st_size != row.file_size:
                os.close(fd)
                problems.append(f"{source.display_name}: {candidate.relative_path} has another size now")
                continue
            landed, copied = copy_verified(
                fd,
                checksum=row.checksum,
                size=row.file_size,
                root=storage.full_path,
                relative=PurePosixPath(path),
                taken_paths=taken,
            )
        except CopyVerificationFailed as exc:
            problems.append(f"{source.display_name}: {candidate.relative_path} failed verification ({exc})")
            continue
        except OSError as exc:
            if exc.errno in STORAGE_ERRNOS:  # this storage cannot take the copy: no other source would help
                storage_trouble = f"{storage.display_name} cannot take the copy: {exc.strerror}"
                break
            problems.append(f"{source.display_name}: {candidate.relative_path}: {exc.strerror or exc}")
            continue
        except drive.UnsafeLayout as exc:
            root = str(storage.full_path)
            if exc.path == root or exc.path.startswith(root + "/"):
                raise  # this storage is unsafe: the run stops and says so
            problems.append(f"{source.display_name}: {exc.reason}")
            continue
        _mark_present(row, opened, landed)
        report.bytes_copied += row.file_size if copied else 0
        report.repaired.append(
            {
                **known,
                "path": landed,
                "old_path": path,
                "quarantined": quarantined,
                "source_storage_uuid": str(source.storage_uuid),
                "source_path": candidate.relative_path,
            }
        )
        logger.info("repaired %s on %s from %s", landed, storage.storage_uuid, source.storage_uuid)
        return True
    if quarantined is not None:
        opened.rename(quarantined, path)  # no good copy could be put back: the damaged file returns to its place
    if storage_trouble:
        report.failed.append({**known, "reason": storage_trouble})
    else:
        report.no_good_copy.append({**known, "reason": "every copy found was unusable: " + "; ".join(problems)})
    return False


def run_repair_job(job, ctx) -> dict:
    return repair_storage(job.storage, progress=ctx.progress, should_stop=ctx.check_cancelled).as_dict()


JOB_RUNNERS: dict = {"repair": run_repair_job}
