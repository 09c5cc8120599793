"""Replication (issue 17 point 1): copy the sessions of one storage into another with the import's verified copy,
and record them in sessions of the target that mirror the source's, so the target's own indexes rebuild them.

A file whose bytes (checksum) the target already holds is counted, never copied again; the mirror session is made
once and found again by a re-run, so a re-run resumes where a killed or unplugged run stopped and writes no
duplicates. Nothing is ever deleted from either storage. docs/COPIES.md gives the decisions.
"""

import logging
import os
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from imalink.errors import Conflict, ImalinkError, NotFound, StorageUnavailable
from imports.copying import CopyVerificationFailed, clean_tmp, copy_verified
from imports.models import ImageFile, ImportSession, Photo
from indexing.writer import write_master_index, write_session_index
from jobs.services import JobCancelled
from storages import drive
from storages.layout import PHOTOS_DIR, hotpreview_relative_path
from storages.locks import storage_lock
from storages.models import FileStorage
from storages.services import storage_get, storage_require_available
from storages.unsafe import mark_unsafe

logger = logging.getLogger("imalink.copies")

JOB_KIND = "replicate"
MAX_FAILURES_LISTED = 1000
RECORD_BATCH = 64  # rows written in one transaction: one per file cost the calling thread 5 ms a file


class ReplicationAborted(Conflict):
    """A storage went away (unplugged, unmounted, full) mid-run: the run stops, and nothing is marked missing."""

    code = "replication_aborted"


@dataclass
class ReplicationReport:
    source_storage_uuid: str
    target_storage_uuid: str
    session_ids: list[int]
    # source session id -> the target's session that mirrors it (only sessions that have one)
    mirror_sessions: dict[str, int] = field(default_factory=dict)
    total_files: int = 0
    total_bytes: int = 0
    copied_files: int = 0  # copied by this run, verified, and recorded
    found_in_place: int = 0  # already at its path with equal bytes (a killed run had placed it): recorded, not copied
    already_present: int = 0  # the target already held these bytes: neither copied nor recorded again
    bytes_copied: int = 0
    failed: list[dict] = field(default_factory=list)
    failed_count: int = 0
    cancelled: bool = False
    duration_s: float = 0.0
    deleted: int = 0  # always 0: replication never deletes, from either storage

    def fail(self, path: str, code: str, reason: str) -> None:
        self.failed_count += 1
        if len(self.failed) < MAX_FAILURES_LISTED:
            self.failed.append({"path": path, "code": code, "reason": reason})

    def as_dict(self) -> dict:
        return asdict(self)


def replication_check(source: FileStorage, target: FileStorage, session_ids=None) -> list[ImportSession]:
    """What a replication from source to target would copy, or why it is refused; writes nothing.

    404 for a session that is not the source's, 400 for a storage replicated into itself, 409 when either storage
    is unavailable, the target is read-only or deactivated.
    """
    if source.pk == target.pk:
        raise ImalinkError(
            "A storage cannot be replicated into itself: choose another target storage.",
            code="same_storage",
            status=400,
            details={"field": "target_storage_uuid", "storage_uuid": str(source.storage_uuid)},
        )
    if not target.is_active:
        raise ImalinkError(
            f"Storage {target.display_name!r} is deactivated: reactivate it before copying into it.",
            code="storage_inactive",
            status=409,
            details={"storage_uuid": str(target.storage_uuid)},
        )
    sessions = ImportSession.objects.filter(file_storage=source).select_related("default_author", "mirror_of")
    if session_ids is not None:
        wanted = sorted(set(session_ids))
        sessions = sessions.filter(pk__in=wanted)
        unknown = sorted(set(wanted) - {s.pk for s in sessions})
        if unknown:
            raise NotFound(
                f"Storage {source.display_name!r} has no import session with id {', '.join(map(str, unknown[:20]))}.",
                details={"session_ids": unknown[:100], "storage_uuid": str(source.storage_uuid)},
            )
    storage_require_available(source)
    storage_require_available(target, writable=True)
    return list(sessions.order_by("id"))


def mirror_session_for(session: ImportSession, target: FileStorage, *, create: bool) -> ImportSession | None:
    """The target's session that holds the copies of `session`'s files: the one made by an earlier run, or (when
    `session` itself mirrors a session of the target) that original; made now with `create`, else None.

    The mirror takes the source's title, description, author, source path and import time, and is brought up to
    date with them on each run.
    """
    if session.mirror_of_id and session.mirror_of.file_storage_id == target.pk:
        return session.mirror_of  # copying a mirror back to where it came from: its files belong to the original
    fields = {
        "title": session.title,
        "description": session.description,
        "default_author_id": session.default_author_id,
        "source_path": session.source_path,
        "target_subdirectory": session.target_subdirectory,
    }
    mirror = ImportSession.objects.filter(file_storage=target, mirror_of=session).order_by("id").first()
    if mirror is None:
        if not create:
            return None
        mirror = ImportSession.objects.create(file_storage=target, mirror_of=session, **fields)
        ImportSession.objects.filter(pk=mirror.pk).update(imported_at=session.imported_at)
        mirror.imported_at = session.imported_at
        logger.info("session %s mirrors session %s in storage %s", mirror.pk, session.pk, target.storage_uuid)
    elif any(getattr(mirror, name) != value for name, value in fields.items()):
        ImportSession.objects.filter(pk=mirror.pk).update(**fields)
        for name, value in fields.items():
            setattr(mirror, name, value)
    return mirror


def _unavailable(storage: FileStorage) -> StorageUnavailable | None:
    try:
        storage_require_available(storage)
    except StorageUnavailable as exc:
        return exc
    return None


def _aborted(source: FileStorage, target: FileStorage, exc: OSError) -> ReplicationAborted | None:
    """The abort when the OSError came from a storage that has gone (or a target that is full or read-only)."""
    for storage, side in ((target, "target"), (source, "source")):
        gone = _unavailable(storage)
        if gone is not None:
            return ReplicationAborted(
                f"The {side} storage {storage.display_name!r} went away during the replication ({gone.message}). "
                "It stopped; nothing was marked missing or deleted. Run it again when the drive is back: "
                "it resumes where it stopped.",
                details={"storage_uuid": str(storage.storage_uuid), "side": side, "reason": gone.message},
            )
    if exc.errno in (28, 30, 122):  # ENOSPC, EROFS, EDQUOT: the target can take no more
        return ReplicationAborted(
            f"The target storage {target.display_name!r} cannot take more files: {exc.strerror}.",
            details={"storage_uuid": str(target.storage_uuid), "side": "target"},
        )
    return None


def _write_hotpreview(image_file: ImageFile, source_drive: drive.Storage, target: FileStorage, data=None) -> bool:
    """The photo's hotpreview in the target's .imalink/hotpreviews, so its indexes alone restore the preview:
    `data`, else the source's own file; one already there is left alone. False when there was nothing to write
    from (the caller then takes it from the database)."""
    photo = image_file.photo
    if not photo.has_hotpreview:
        return True
    relative = hotpreview_relative_path(photo.hothash)
    with drive.Storage(target.full_path) as opened:
        if opened.kind(relative) == "file":
            return True
        if data is None:
            try:
                data = source_drive.read_bytes(relative, limit=2 * 1024 * 1024)
            except (OSError, drive.FileTooLarge):
                return False
        opened.write_atomic(relative, data, create_folders=True)
    return True


def _row(image_file: ImageFile, *, stored: str, st: os.stat_result, mirror: ImportSession, target, now) -> ImageFile:
    """The target's row for a copy that lies at `stored` (lstat `st`), verified just now."""
    return ImageFile(
        photo_id=image_file.photo_id,
        import_session=mirror,
        file_storage=target,
        relative_path=stored,
        original_filename=image_file.original_filename,
        file_format=image_file.file_format,
        file_size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        checksum=image_file.checksum,
        # The copy plays the part its original plays (a JPEG primary, its RAW not), so the target's session index
        # alone describes the photo as the source's does.
        is_primary=image_file.is_primary,
        role=image_file.role,
        status=ImageFile.Status.PRESENT,
        last_seen_at=now,
        verified_at=now,
    )


def replicate_storage(
    *,
    source: FileStorage,
    target: FileStorage,
    session_ids=None,
    progress=None,
    should_stop=None,
) -> ReplicationReport:
    """Copy every file of the source's sessions (all, or `session_ids`) that the target lacks, under the same
    relative path, verified (temp, fsync, re-read, compare, link into place); record each in the target's mirror
    of its session; write the target's session indexes and master index. Holds the target's lock throughout.

    A storage that goes away mid-run raises ReplicationAborted (409) after the rows of every placed copy are
    written; `should_stop()` raising JobCancelled stops at the next file with a report marked cancelled.
    """
    progress = progress or (lambda **kw: None)
    started = time.monotonic()
    sessions = replication_check(source, target, session_ids)
    report = ReplicationReport(
        source_storage_uuid=str(source.storage_uuid),
        target_storage_uuid=str(target.storage_uuid),
        session_ids=[s.pk for s in sessions],
    )
    touched: dict[int, ImportSession] = {}
    try:
        with storage_lock(target, wait=settings.IMALINK_LOCK_WAIT, should_stop=should_stop):
            try:
                _replicate_locked(
                    sessions,
                    source=source,
                    target=target,
                    report=report,
                    touched=touched,
                    progress=progress,
                    should_stop=should_stop,
                )
            finally:
                _write_indexes(target, touched)
    except drive.UnsafeLayout as problem:
        for storage in (source, target):
            if problem.path.startswith(str(storage.full_path)):
                mark_unsafe(storage, problem)
        raise
    finally:
        report.duration_s = round(time.monotonic() - started, 3)
        progress(current=None, force=True)
    logger.info(
        "replicated %s -> %s: %d copied, %d already present, %d failed in %.1fs",
        source.storage_uuid,
        target.storage_uuid,
        report.copied_files,
        report.already_present,
        report.failed_count,
        report.duration_s,
    )
    return report


def _write_indexes(target: FileStorage, touched: dict[int, ImportSession]) -> None:
    """The indexes of every mirror session this run wrote rows in, and the master index, however the run stopped;
    a target that has gone gets none (its next run, or the weekly regeneration, catches up)."""
    if not touched or _unavailable(target) is not None:
        return
    try:
        for mirror in touched.values():
            write_session_index(
                ImportSession.objects.select_related("file_storage", "default_author", "mirror_of__file_storage").get(
                    pk=mirror.pk
                )
            )
        write_master_index(target)
    except (OSError, ImalinkError) as exc:
        logger.warning("indexes of %s not written after a replication: %s", target.storage_uuid, exc)


def _replicate_locked(sessions, *, source, target, report, touched, progress, should_stop) -> None:
    storage_require_available(source)
    storage_require_available(target, writable=True)  # again, now that the lock is held
    clean_tmp(target.full_path)  # partial copies of a run that was killed
    on_target = ImageFile.objects.filter(file_storage=target).exclude(status=ImageFile.Status.MISSING)
    held = set(on_target.values_list("checksum", flat=True))
    taken = set(on_target.values_list("relative_path", flat=True))
    by_session = {s.pk: s for s in sessions}
    files = list(
        ImageFile.objects.filter(import_session__in=sessions, file_storage=source)
        .exclude(status=ImageFile.Status.MISSING)
        .select_related("photo")
        .defer("photo__hotpreview")  # a preview is read only for the rare photo whose source lacks its file
        .order_by("import_session_id", "photo_id", "-is_primary", "id")
    )
    report.total_files = len(files)
    report.total_bytes = sum(f.file_size for f in files)
    for session in sessions:
        mirror = mirror_session_for(session, target, create=False)
        if mirror is not None:
            report.mirror_sessions[str(session.pk)] = mirror.pk
    counts = {"files_done": 0, "done": 0, "placed": 0}

    def advance(image_file) -> None:
        counts["files_done"] += 1
        counts["done"] += image_file.file_size
        progress(
            files_done=counts["files_done"],
            done=counts["done"],
            copied=counts["placed"],
            already_present=report.already_present,
            failed=report.failed_count,
            current=image_file.relative_path,
        )

    progress(
        total=report.total_bytes, files_total=report.total_files, files_done=0, done=0, copied=0, already_present=0,
        failed=0, force=True,
    )  # fmt: skip
    threads = settings.IMALINK_COPY_THREADS
    with drive.Storage(source.full_path) as source_drive, ThreadPoolExecutor(threads, "replicate") as pool:
        pending, in_flight, aborted = iter(files), {}, None

        def submit_next() -> bool:
            """Hand the next file the target lacks to a copying thread; files it holds are counted on the way."""
            for image_file in pending:
                if image_file.checksum in held:
                    report.already_present += 1
                    advance(image_file)
                    continue
                held.add(image_file.checksum)  # a second file of the same bytes in this run is not copied twice
                in_flight[pool.submit(_copy_file, image_file, source_drive, target, taken)] = image_file
                return True
            return False

        for _ in range(threads * 2):
            if not submit_next():
                break
        placed = []  # copies in place whose rows are written together, RECORD_BATCH at a time
        while in_flight:
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                image_file = in_flight.pop(future)
                try:
                    outcome = _settle(future, image_file, source=source, target=target, report=report)
                except ReplicationAborted as exc:
                    held.discard(image_file.checksum)
                    aborted = aborted or exc  # the copies in hand are still recorded, then the run stops
                else:
                    if outcome is not None:
                        placed.append(outcome)
                        counts["placed"] += 1
                advance(image_file)
                if aborted is None and not report.cancelled:
                    submit_next()
            if len(placed) >= RECORD_BATCH or (placed and not in_flight):
                _record(placed, by_session, target=target, taken=taken, report=report, touched=touched)
                placed = []
            if should_stop is not None and not report.cancelled:
                try:
                    should_stop()
                except JobCancelled:
                    report.cancelled = True  # no new file; the ones in hand are finished and recorded
        if placed:
            _record(placed, by_session, target=target, taken=taken, report=report, touched=touched)
        if aborted is not None:
            raise aborted


def _copy_file(image_file, source_drive, target, taken) -> tuple:
    """In a copying thread: the verified copy of one file, opened through the source's descriptor.
    Returns (stored path, copied) or ("failed", code, reason); OSError when a drive is in trouble."""
    path = image_file.relative_path
    relative = PurePosixPath(path)
    if not relative.parts or relative.parts[0] != PHOTOS_DIR:
        return ("failed", "outside_photos", "its path is not under photos/, where replicated files belong")
    try:
        fd, st = source_drive.open_read(path, noatime=True)
    except FileNotFoundError:
        return ("failed", "not_on_source", "the source storage no longer has this file (run a scan of the source)")
    if st.st_size != image_file.file_size:
        os.close(fd)
        return (
            "failed",
            "modified_on_source",
            f"the source file is {st.st_size:,} bytes, not the {image_file.file_size:,} recorded: not copied",
        )
    try:
        stored, copied = copy_verified(
            fd, checksum=image_file.checksum, size=image_file.file_size, root=target.full_path, relative=relative,
            taken_paths=taken,
        )  # fmt: skip
    except CopyVerificationFailed as exc:
        return ("failed", "copy_failed", f"the copy failed verification ({exc}); the source may have changed")
    with drive.Storage(target.full_path) as opened:
        st = opened.lstat(stored)  # it is there, the folders on the way walked without following
    preview = image_file.role != ImageFile.Role.ORIGINAL or _write_hotpreview(image_file, source_drive, target)
    return stored, copied, st, preview


def _settle(future, image_file, *, source, target, report) -> tuple | None:
    """In the calling thread: what a copying thread did with one file. (image_file, stored, copied, lstat) for a
    copy in place, None for a failure (reported); ReplicationAborted when a drive has gone."""
    path = image_file.relative_path
    try:
        outcome = future.result()
    except OSError as exc:
        abort = _aborted(source, target, exc)
        if abort is not None:
            raise abort from exc
        report.fail(path, "copy_failed", f"could not be copied: {exc.strerror}")
        return None
    if outcome[0] == "failed":
        gone = _unavailable(source) if outcome[1] == "not_on_source" else None
        if gone is not None:  # not one file gone: the whole source drive
            raise _aborted(source, target, FileNotFoundError(2, gone.message))
        report.fail(path, outcome[1], outcome[2])
        return None
    return (image_file, *outcome)


def _record(placed, by_session, *, target, taken, report, touched) -> None:
    """The rows of copies in place, each in its session's mirror, in one transaction (a crash before it commits
    loses nothing: the next run finds those copies where they lie)."""
    now = timezone.now()
    rows = []
    with transaction.atomic():
        for image_file, stored, _copied, st, _preview in placed:
            session = by_session[image_file.import_session_id]
            mirror = touched.get(session.pk) or mirror_session_for(session, target, create=True)
            touched[session.pk] = mirror
            report.mirror_sessions[str(session.pk)] = mirror.pk
            rows.append(_row(image_file, stored=stored, st=st, mirror=mirror, target=target, now=now))
        ImageFile.objects.bulk_create(rows)
    for image_file, stored, copied, _st, preview in placed:
        if not preview:
            data = Photo.objects.filter(pk=image_file.photo_id).values_list("hotpreview", flat=True).first()
            if data:
                _write_hotpreview(image_file, None, target, data=bytes(data))
        taken.add(stored)
        if copied:
            report.copied_files += 1
            report.bytes_copied += image_file.file_size
        else:
            report.found_in_place += 1


def run_replicate_job(job, ctx) -> dict:
    """Job runner for kind 'replicate': job.storage is the source, params name the target and the sessions."""
    params = job.params or {}
    target = storage_get(params["target_storage_uuid"])
    report = replicate_storage(
        source=job.storage,
        target=target,
        session_ids=params.get("session_ids"),
        progress=ctx.progress,
        should_stop=ctx.check_cancelled,
    )
    if report.cancelled:
        raise JobCancelled(result=report.as_dict())
    return report.as_dict()


JOB_RUNNERS = {JOB_KIND: run_replicate_job}
