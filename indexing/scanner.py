"""Scanning a storage (DESIGN §6): keep the database true to what the user did to photos/ in a file explorer.

Files whose size and mtime_ns match their row are trusted and never read. A path that appeared is matched to a
row that disappeared first by size, then confirmed by checksum: that is a move. A row's path holding other
bytes is `modified`; a row whose file is nowhere is `missing` (never deleted); anything else is `new`.
An unavailable storage is refused before anything is read or written.

Sidecars are edited by other programs, so their bytes may change and that is not damage (docs/MEDIA.md): a
sidecar whose bytes changed is read again and its new checksum recorded, never reported `modified`. A sidecar
that left its path with other bytes follows its item when a file of the same name stands in a folder where its
item now is (a photo and its sidecar moved, the sidecar edited on the way). What it says is applied to its item
when it is newer than the user's last change in ImaLink. A sidecar that is nowhere is missing, as any file.
"""

import logging
import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from imports import metadata
from imports.checksums import drive_checksum
from imports.models import ImageFile, ImportSession
from imports.pipeline import adopt_in_place
from imports.sources import is_junk, is_junk_dir
from storages import drive
from storages.locks import storage_lock
from storages.services import storage_require_available
from storages.unsafe import mark_unsafe

from .writer import write_master_index, write_session_index

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
    role: str = ImageFile.Role.ORIGINAL


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
    sidecars_updated: list = field(default_factory=list)
    restored_files: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    unchanged_count: int = 0
    files_on_disk: int = 0
    bytes_read: int = 0
    duration_s: float = 0.0
    affected_sessions: list = field(default_factory=list)
    adopted: dict | None = None
    # adopt_new: files that were moved here from another storage, recorded as moves (issue 17, copies/reconcile.py),
    # and new files left untracked until the storage they left is back.
    moved_in: list = field(default_factory=list)
    held_back: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """What a scan will write: each change with the row it is about (and the file now standing for it)."""

    moves: list[tuple[RowInfo, DiskFile]]
    missing: list[RowInfo]
    modified: list[tuple[RowInfo, DiskFile]]
    sidecars: list[tuple[RowInfo, DiskFile]]  # a sidecar's new bytes, perhaps at a new path (see the docstring)
    touched: list[tuple[int, int]]  # (row id, new mtime_ns): same bytes, new time
    restored: list[RowInfo]
    new: list[DiskFile]
    sessions: set[int]  # sessions whose index must be rewritten (scan_storage adds the one an adoption made)


def walk_photos(root) -> tuple[set[tuple[str, int, int]], list[dict]]:
    """(path, size, mtime_ns) of every plain file under photos/, walked by storages.drive from the storage's
    descriptor, each folder opened with O_NOFOLLOW, nothing followed.

    A symbolic link, named pipe, socket or device anywhere under photos/ (junk folders aside) raises
    UnsafeLayout: the storage is unsafe, and nothing may be judged missing from a walk that met one.
    Junk folders are skipped here; junk files are filtered later, and only among files no row knows,
    which keeps this loop as close to a bare walk as Python allows.
    """
    found: set[tuple[str, int, int]] = set()
    skipped: list[dict] = []
    add = found.add

    def on_error(relative: str, exc: OSError) -> None:
        skipped.append({"path": relative, "reason": f"cannot be read: {exc.strerror}"})

    with drive.Storage(root) as storage:
        try:
            photos = drive.open_dir(storage.fd, PHOTOS, shown=storage.root)
        except OSError as exc:
            skipped.append({"path": PHOTOS, "reason": f"folder cannot be read: {exc.strerror}"})
            return found, skipped
        try:
            for relative, st in drive.walk_files(
                photos, skip_dir=is_junk_dir, shown=storage.root, on_error=on_error, ordered=False, named=PHOTOS
            ):
                add((relative, st.st_size, st.st_mtime_ns))
        finally:
            os.close(photos)
    return found, skipped


def _usable(path: str, skipped: list[dict]) -> bool:
    """Whether a file no row knows is worth reporting: not OS junk, and a name the database can hold."""
    if is_junk(path.rsplit("/", 1)[1]):
        return False
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        skipped.append({"path": shown, "reason": "the name is not valid UTF-8; rename the file to track it"})
        return False
    return True


FULL_ROW = (
    "id",
    "relative_path",
    "file_size",
    "mtime_ns",
    "checksum",
    "status",
    "photo__hothash",
    "import_session_id",
    "role",
)


def _fetch(queryset) -> list[tuple]:
    """Run a values_list query straight through the cursor: at 100,000 rows, Django's per-row iterator costs
    more than the query."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _present_keys(storage) -> set[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every present row: all the fast path needs."""
    rows = ImageFile.objects.filter(file_storage=storage, status=ImageFile.Status.PRESENT)
    return set(_fetch(rows.values_list("relative_path", "file_size", "mtime_ns")))


def _full_rows(storage, *, paths=None, not_present=False) -> list[RowInfo]:
    queryset = ImageFile.objects.filter(file_storage=storage)
    if not_present:
        return [RowInfo(*r) for r in _fetch(queryset.exclude(status=ImageFile.Status.PRESENT).values_list(*FULL_ROW))]
    paths, found = sorted(paths), []
    for start in range(0, len(paths), 500):
        chunk = queryset.filter(status=ImageFile.Status.PRESENT, relative_path__in=paths[start : start + 500])
        found.extend(RowInfo(*r) for r in _fetch(chunk.values_list(*FULL_ROW)))
    return found


class _Reader:
    """Checksums files on demand, through the storage's descriptor (drive.Storage), and counts every byte read."""

    def __init__(self, storage: drive.Storage, should_stop=None):
        self.drive, self.bytes_read, self.should_stop = storage, 0, should_stop

    def checksum(self, disk: DiskFile) -> str | None:
        if disk.checksum is None:
            if self.should_stop:
                self.should_stop()
            try:
                disk.checksum = drive_checksum(self.drive, disk.path)
            except OSError:
                return None
            self.bytes_read += disk.size
        return disk.checksum


def scan_storage(
    storage, *, dry_run: bool = False, adopt_new: bool = False, progress=None, should_stop=None
) -> ScanReport:
    progress = progress or (lambda **kw: None)
    started = time.monotonic()
    report = ScanReport(storage_uuid=str(storage.storage_uuid), dry_run=dry_run, adopt_new=adopt_new)
    storage_require_available(storage)
    with storage_lock(storage, wait=_lock_wait(), should_stop=should_stop):
        storage_require_available(storage)  # checked again under the lock: the drive may have gone meanwhile
        root = str(storage.full_path)
        progress(stage="walking", total=None, done=0, force=True)
        try:
            with drive.Storage(root) as opened:
                disk, report.skipped = walk_photos(root)
                present = _present_keys(storage)
                progress(stage="comparing", total=len(disk), done=0, force=True)
                plan = _classify(storage, disk, present, _Reader(opened, should_stop), report, progress)
        except drive.UnsafeLayout as exc:
            # Something under photos/ is not a plain file or folder where one belongs: the storage is unsafe,
            # recorded so, and nothing is marked missing or moved on the word of this walk.
            mark_unsafe(storage, exc)
            raise
        # The drive must still be there before anything is marked missing: an unplug during the walk
        # looks exactly like every file having been deleted.
        storage_require_available(storage)
        report.changes_detected = bool(
            report.moved_files
            or report.missing_files
            or report.new_files
            or report.modified_files
            or report.sidecars_updated
            or report.restored_files
        )
        if not dry_run:
            _apply(storage, plan)
            _apply_sidecars(storage, plan.sidecars, report)
            new = _moved_in(storage, plan, report, should_stop) if adopt_new and plan.new else plan.new
            if adopt_new and new:
                try:
                    report.adopted = adopt_in_place(storage=storage, files=new, should_stop=should_stop).as_dict()
                except drive.UnsafeLayout as exc:  # a new file swapped for a link or a pipe since the walk
                    mark_unsafe(storage, exc)
                    raise
                adopted_paths = set(report.adopted.get("files", []))
                for entry in report.new_files:
                    entry["adopted"] = entry["path"] in adopted_paths
                if report.adopted.get("session_id"):
                    plan.sessions.add(report.adopted["session_id"])
            report.affected_sessions = sorted(plan.sessions)
            if report.changes_detected or report.adopted:
                _rewrite_indexes(storage, plan.sessions)
        else:
            report.affected_sessions = sorted(plan.sessions)
    report.duration_s = round(time.monotonic() - started, 3)
    progress(stage="done", done=report.files_on_disk, force=True)
    logger.info(
        "scan of %s: %d moved, %d missing, %d new, %d modified, %d unchanged, %d bytes read in %.2fs%s",
        storage.storage_uuid,
        len(report.moved_files),
        len(report.missing_files),
        len(report.new_files),
        len(report.modified_files),
        report.unchanged_count,
        report.bytes_read,
        report.duration_s,
        " (dry run)" if dry_run else "",
    )
    return report


# Finders of files moved in from other storages (issue 17): copies/reconcile.py, above indexing, registers one.
# Each is `finder(storage, new_files, should_stop=) -> found`, run under the scan's lock before adopt_new adopts
# what is left; `found` has .moves (reported), .held_back, .claimed (paths not to adopt) and .sessions (of this
# storage, whose indexes the scan rewrites).
CROSS_MOVE_FINDERS: list = []


def register_cross_move_finder(finder) -> None:
    if finder not in CROSS_MOVE_FINDERS:
        CROSS_MOVE_FINDERS.append(finder)


def _moved_in(storage, plan: ScanPlan, report: ScanReport, should_stop) -> list[DiskFile]:
    """The new files left for adoption once each finder has recorded the ones moved in from another storage."""
    new = plan.new
    for finder in CROSS_MOVE_FINDERS:
        found = finder(storage, new, should_stop=should_stop)
        report.moved_in.extend(found.moves)
        report.held_back.extend(found.held_back)
        plan.sessions.update(found.sessions)
        moved = {move["new_path"]: move["from_storage_uuid"] for move in found.moves}
        for entry in report.new_files:
            if entry["path"] in moved:
                entry.update(adopted=True, moved_from_storage_uuid=moved[entry["path"]])
        new = [d for d in new if d.path not in found.claimed]
    return new


def _lock_wait() -> float:

    return settings.IMALINK_LOCK_WAIT


@dataclass(slots=True)
class _InPlace:
    """Every row the fast path could not settle, judged against the file at its own path."""

    live_at_path: dict[str, RowInfo] = field(default_factory=dict)
    gone: list[RowInfo] = field(default_factory=list)  # rows whose file is not at their path (any more)
    touched: list[tuple[int, int]] = field(default_factory=list)
    restored: list[RowInfo] = field(default_factory=list)
    changed_paths: set[str] = field(default_factory=set)  # paths whose bytes differ from their row's
    unchanged: int = 0


@dataclass(slots=True)
class _Moves:
    pairs: list[tuple[RowInfo, DiskFile]] = field(default_factory=list)
    matched_rows: set[int] = field(default_factory=set)  # ids of the rows that moved
    claimed_paths: set[str] = field(default_factory=set)  # the paths they moved to


def _classify(storage, disk: set, present: set, reader: _Reader, report: ScanReport, progress) -> ScanPlan:
    rows, disk_files = _set_aside_unchanged(storage, disk, present, report)
    disk_by_path = {d.path: d for d in disk_files}
    in_place = _judge_in_place(rows, disk_by_path, reader, progress)
    report.unchanged_count += in_place.unchanged
    _refuse_misplaced(reader.drive, [row.path for row in in_place.gone if row.status != ImageFile.Status.MISSING])
    # Candidates for moves: paths no row claims, and paths whose bytes changed (something may have moved onto them).
    candidates = [d for d in disk_files if d.path not in in_place.live_at_path or d.path in in_place.changed_paths]
    moves = _match_moves(candidates, in_place, reader)
    modified, missing = _modified_and_missing(in_place, moves, disk_by_path)
    new = _new_files(candidates, in_place, moves)
    sidecars, modified, missing, new = _sidecars_followed(storage, modified, missing, new, moves, reader)
    plan = ScanPlan(
        moves=moves.pairs,
        missing=missing,
        modified=modified,
        sidecars=sidecars,
        touched=in_place.touched,
        restored=in_place.restored,
        new=new,
        sessions=set(),
    )
    _report_plan(plan, report)
    report.bytes_read = reader.bytes_read
    return plan


def _set_aside_unchanged(storage, disk: set, present: set, report: ScanReport) -> tuple[list[RowInfo], list[DiskFile]]:
    """The rows and the files left to judge once every present row whose (path, size, mtime_ns) is on disk is
    trusted: the common case, in one C-level step."""
    unchanged = present & disk
    report.unchanged_count = len(unchanged)
    # Tuple hashes are not cached, so each set operation costs a pass; skip the ones a count already answers.
    gone_keys = present - unchanged if len(unchanged) < len(present) else ()
    new_keys = disk - unchanged if len(unchanged) < len(disk) else ()
    rows = _full_rows(storage, paths={key[0] for key in gone_keys}) + _full_rows(storage, not_present=True)
    disk_files = [DiskFile(*d) for d in sorted(new_keys) if _usable(d[0], report.skipped)]
    report.files_on_disk = len(unchanged) + len(disk_files)
    return rows, disk_files


def _judge_in_place(rows: list[RowInfo], disk_by_path: dict[str, DiskFile], reader: _Reader, progress) -> _InPlace:
    """Each row against the file at its path: the same bytes (perhaps with a new time, perhaps back from
    missing or modified), other bytes, or no file."""
    judged = _InPlace()
    # Rows already missing come last, so a present row keeps its path if an old missing row names it too.
    rows = sorted(rows, key=lambda r: r.status == ImageFile.Status.MISSING)
    for i, row in enumerate(rows):
        disk = disk_by_path.get(row.path)
        if row.status == ImageFile.Status.MISSING:
            if (
                disk is not None
                and disk.size == row.size
                and disk.path not in judged.live_at_path
                and reader.checksum(disk) == row.checksum
            ):
                judged.restored.append(row)
                judged.live_at_path[row.path] = row
                if disk.mtime_ns != row.mtime_ns:
                    judged.touched.append((row.id, disk.mtime_ns))
            else:
                judged.gone.append(row)
            continue
        if disk is None:
            judged.gone.append(row)
            continue
        judged.live_at_path[row.path] = row
        if disk.size == row.size and reader.checksum(disk) == row.checksum:
            judged.unchanged += 1
            if disk.mtime_ns != row.mtime_ns:
                judged.touched.append((row.id, disk.mtime_ns))
            if row.status == ImageFile.Status.MODIFIED:
                judged.restored.append(row)
            continue
        judged.changed_paths.add(row.path)
        if i % 1000 == 0:
            progress(done=i)
    return judged


def _match_moves(candidates: list[DiskFile], in_place: _InPlace, reader: _Reader) -> _Moves:
    """Files matched, by size and then checksum, to rows whose bytes left their path."""
    gone_by_size: dict[int, list[RowInfo]] = defaultdict(list)
    for row in in_place.gone:
        gone_by_size[row.size].append(row)
    for row in [in_place.live_at_path[p] for p in in_place.changed_paths]:
        gone_by_size[row.size].append(row)  # its own bytes may have moved elsewhere (a swap)

    moves = _Moves()
    for disk in sorted(candidates, key=lambda d: d.path):
        same_size = [
            r for r in gone_by_size.get(disk.size, ()) if r.id not in moves.matched_rows and r.path != disk.path
        ]
        if not same_size:
            continue
        checksum = reader.checksum(disk)
        match = next((r for r in same_size if r.checksum == checksum), None)
        if match is not None:
            moves.pairs.append((match, disk))
            moves.matched_rows.add(match.id)
            moves.claimed_paths.add(disk.path)
    return moves


def _modified_and_missing(
    in_place: _InPlace, moves: _Moves, disk_by_path: dict[str, DiskFile]
) -> tuple[list[tuple[RowInfo, DiskFile]], list[RowInfo]]:
    """Rows whose path holds other bytes (modified), and rows whose bytes are nowhere (missing)."""
    modified, missing = [], []
    for path in sorted(in_place.changed_paths):
        row = in_place.live_at_path[path]
        if row.id in moves.matched_rows:
            continue  # its bytes moved elsewhere; whatever is at its old path is judged on its own
        if path in moves.claimed_paths:
            missing.append(row)  # another file moved onto its path, and its own bytes are nowhere
        elif row.status != ImageFile.Status.MODIFIED:  # an edit already reported stays modified, quietly
            modified.append((row, disk_by_path[path]))
    for row in in_place.gone:
        if row.id not in moves.matched_rows and row.status != ImageFile.Status.MISSING:
            missing.append(row)
    return modified, missing


def _sidecars_followed(storage, modified, missing, new, moves: _Moves, reader: _Reader):
    """Sidecars taken out of `modified` (new bytes in place) and out of `missing` (followed to a file of the same
    name beside their item, which then is not new). Returns (sidecars, modified, missing, new)."""
    sidecars = [(row, disk) for row, disk in modified if row.role == ImageFile.Role.SIDECAR]
    modified = [(row, disk) for row, disk in modified if row.role != ImageFile.Role.SIDECAR]
    lost = [row for row in missing if row.role == ImageFile.Role.SIDECAR]
    if not lost or not new:
        return _read_all(sidecars, reader), modified, missing, new
    new_by_name: dict[str, list[DiskFile]] = defaultdict(list)
    for disk in new:
        new_by_name[disk.path.rsplit("/", 1)[-1]].append(disk)
    folders = _item_folders(storage, {row.hothash for row in lost}, moves)
    followed: set[int] = set()
    taken: set[str] = set()
    for row in lost:
        name = row.path.rsplit("/", 1)[-1]
        beside = [
            d
            for d in new_by_name.get(name, ())
            if d.path not in taken and d.path.rsplit("/", 1)[0] in folders.get(row.hothash, ())
        ]
        if len(beside) == 1:
            sidecars.append((row, beside[0]))
            followed.add(row.id)
            taken.add(beside[0].path)
    missing = [row for row in missing if row.id not in followed]
    new = [disk for disk in new if disk.path not in taken]
    return _read_all(sidecars, reader), modified, missing, new


def _read_all(sidecars, reader: _Reader):
    """Each sidecar's new file checksummed (a file gone since the walk is left out, judged by the next scan)."""
    return [(row, disk) for row, disk in sidecars if reader.checksum(disk) is not None]


def _item_folders(storage, hothashes: set[str], moves: _Moves) -> dict[str, set[str]]:
    """The folders where each item's other files are now: where they moved to, or where they are."""
    folders: dict[str, set[str]] = defaultdict(set)
    moved_ids = moves.matched_rows
    for row, disk in moves.pairs:
        if row.hothash in hothashes:
            folders[row.hothash].add(disk.path.rsplit("/", 1)[0])
    rows = (
        ImageFile.objects.filter(file_storage=storage, photo__hothash__in=hothashes)
        .exclude(status=ImageFile.Status.MISSING)
        .exclude(role=ImageFile.Role.SIDECAR)
        .values_list("id", "photo__hothash", "relative_path")
    )
    for row_id, hothash, path in rows:
        if row_id not in moved_ids:
            folders[hothash].add(path.rsplit("/", 1)[0])
    return folders


def _new_files(candidates: list[DiskFile], in_place: _InPlace, moves: _Moves) -> list[DiskFile]:
    """Not claimed by a move, and either at a path no row holds, or at a path whose own row's bytes moved away."""
    live = in_place.live_at_path
    return [
        d
        for d in candidates
        if d.path not in moves.claimed_paths and (d.path not in live or live[d.path].id in moves.matched_rows)
    ]


def _report_plan(plan: ScanPlan, report: ScanReport) -> None:
    """The plan's changes in the report, and the sessions they touch in the plan."""
    for row, disk in plan.moves:
        report.moved_files.append(
            {"hothash": row.hothash, "old_path": row.path, "new_path": disk.path, "session_id": row.session_id}
        )
        plan.sessions.add(row.session_id)
    for row in plan.missing:
        report.missing_files.append({"hothash": row.hothash, "path": row.path, "session_id": row.session_id})
        plan.sessions.add(row.session_id)
    for row, _disk in plan.modified:
        report.modified_files.append({"hothash": row.hothash, "path": row.path, "session_id": row.session_id})
        plan.sessions.add(row.session_id)
    for row, disk in plan.sidecars:
        report.sidecars_updated.append(
            {"hothash": row.hothash, "old_path": row.path, "path": disk.path, "session_id": row.session_id}
        )
        plan.sessions.add(row.session_id)
    for row in plan.restored:
        report.restored_files.append({"hothash": row.hothash, "path": row.path, "session_id": row.session_id})
        plan.sessions.add(row.session_id)
    for disk in sorted(plan.new, key=lambda d: d.path):
        report.new_files.append({"path": disk.path, "file_size": disk.size, "adopted": False})


def _refuse_misplaced(storage: drive.Storage, paths) -> None:
    """UnsafeLayout when a row's file the walk did not find is a folder now, or a file (or anything else)
    stands where a folder on its path belongs: a file explorer never does that by a move, and marking the
    rows missing would be a lie. Only the rows the walk did not find are looked up, each without following."""
    for path in paths:
        if storage.kind(path) == "folder":  # a file where a folder belongs, or a link, raises in kind() itself
            raise drive.UnsafeLayout(storage.shown(path), "a folder", "a file")


def _apply(storage, plan: ScanPlan) -> None:
    now = timezone.now()
    with transaction.atomic():
        moved_ids = [row.id for row, _ in plan.moves]
        # Two steps, so that no moment holds two present rows at one path (e.g. two files that swapped names):
        # the unique constraint ignores missing rows.
        ImageFile.objects.filter(pk__in=moved_ids).update(status=ImageFile.Status.MISSING)
        for row, disk in plan.moves:
            ImageFile.objects.filter(pk=row.id).update(
                relative_path=disk.path, mtime_ns=disk.mtime_ns, last_seen_at=now
            )
        missing_ids = [row.id for row in plan.missing]
        ImageFile.objects.filter(pk__in=missing_ids).update(status=ImageFile.Status.MISSING)
        ImageFile.objects.filter(pk__in=[row.id for row, _ in plan.modified]).update(
            status=ImageFile.Status.MODIFIED, last_seen_at=now
        )
        ImageFile.objects.filter(pk__in=moved_ids + [row.id for row in plan.restored]).update(
            status=ImageFile.Status.PRESENT, last_seen_at=now
        )
        for row_id, mtime_ns in plan.touched:
            ImageFile.objects.filter(pk=row_id).update(mtime_ns=mtime_ns)
        sidecar_ids = [row.id for row, _ in plan.sidecars]
        ImageFile.objects.filter(pk__in=sidecar_ids).update(status=ImageFile.Status.MISSING)  # as for moves
        for row, disk in plan.sidecars:
            ImageFile.objects.filter(pk=row.id).update(
                relative_path=disk.path,
                checksum=disk.checksum,
                file_size=disk.size,
                mtime_ns=disk.mtime_ns,
                status=ImageFile.Status.PRESENT,
                last_seen_at=now,
            )
        type(storage).objects.filter(pk=storage.pk).update(last_scan_at=now)
        storage.last_scan_at = now


def _apply_sidecars(storage, sidecars, report: ScanReport) -> None:
    """What each changed sidecar says, applied to its item when the sidecar is newer than the user's last change
    in ImaLink; the report's entry says whether it was (`applied`) and what it set or why not."""
    by_path = {entry["path"]: entry for entry in report.sidecars_updated}
    with drive.Storage(storage.full_path) as opened:
        for row, disk in sidecars:
            entry = by_path[disk.path]
            fields, why = metadata.read_stored_sidecar(opened, disk.path, disk.size)
            if fields is None:
                entry.update(applied=False, reason=why)
                continue
            applied, detail = metadata.apply_sidecar(row.hothash, fields, disk.mtime_ns)
            entry.update(applied=applied, **({"fields": detail} if applied else {"reason": detail}))


def _rewrite_indexes(storage, session_ids) -> None:

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
