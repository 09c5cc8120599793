"""Scanning a storage (DESIGN §6): keep the database true to what the user did to photos/ in a file explorer.

Files whose size and mtime_ns match their row are trusted and never read. A path that appeared is matched to a
row that disappeared first by size, then confirmed by checksum: that is a move. A row's path holding other
bytes is `modified`; a row whose file is nowhere is `missing` (never deleted); anything else is `new`.
An unavailable storage is refused before anything is read or written.
"""

import logging
import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from django.db import transaction
from django.utils import timezone

from imports.checksums import file_checksum
from imports.models import ImageFile
from imports.sources import is_junk, is_junk_dir
from storages.locks import storage_lock
from storages.services import storage_require_available

logger = logging.getLogger("imalink.indexing")

PHOTOS = "photos"


@dataclass
class DiskFile:
    path: str  # storage-relative POSIX path, "photos/..."
    size: int
    mtime_ns: int
    checksum: str | None = None


@dataclass
class RowInfo:
    id: int
    path: str
    size: int
    mtime_ns: int
    checksum: str
    status: str
    hothash: str
    session_id: int


@dataclass
class ScanReport:
    storage_uuid: str
    dry_run: bool
    adopt_new: bool
    changes_detected: bool = False
    moved_files: list = field(default_factory=list)
    missing_files: list = field(default_factory=list)
    new_files: list = field(default_factory=list)
    modified_files: list = field(default_factory=list)
    restored_files: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    unchanged_count: int = 0
    files_on_disk: int = 0
    bytes_read: int = 0
    duration_s: float = 0.0
    affected_sessions: list = field(default_factory=list)
    adopted: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def walk_photos(root) -> tuple[list[DiskFile], list[dict]]:
    """Every regular file under photos/, by os.scandir; junk is ignored and symlinks are not followed."""
    found: list[DiskFile] = []
    skipped: list[dict] = []
    stack = [(os.path.join(root, PHOTOS), PHOTOS)]
    while stack:
        folder, relative = stack.pop()
        try:
            iterator = os.scandir(folder)
        except OSError as exc:
            skipped.append({"path": relative, "reason": f"folder cannot be read: {exc.strerror}"})
            continue
        with iterator:
            for entry in iterator:
                name = entry.name
                rel = f"{relative}/{name}"
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if not is_junk_dir(name):
                            stack.append((entry.path, rel))
                        continue
                    if is_junk(name) or not entry.is_file(follow_symlinks=False):
                        continue
                    rel.encode("utf-8")
                    st = entry.stat(follow_symlinks=False)
                except UnicodeEncodeError:
                    skipped.append({"path": rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), "reason": "the name is not valid UTF-8; rename it to import it"})
                    continue
                except OSError as exc:
                    skipped.append({"path": rel, "reason": f"cannot be read: {exc.strerror}"})
                    continue
                found.append(DiskFile(rel, st.st_size, st.st_mtime_ns))
    return found, skipped


def _load_rows(storage) -> list[RowInfo]:
    rows = ImageFile.objects.filter(file_storage=storage).values_list(
        "id", "relative_path", "file_size", "mtime_ns", "checksum", "status", "photo__hothash", "import_session_id"
    )
    return [RowInfo(*row) for row in rows.iterator(chunk_size=5000)]


class _Reader:
    """Checksums files on demand and counts every byte read."""

    def __init__(self, root, should_stop=None):
        self.root, self.bytes_read, self.should_stop = root, 0, should_stop

    def checksum(self, disk: DiskFile) -> str | None:
        if disk.checksum is None:
            if self.should_stop:
                self.should_stop()
            try:
                disk.checksum = file_checksum(os.path.join(self.root, disk.path))
            except OSError:
                return None
            self.bytes_read += disk.size
        return disk.checksum


def scan_storage(storage, *, dry_run: bool = False, adopt_new: bool = False, progress=None, should_stop=None) -> ScanReport:
    progress = progress or (lambda **kw: None)
    started = time.monotonic()
    report = ScanReport(storage_uuid=str(storage.storage_uuid), dry_run=dry_run, adopt_new=adopt_new)
    storage_require_available(storage)
    with storage_lock(storage, wait=_lock_wait(), should_stop=should_stop):
        storage_require_available(storage)  # checked again under the lock: the drive may have gone meanwhile
        root = str(storage.full_path)
        progress(stage="walking", total=None, done=0, force=True)
        disk_files, report.skipped = walk_photos(root)
        report.files_on_disk = len(disk_files)
        rows = _load_rows(storage)
        progress(stage="comparing", total=len(disk_files), done=0, force=True)
        plan = _classify(disk_files, rows, _Reader(root, should_stop), report, progress)
        # The drive must still be there before anything is marked missing: an unplug during the walk
        # looks exactly like every file having been deleted.
        storage_require_available(storage)
        report.changes_detected = bool(report.moved_files or report.missing_files or report.new_files or report.modified_files or report.restored_files)
        if not dry_run:
            _apply(storage, plan)
            if adopt_new and plan["new"]:
                from imports.pipeline import adopt_in_place

                report.adopted = adopt_in_place(storage=storage, files=plan["new"], should_stop=should_stop).as_dict()
                adopted_paths = set(report.adopted.get("files", []))
                for entry in report.new_files:
                    entry["adopted"] = entry["path"] in adopted_paths
                if report.adopted.get("session_id"):
                    plan["sessions"].add(report.adopted["session_id"])
            report.affected_sessions = sorted(plan["sessions"])
            _rewrite_indexes(storage, plan["sessions"])
        else:
            report.affected_sessions = sorted(plan["sessions"])
    report.duration_s = round(time.monotonic() - started, 3)
    progress(stage="done", done=report.files_on_disk, force=True)
    logger.info(
        "scan of %s: %d moved, %d missing, %d new, %d modified, %d unchanged, %d bytes read in %.2fs%s",
        storage.storage_uuid, len(report.moved_files), len(report.missing_files), len(report.new_files),
        len(report.modified_files), report.unchanged_count, report.bytes_read, report.duration_s, " (dry run)" if dry_run else "",
    )
    return report


def _lock_wait() -> float:
    from django.conf import settings

    return settings.IMALINK_LOCK_WAIT


def _classify(disk_files, rows, reader: _Reader, report: ScanReport, progress) -> dict:
    disk_by_path = {d.path: d for d in disk_files}
    live_at_path: dict[str, RowInfo] = {}
    gone: list[RowInfo] = []  # rows whose file is not at their path (any more)
    touched: list[tuple[int, int]] = []  # (row id, new mtime_ns): same bytes, new time
    restored: list[RowInfo] = []
    changed_paths: set[str] = set()  # paths whose bytes differ from their row's: a new file or an edit

    # Rows already missing come last, so a present row keeps its path if an old missing row names it too.
    rows = sorted(rows, key=lambda r: r.status == ImageFile.Status.MISSING)
    for i, row in enumerate(rows):
        disk = disk_by_path.get(row.path)
        if row.status == ImageFile.Status.MISSING:
            if disk is not None and disk.size == row.size and disk.path not in live_at_path and reader.checksum(disk) == row.checksum:
                restored.append(row)
                live_at_path[row.path] = row
                if disk.mtime_ns != row.mtime_ns:
                    touched.append((row.id, disk.mtime_ns))
            else:
                gone.append(row)
            continue
        if disk is None:
            gone.append(row)
            continue
        live_at_path[row.path] = row
        if disk.size == row.size and disk.mtime_ns == row.mtime_ns and row.status == ImageFile.Status.PRESENT:
            report.unchanged_count += 1  # trusted without reading a byte
            continue
        if disk.size == row.size and reader.checksum(disk) == row.checksum:
            report.unchanged_count += 1
            if disk.mtime_ns != row.mtime_ns:
                touched.append((row.id, disk.mtime_ns))
            if row.status == ImageFile.Status.MODIFIED:
                restored.append(row)
            continue
        changed_paths.add(row.path)
        if i % 1000 == 0:
            progress(done=i)

    # Candidates for moves: paths no row claims, and paths whose bytes changed (something may have moved onto them).
    candidates = [d for d in disk_files if d.path not in live_at_path or d.path in changed_paths]
    gone_by_size: dict[int, list[RowInfo]] = defaultdict(list)
    for row in gone:
        gone_by_size[row.size].append(row)
    for row in [live_at_path[p] for p in changed_paths]:
        gone_by_size[row.size].append(row)  # its own bytes may have moved elsewhere (a swap)

    moves: list[tuple[RowInfo, DiskFile]] = []
    matched_rows: set[int] = set()
    claimed_paths: set[str] = set()
    for disk in sorted(candidates, key=lambda d: d.path):
        same_size = [r for r in gone_by_size.get(disk.size, ()) if r.id not in matched_rows and r.path != disk.path]
        if not same_size:
            continue
        checksum = reader.checksum(disk)
        match = next((r for r in same_size if r.checksum == checksum), None)
        if match is not None:
            moves.append((match, disk))
            matched_rows.add(match.id)
            claimed_paths.add(disk.path)

    modified, missing = [], []
    for path in sorted(changed_paths):
        row = live_at_path[path]
        if row.id in matched_rows:
            continue  # its bytes moved elsewhere; whatever is at its old path is judged on its own
        if path in claimed_paths:
            missing.append(row)  # another file moved onto its path, and its own bytes are nowhere
        elif row.status != ImageFile.Status.MODIFIED:  # an edit already reported stays modified, quietly
            modified.append((row, disk_by_path[path]))
    for row in gone:
        if row.id not in matched_rows and row.status != ImageFile.Status.MISSING:
            missing.append(row)

    # New: not claimed by a move, and either at a path no row holds, or at a path whose own row's bytes moved away.
    new = [d for d in candidates if d.path not in claimed_paths and (d.path not in live_at_path or live_at_path[d.path].id in matched_rows)]

    sessions: set[int] = set()
    for row, disk in moves:
        report.moved_files.append({"hothash": row.hothash, "old_path": row.path, "new_path": disk.path, "session_id": row.session_id})
        sessions.add(row.session_id)
    for row in missing:
        report.missing_files.append({"hothash": row.hothash, "path": row.path, "session_id": row.session_id})
        sessions.add(row.session_id)
    for row, disk in modified:
        report.modified_files.append({"hothash": row.hothash, "path": row.path, "session_id": row.session_id})
        sessions.add(row.session_id)
    for row in restored:
        report.restored_files.append({"hothash": row.hothash, "path": row.path, "session_id": row.session_id})
        sessions.add(row.session_id)
    for disk in sorted(new, key=lambda d: d.path):
        report.new_files.append({"path": disk.path, "file_size": disk.size, "adopted": False})
    report.bytes_read = reader.bytes_read
    return {"moves": moves, "missing": missing, "modified": modified, "touched": touched, "restored": restored, "new": new, "sessions": sessions}


def _apply(storage, plan) -> None:
    now = timezone.now()
    with transaction.atomic():
        moved_ids = [row.id for row, _ in plan["moves"]]
        # Two steps, so that no moment holds two present rows at one path (e.g. two files that swapped names):
        # the unique constraint ignores missing rows.
        ImageFile.objects.filter(pk__in=moved_ids).update(status=ImageFile.Status.MISSING)
        for row, disk in plan["moves"]:
            ImageFile.objects.filter(pk=row.id).update(relative_path=disk.path, mtime_ns=disk.mtime_ns, last_seen_at=now)
        missing_ids = [row.id for row in plan["missing"]]
        ImageFile.objects.filter(pk__in=missing_ids).update(status=ImageFile.Status.MISSING)
        ImageFile.objects.filter(pk__in=[row.id for row, _ in plan["modified"]]).update(status=ImageFile.Status.MODIFIED, last_seen_at=now)
        ImageFile.objects.filter(pk__in=moved_ids + [row.id for row in plan["restored"]]).update(status=ImageFile.Status.PRESENT, last_seen_at=now)
        for row_id, mtime_ns in plan["touched"]:
            ImageFile.objects.filter(pk=row_id).update(mtime_ns=mtime_ns)
        type(storage).objects.filter(pk=storage.pk).update(last_scan_at=now)
        storage.last_scan_at = now


def _rewrite_indexes(storage, session_ids) -> None:
    from imports.models import ImportSession

    from .writer import write_master_index, write_session_index

    for session in ImportSession.objects.filter(pk__in=session_ids).select_related("file_storage", "default_author"):
        write_session_index(session)
    write_master_index(storage)


def run_scan_job(job, ctx) -> dict:
    report = scan_storage(
        job.storage,
        dry_run=bool(job.params.get("dry_run")),
        adopt_new=bool(job.params.get("adopt_new")),
        progress=ctx.progress,
        should_stop=ctx.check_cancelled,
    )
    return report.as_dict()
