"""Moves across storages (issue 17 point 7): a file the user moved by hand from one storage's photos/ into another's
is recorded as one move, not as a missing file in one storage and a new one in the other.

A new (untracked) file in storage B is paired, by size and then checksum, with a file of another active storage A
whose row is `missing`, or `present` while nothing is at its path any more (A not scanned since). The pair is one
move: the row keeps its id and its photo, so the photo's metadata (rating, tags, title, ...) stays; it changes
storage and session, into B's "Adopted files" session, the one a scan of B adopts new files into (DESIGN §6); the
old entry leaves A's indexes, which are rewritten under A's lock, and B's hotpreview is written from the database.

It is never done while A is unavailable: such a file is left untracked (not adopted as new) until A is back, so the
move can still be recorded; a storage that is deactivated is not waited for. It happens in a scan of B with
adopt_new (indexing/scanner.py calls the finder registered below, under B's lock) and in
POST /api/v1/storage-index/reconcile, over every available storage.
"""

import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from imalink.errors import ImalinkError
from imports.checksums import drive_checksum
from imports.models import ImageFile, ImportSession
from imports.pipeline import adopted_session
from imports.sources import is_junk
from indexing.scanner import DiskFile, walk_photos
from indexing.writer import write_master_index, write_session_index
from storages import drive
from storages.layout import hotpreview_relative_path
from storages.locks import StorageBusy, storage_lock
from storages.models import FileStorage
from storages.services import storage_require_available
from storages.unsafe import mark_unsafe

logger = logging.getLogger("imalink.copies")


@dataclass
class CrossMoves:
    """What pairing found for one storage B: the moves recorded, the new files they (or a wait) claimed, and B's
    sessions whose index must be rewritten."""

    moves: list = field(default_factory=list)
    held_back: list = field(default_factory=list)  # paired with a file of a storage that is unavailable or busy
    claimed: set = field(default_factory=set)
    sessions: set = field(default_factory=set)


class _Availability:
    def __init__(self):
        self.known: dict[int, bool] = {}

    def __call__(self, storage) -> bool:
        if storage.pk not in self.known:
            try:
                storage_require_available(storage)
                self.known[storage.pk] = True
            except ImalinkError:
                self.known[storage.pk] = False
        return self.known[storage.pk]


def _gone_from(storage, row: ImageFile) -> bool:
    """Whether the row's file is not at its path on its (available) storage: missing, or moved away unscanned."""
    if row.status == ImageFile.Status.MISSING:
        return True
    try:
        with drive.Storage(storage.full_path) as opened:
            return opened.kind(row.relative_path) is None
    except (OSError, drive.UnsafeLayout):
        return False  # not to be judged from here: the scan of that storage will say


def _candidates(storage, sizes: set[int]) -> dict[int, list[ImageFile]]:
    """Rows of other active storages, missing or present, with one of these sizes, by size."""
    by_size: dict[int, list[ImageFile]] = defaultdict(list)
    wanted = sorted(sizes)
    for start in range(0, len(wanted), 500):
        rows = (
            ImageFile.objects.filter(
                file_size__in=wanted[start : start + 500],
                status__in=[ImageFile.Status.MISSING, ImageFile.Status.PRESENT],
                file_storage__is_active=True,
            )
            .exclude(file_storage=storage)
            .select_related("file_storage", "photo", "import_session")
            .order_by("id")
        )
        for row in rows:
            by_size[row.file_size].append(row)
    return by_size


def pair_moves(storage, new_files, *, should_stop=None) -> CrossMoves:
    """Record as moves the files of `new_files` (untracked files of `storage`, with path, size, mtime_ns and perhaps
    checksum) whose bytes left another storage. The caller holds `storage`'s lock and rewrites its indexes for
    the sessions returned; the other storages' indexes are rewritten here, each under its own lock."""
    found = CrossMoves()
    if not new_files:
        return found
    by_size = _candidates(storage, {d.size for d in new_files})
    if not by_size:
        return found
    available = _Availability()
    pairs: dict[int, list[tuple[ImageFile, object]]] = defaultdict(list)
    taken: set[int] = set()
    with drive.Storage(storage.full_path) as opened:
        for disk in sorted(new_files, key=lambda d: d.path):
            rows = [r for r in by_size.get(disk.size, ()) if r.pk not in taken]
            if not rows:
                continue
            if should_stop:
                should_stop()
            if disk.checksum is None:
                try:
                    disk.checksum = drive_checksum(opened, disk.path)
                except OSError:
                    continue
            same = [r for r in rows if r.checksum == disk.checksum]
            row = next((r for r in same if available(r.file_storage) and _gone_from(r.file_storage, r)), None)
            if row is not None:
                pairs[row.file_storage_id].append((row, disk))
                taken.add(row.pk)
                found.claimed.add(disk.path)
                continue
            waiting = next((r for r in same if not available(r.file_storage)), None)
            if waiting is not None:  # wait for that storage, rather than adopt the bytes of a move as a copy
                found.claimed.add(disk.path)
                name = waiting.file_storage.display_name
                reason = f"storage {name!r} is unavailable: the move is recorded once it is back"
                found.held_back.append(_held(waiting, disk, reason))
    for pairs_of_one in pairs.values():
        _move_from(pairs_of_one[0][0].file_storage, storage, pairs_of_one, found)
    return found


def _held(row: ImageFile, disk, reason: str) -> dict:
    return {
        "hothash": row.photo.hothash,
        "path": disk.path,
        "from_storage_uuid": str(row.file_storage.storage_uuid),
        "old_path": row.relative_path,
        "reason": reason,
    }


def _move_from(source, target, pairs, found: CrossMoves) -> None:
    """Record the moves from `source` into `target`, under the source's lock, and rewrite the source's indexes."""
    try:
        with storage_lock(source, wait=settings.IMALINK_LOCK_WAIT):
            storage_require_available(source)  # again under its lock: it may have gone meanwhile
            session = adopted_session(target)
            old_sessions: set[int] = set()
            for row, disk in pairs:
                row.refresh_from_db()
                if row.file_storage_id != source.pk or not _gone_from(source, row):
                    continue  # its file came back, or another run moved it: nothing to record
                _record_move(row, disk, target, session)
                old_sessions.add(row.import_session_id)
                found.sessions.add(session.pk)
                found.moves.append(
                    {
                        "file_id": row.pk,
                        "hothash": row.photo.hothash,
                        "from_storage_uuid": str(source.storage_uuid),
                        "old_path": row.relative_path,
                        "old_session_id": row.import_session_id,
                        "new_path": disk.path,
                        "session_id": session.pk,
                    }
                )
                logger.info(
                    "%s moved from %s to %s:%s", row.relative_path, source.storage_uuid, target.storage_uuid, disk.path
                )
            if old_sessions:
                for old in ImportSession.objects.filter(pk__in=old_sessions, file_storage=source).select_related(
                    "file_storage", "default_author"
                ):
                    write_session_index(old)
                write_master_index(source)
    except (StorageBusy, ImalinkError) as exc:
        for row, disk in pairs:
            found.held_back.append(_held(row, disk, exc.message))


def _record_move(row: ImageFile, disk, target, session) -> None:
    """The row changes storage, session and path; its photo, and so the user's metadata, stays."""
    now = timezone.now()
    with transaction.atomic():
        ImageFile.objects.filter(pk=row.pk).update(
            file_storage=target,
            import_session=session,
            relative_path=disk.path,
            file_size=disk.size,
            mtime_ns=disk.mtime_ns,
            status=ImageFile.Status.PRESENT,
            last_seen_at=now,
            verified_at=now,  # its bytes were just hashed equal to the checksum
        )
    photo = row.photo
    if photo.has_hotpreview and photo.hotpreview:
        relative = hotpreview_relative_path(photo.hothash)
        try:
            with drive.Storage(target.full_path) as opened:
                if opened.kind(relative) is None:
                    opened.write_atomic(relative, bytes(photo.hotpreview), create_folders=True)
        except (OSError, drive.UnsafeLayout) as exc:  # the database keeps the preview: pages show it regardless
            logger.warning("hotpreview of %s not written to %s: %s", photo.hothash, target.storage_uuid, exc)


def scan_finder(storage, new_files, *, should_stop=None):
    """The scan's hook (indexing/scanner.py, adopt_new): pair before adopting what is left."""
    return pair_moves(storage, new_files, should_stop=should_stop)


# --- POST /api/v1/storage-index/reconcile -------------------------------------------------------------------


@dataclass
class ReconcileReport:
    storages_checked: list = field(default_factory=list)
    unavailable_storages: list = field(default_factory=list)
    moves: list = field(default_factory=list)
    held_back: list = field(default_factory=list)
    duration_s: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _untracked(storage) -> list[DiskFile]:
    """The files under the storage's photos/ that no row of it records (junk and undecodable names aside)."""
    found, _skipped = walk_photos(str(storage.full_path))
    tracked = set(
        ImageFile.objects.filter(file_storage=storage)
        .exclude(status=ImageFile.Status.MISSING)
        .values_list("relative_path", flat=True)
    )
    untracked = []
    for path, size, mtime_ns in sorted(found):
        if path in tracked or is_junk(path.rsplit("/", 1)[1]):
            continue
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            continue
        untracked.append(DiskFile(path, size, mtime_ns))
    return untracked


def reconcile_storages(*, progress=None, should_stop=None) -> ReconcileReport:
    """Pair every available storage's untracked files with the files that left the other available storages."""
    progress = progress or (lambda **kw: None)
    started = time.monotonic()
    report = ReconcileReport()
    storages = list(FileStorage.objects.filter(is_active=True).order_by("id"))
    progress(total=len(storages), done=0, force=True)
    for done, storage in enumerate(storages, start=1):
        progress(current=storage.display_name)
        try:
            storage_require_available(storage)
            with storage_lock(storage, wait=settings.IMALINK_LOCK_WAIT, should_stop=should_stop):
                storage_require_available(storage)
                try:
                    found = pair_moves(storage, _untracked(storage), should_stop=should_stop)
                except drive.UnsafeLayout as exc:
                    mark_unsafe(storage, exc)
                    raise
                if found.sessions:
                    for session in ImportSession.objects.filter(pk__in=found.sessions).select_related(
                        "file_storage", "default_author"
                    ):
                        write_session_index(session)
                    write_master_index(storage)
        except ImalinkError as exc:
            report.unavailable_storages.append({"storage_uuid": str(storage.storage_uuid), "reason": exc.message})
            progress(done=done)
            continue
        report.storages_checked.append(str(storage.storage_uuid))
        report.moves.extend(found.moves)
        report.held_back.extend(found.held_back)
        progress(done=done, moves=len(report.moves))
    report.duration_s = round(time.monotonic() - started, 3)
    progress(current=None, force=True)
    return report


def run_reconcile_job(job, ctx) -> dict:
    return reconcile_storages(progress=ctx.progress, should_stop=ctx.check_cancelled).as_dict()


JOB_RUNNERS: dict = {"reconcile": run_reconcile_job}
