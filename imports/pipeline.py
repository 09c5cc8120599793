"""The import of a folder into a storage (DESIGN §6): walk and pair, then per file checksum, metadata and
hothash, a verified copy, and only then the rows. Bad files are recorded and the import goes on.

Worker threads do the reading, hashing, decoding and copying (all of which release the GIL); the calling
thread alone writes rows, in one short transaction per photo, so a crash loses at most the photo in hand and
a re-run finishes the rest without duplicates.
"""

import logging
import os
import stat
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from imalink.errors import ImalinkError, PathRejected
from jobs.services import JobCancelled
from storages import drive
from storages.ignored import ignored_part
from storages.layout import PHOTOS_DIR, TMP_DIR, hotpreview_relative_path
from storages.locks import storage_lock
from storages.paths import is_inside, resolve_client_dir
from storages.services import storage_require_available
from storages.unsafe import mark_unsafe

from . import inspection, media, metadata
from .checksums import file_checksum
from .copying import CopyVerificationFailed, clean_tmp, copy_verified
from .models import ImageFile, ImportSession, Photo, SourceEntry
from .sources import SourceFile, SourceTree, Unit, UnsafeSource, group_units, unsafe_reason
from .xmp import XmpFields

logger = logging.getLogger("imalink.imports")

MAX_FAILURES_LISTED = 1000
STORAGE_ERRNOS = {28, 30, 122, 5}  # ENOSPC, EROFS, EDQUOT, EIO: the storage itself is in trouble


class ImportAborted(ImalinkError):
    """The storage cannot take more files (full, gone, read-only): the whole import stops."""

    status = 409
    code = "import_aborted"


def storage_trouble(root: Path, exc: OSError) -> "ImportAborted":
    """The abort for a storage that is gone or cannot take more, with a reason that names the storage."""
    if not root.is_dir():
        return ImportAborted(
            f"The storage at {root} is no longer available (the drive was unplugged or unmounted); "
            "the import stopped and nothing was marked missing. Run it again when the drive is back."
        )
    return ImportAborted(f"The storage at {root} cannot take more files: {exc.strerror} ({exc.filename or root}).")


def validate_target_subdirectory(raw) -> PurePosixPath:
    details = {"field": "target_subdirectory", "value": str(raw)[:200]}
    if raw is None or raw == "":
        return PurePosixPath()
    if not isinstance(raw, str) or len(raw) > 1024 or "\x00" in raw or "\\" in raw:
        raise PathRejected(
            "target_subdirectory must be a relative folder like 2024/italy, without NUL or backslashes.",
            details=details,
        )
    if raw.startswith("/"):
        raise PathRejected("target_subdirectory must be relative (like 2024/italy), not absolute.", details=details)
    parts = raw.strip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise PathRejected("target_subdirectory must not contain '.', '..' or empty parts.", details=details)
    if any(len(part.encode("utf-8", "surrogatepass")) > 255 for part in parts):
        raise PathRejected(
            "target_subdirectory has a folder name longer than 255 bytes, which no filesystem takes.", details=details
        )
    ignored = ignored_part(PurePosixPath(*parts))
    if ignored is not None:
        # The scan and validation never look inside these folders: a file placed there would be marked missing.
        raise PathRejected(
            f"target_subdirectory must not pass through {ignored!r}: ImaLink's scan skips folders of that name "
            "(system, NAS and ImaLink's own folders), so photos placed there could never be found again.",
            code="target_ignored",
            details={**details, "ignored_name": ignored},
        )
    return PurePosixPath(*parts)


def import_validate(session: ImportSession, source_path: str, target_subdirectory) -> tuple[Path, PurePosixPath]:
    """Check everything a client sent before any work starts: bad input changes nothing."""
    source = resolve_client_dir(source_path, field="source_path")
    target = validate_target_subdirectory(target_subdirectory)
    storage = session.file_storage
    if not storage.is_active:
        raise ImalinkError(f"Storage {storage.display_name!r} is deactivated.", code="storage_inactive", status=409)
    storage_require_available(storage, writable=True)
    root = Path(os.path.realpath(storage.full_path))
    if is_inside(source, root) or is_inside(root, source):
        raise PathRejected(
            "source_path must not be the storage itself or inside it (or contain it).", details={"field": "source_path"}
        )
    return source, target


def reopen_source(source_path: str, validated: Path) -> SourceTree:
    """The source checked again once the storage lock is held, and opened once as a descriptor.

    The job may have waited up to IMALINK_LOCK_WAIT for the lock since import_validate: the folder must still
    resolve inside the allowed roots, to the same real path, and that path is then opened from `/` with every
    component O_NOFOLLOW (SourceTree), so what is walked is the folder that was checked.
    """
    again = resolve_client_dir(source_path, field="source_path")
    if again != validated:
        raise UnsafeSource(
            f"The source {source_path} changed while the import waited for the storage: it was {validated}, it is "
            f"now {again}. Nothing was imported; start the import again if that is intended.",
            details={"field": "source_path", "path": str(validated), "now": str(again), "reason_code": "unsafe_source"},
        )
    return SourceTree(validated)


@dataclass
class ImportReport:
    session_id: int
    storage_uuid: str
    source_path: str
    target_subdirectory: str
    total: int = 0
    done: int = 0
    imported: int = 0
    duplicates: int = 0
    failed: int = 0
    companions: int = 0
    skipped: int = 0
    videos_created: int = 0
    photos_created: int = 0
    bytes_copied: int = 0
    failures: list = field(default_factory=list)
    cancelled: bool = False
    duration_s: float = 0.0
    files_per_s: float = 0.0
    images_count: int = 0
    files: list = field(default_factory=list)  # paths adopted in place (scan --adopt-new only)

    skipped_files: list = field(default_factory=list)

    def fail(self, relative: str, code: str, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_FAILURES_LISTED:
            self.failures.append({"path": relative, "code": code, "reason": reason})

    def skip(self, relative: str, code: str, reason: str) -> None:
        self.skipped += 1
        if len(self.skipped_files) < MAX_FAILURES_LISTED:
            self.skipped_files.append({"path": relative, "code": code, "reason": reason})

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Prepared:
    """What a worker thread learned about one source file; rows are written from this by the main thread."""

    src: SourceFile
    role: str = ImageFile.Role.ORIGINAL
    checksum: str | None = None
    info: "media.MediaInfo | None" = None
    failure: tuple[str, str] | None = None
    skipped: tuple[str, str] | None = None  # not media and not a companion: left in the source
    xmp: "XmpFields | None" = None  # what its embedded XMP, or the sidecar itself, says (imports/metadata.py)
    xmp_problem: str = ""  # why a sidecar's XMP could not be read (it is archived all the same)
    duplicate: bool = False
    stored_path: str | None = None
    copied: bool = False


class _Claims:
    """Checksums and paths already in the storage or taken by this run, shared by the worker threads.

    A file is a duplicate only of a file that made it into the storage: when two threads meet the same bytes,
    the second waits for the first's outcome, and carries on by itself if the first failed.
    """

    def __init__(self, storage):
        rows = ImageFile.objects.filter(file_storage=storage).exclude(status=ImageFile.Status.MISSING)
        self.checksums = set(rows.values_list("checksum", flat=True))
        self.paths = set(rows.values_list("relative_path", flat=True))
        self.in_flight: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def claim(self, checksum: str) -> bool:
        """True if this caller now owns these bytes; False if they are already in the storage."""
        while True:
            with self.lock:
                if checksum in self.checksums:
                    return False
                pending = self.in_flight.get(checksum)
                if pending is None:
                    self.in_flight[checksum] = threading.Event()
                    return True
            pending.wait()

    def settle(self, checksum: str, *, stored: bool) -> None:
        with self.lock:
            if stored:
                self.checksums.add(checksum)
            event = self.in_flight.pop(checksum, None)
        if event is not None:
            event.set()


class _Worker:
    def __init__(self, *, root: Path, target: PurePosixPath, claims: _Claims, max_pixels: int):
        self.root, self.target, self.claims, self.max_pixels = root, target, claims, max_pixels

    def prepare_unit(self, unit: Unit) -> tuple[list[Prepared], "ImportAborted | None"]:
        """The unit's files, and the abort that stopped it if the storage could take no more.

        Files prepared before an abort are returned too: they are in photos/ already and must get their rows.
        """
        results = []
        try:
            for f in unit.files:
                results.append(self.prepare(f))
            has_item = any(not (p.failure or p.skipped) for p in results)
            for f, role in unit.companions:
                if has_item:
                    results.append(self.prepare(f, role=role))
                    continue
                p = Prepared(f, role=role)
                if unit.files:
                    p.failure = ("item_failed", "its photo or video could not be archived, so it was not copied either")
                else:
                    p.skipped = (
                        "orphan_companion",
                        f"a {role} file with no photo or video named {f.relative.stem}.* beside it: left in the source",
                    )
                results.append(p)
        except ImportAborted as abort:
            return results, abort
        return results, None

    def prepare(self, src: SourceFile, *, role: str = ImageFile.Role.ORIGINAL) -> Prepared:
        """Read one source file through a descriptor opened from the source root, nothing followed: checksum,
        inspection and copy all read that very file (by /proc/self/fd), never its name again."""
        with ExitStack() as closing:
            try:
                opened = closing.enter_context(src.reading())
            except drive.UnsafeLayout as problem:  # a folder on the way, or the file, is no longer what was walked
                p = Prepared(src, role=role)
                p.failure = ("unsafe_source", unsafe_reason(problem))
                return p
            except OSError as exc:
                p = Prepared(src, role=role)
                p.failure = ("unreadable", f"unreadable: {exc.strerror}")
                return p
            return self._prepare(src, opened, role)

    def _prepare(self, src: SourceFile, opened, role: str) -> Prepared:
        p = Prepared(src, role=role)
        try:
            p.checksum = file_checksum(opened.path)
        except OSError as exc:
            p.failure = ("unreadable", f"unreadable: {exc.strerror}")
            return p
        if not self.claims.claim(p.checksum):
            p.duplicate = True
            return p
        try:
            if role == ImageFile.Role.ORIGINAL:
                p.info = inspection.inspect_file(
                    opened.typed_path, checksum=p.checksum, mtime_ns=opened.stat.st_mtime_ns, max_pixels=self.max_pixels
                )
                p.xmp = metadata.read_embedded(p.info.xmp)
                if p.info.hotpreview:
                    self._store_hotpreview(p.info)
            elif role == ImageFile.Role.SIDECAR:
                p.xmp, p.xmp_problem = metadata.read_sidecar(opened.path, opened.stat.st_size)
            relative = PurePosixPath(PHOTOS_DIR) / self.target / src.relative
            p.stored_path, p.copied = copy_verified(
                opened.path,
                checksum=p.checksum,
                size=opened.stat.st_size,
                root=self.root,
                relative=relative,
                taken_paths=self.claims.paths,
            )
            with self.claims.lock:
                self.claims.paths.add(p.stored_path)
            self.claims.settle(p.checksum, stored=True)
        except media.MediaRejected as exc:
            if exc.code == "not_image":
                p.skipped = (exc.code, f"not a photo, video or companion ({exc.message}): left in the source")
            else:
                p.failure = (exc.code, str(exc))
        except CopyVerificationFailed as exc:
            p.failure = ("copy_failed", f"copy failed verification: {exc}")
        except OSError as exc:
            if exc.errno in STORAGE_ERRNOS or not self.root.is_dir():
                self.claims.settle(p.checksum, stored=False)
                raise storage_trouble(self.root, exc) from exc
            p.failure = ("unreadable", f"could not be copied: {exc.strerror}")
        except BaseException:
            self.claims.settle(p.checksum, stored=False)
            raise
        if p.failure or p.skipped:
            self.claims.settle(p.checksum, stored=False)
        return p

    def adopt(self, src: SourceFile, checksum: str | None, *, role: str = ImageFile.Role.ORIGINAL) -> Prepared:
        """Learn a file that is already in photos/ (found by a scan): the import's steps without the copy.

        The file is read through the storage's descriptor, nothing followed: a folder or file swapped for a link
        or a pipe since the walk raises drive.UnsafeLayout, and the storage is unsafe (the scan says so)."""
        p = Prepared(src, role=role, checksum=checksum)
        try:
            with src.reading() as opened:
                if p.checksum is None:
                    p.checksum = file_checksum(opened.path)
                if role == ImageFile.Role.ORIGINAL:
                    p.info = inspection.inspect_file(
                        opened.typed_path, checksum=p.checksum, mtime_ns=src.mtime_ns, max_pixels=self.max_pixels
                    )
                    p.xmp = metadata.read_embedded(p.info.xmp)
                elif role == ImageFile.Role.SIDECAR:
                    p.xmp, p.xmp_problem = metadata.read_sidecar(opened.path, opened.stat.st_size)
            if p.info and p.info.hotpreview:
                self._store_hotpreview(p.info)
            p.stored_path = src.relative.as_posix()
        except media.MediaRejected as exc:
            p.failure = (exc.code, str(exc))
        except OSError as exc:
            p.failure = ("unreadable", f"unreadable: {exc.strerror}")
        return p

    def _store_hotpreview(self, info) -> None:
        relative = hotpreview_relative_path(info.hothash)
        # Through the storage's descriptor, nothing followed: a fan-out folder that is a link (or a file, or
        # anything but a folder) raises UnsafeLayout and nothing is written through it. The storage folder
        # itself is only opened, never made, so a storage that has gone is never re-created.
        with drive.Storage(self.root) as storage:
            if storage.kind(relative) == "file":
                return
            storage.write_atomic(relative, info.hotpreview, create_folders=True)


def _photo_defaults(info, session) -> dict:
    return {
        "hothash_version": media.HOTHASH_VERSION,
        "width": info.width,
        "height": info.height,
        "taken_at": info.taken_at,
        "gps_latitude": info.gps_latitude,
        "gps_longitude": info.gps_longitude,
        "camera_make": info.camera_make[:200],
        "camera_model": info.camera_model[:200],
        "has_hotpreview": info.has_hotpreview,
        "hotpreview": info.hotpreview,
        "media_type": info.media_type,
        "duration_s": info.duration_s,
        "codec": info.codec[:40],
        "author": session.default_author,
    }


def _record_unit(results: list[Prepared], *, session: ImportSession, report: ImportReport) -> None:
    """Write the rows of one unit (one item, its originals and companions) and their fates in one transaction."""
    storage = session.file_storage
    now = timezone.now()
    fates = []
    # Embedded XMP first, then the sidecars: a new item takes what they say over what its EXIF said.
    xmp_sources = [p.xmp for p in results if p.xmp is not None and not (p.failure or p.skipped or p.duplicate)]
    with transaction.atomic():
        photo = None
        for p in results:
            relative = p.src.relative.as_posix()
            fate = SourceEntry(
                import_session=session, path=relative[:4096], role=p.role, file_size=p.src.size, updated_at=now
            )
            fates.append(fate)
            if p.skipped:
                report.skip(relative, *p.skipped)
                fate.fate, (fate.code, fate.reason) = SourceEntry.Fate.SKIPPED, _fate_reason(p.skipped)
                continue
            if p.failure:
                report.fail(relative, *p.failure)
                fate.fate, (fate.code, fate.reason) = SourceEntry.Fate.FAILED, _fate_reason(p.failure)
                continue
            if p.duplicate:
                report.duplicates += 1
                existing = (
                    ImageFile.objects.filter(file_storage=storage, checksum=p.checksum)
                    .exclude(status=ImageFile.Status.MISSING)
                    .select_related("photo")
                    .first()
                )
                if photo is None and p.role == ImageFile.Role.ORIGINAL:
                    photo = existing.photo if existing else None
                fate.fate, fate.stored_path = SourceEntry.Fate.DUPLICATE, existing.relative_path if existing else ""
                continue
            is_primary = False
            if photo is None:
                photo, created = Photo.objects.get_or_create(
                    hothash=p.info.hothash,
                    defaults={**_photo_defaults(p.info, session), **metadata.merged_values(xmp_sources)},
                )
                report.photos_created += int(created and photo.media_type == Photo.MediaType.PHOTO)
                report.videos_created += int(created and photo.media_type == Photo.MediaType.VIDEO)
                is_primary = created or not photo.files.filter(is_primary=True).exists()
            try:
                with drive.Storage(storage.full_path) as opened:
                    st = opened.lstat(p.stored_path)  # the folders on the way are walked without following
                if not stat.S_ISREG(st.st_mode):
                    raise drive.UnsafeLayout(opened.shown(p.stored_path), drive.describe_entry(st.st_mode), "a file")
            except OSError as exc:
                # The drive went after the copy was placed: this unit's rows roll back, and a re-run
                # finds the copy where it lies and records it.
                raise storage_trouble(storage.full_path, exc) from exc
            ImageFile.objects.create(
                photo=photo,
                import_session=session,
                file_storage=storage,
                relative_path=p.stored_path,
                original_filename=p.src.path.name[:1024],
                file_format=p.info.file_format if p.info else companion_format(p.src.relative),
                file_size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                checksum=p.checksum,
                is_primary=is_primary,
                role=p.role,
                status=ImageFile.Status.PRESENT,
                last_seen_at=now,
                # Its bytes were just read and found equal to the checksum: the verified copy re-read them (or
                # re-hashed a copy already in place), and an adopted file was hashed where it lies (issue 17).
                verified_at=now,
            )
            report.imported += 1
            report.companions += p.role != ImageFile.Role.ORIGINAL
            report.bytes_copied += st.st_size if p.copied else 0
            fate.stored_path = p.stored_path
            if p.xmp_problem:
                fate.reason = f"archived, but its XMP was not read: {p.xmp_problem}"[:1000]
            fate.fate = SourceEntry.Fate.ARCHIVED if p.role == ImageFile.Role.ORIGINAL else SourceEntry.Fate.COMPANION
        _record_fates(fates)
    report.done += len(results)


def companion_format(relative: PurePosixPath) -> str:
    """A companion's file_format: its extension, lower-case (xmp, aae, thm, lrv, mov)."""
    return relative.suffix.lower().lstrip(".")[:16]


def _fate_reason(code_and_reason: tuple[str, str]) -> tuple[str, str]:
    code, reason = code_and_reason
    return code[:40], reason[:1000]


FATE_FIELDS = ["fate", "role", "code", "reason", "stored_path", "file_size", "updated_at"]


def _record_fates(fates: list[SourceEntry]) -> None:
    """Each file's fate, replacing what an earlier run of the same session said of the same path."""
    if fates:
        SourceEntry.objects.bulk_create(
            fates, update_conflicts=True, unique_fields=["import_session", "path"], update_fields=FATE_FIELDS
        )


def import_folder(
    *,
    session_id: int,
    source_path: str,
    target_subdirectory: str = "",
    recursive: bool = True,
    progress=None,
    should_stop=None,
    threads: int | None = None,
    on_finished=None,
) -> ImportReport:
    """Import every file under source_path into the session's storage. Safe to re-run after a crash.

    `on_finished(session)` runs once the import stops, however it stops (the indexing app passes the writing of
    the session's and the storage's indexes: indexing/rewrite.py); an error in it is logged, never raised, so it
    neither fails an import whose files are all placed and recorded nor hides an exception already on its way.

    Something on the drive that is not what it should be (drive.UnsafeLayout) stops the import; the storage is
    then recorded as unavailable with that reason, and every copy already placed has its row.
    """
    session = ImportSession.objects.select_related("file_storage", "default_author").get(pk=session_id)
    try:
        return _import_folder(
            session,
            source_path=source_path,
            target_subdirectory=target_subdirectory,
            recursive=recursive,
            progress=progress,
            should_stop=should_stop,
            threads=threads,
            on_finished=on_finished,
        )
    except drive.UnsafeLayout as problem:
        mark_unsafe(session.file_storage, problem)
        raise


def _import_folder(
    session, *, source_path, target_subdirectory, recursive, progress, should_stop, threads, on_finished
) -> ImportReport:
    progress = progress or (lambda **kw: None)
    storage = session.file_storage
    source, target = import_validate(session, source_path, target_subdirectory)
    report = ImportReport(
        session_id=session.pk,
        storage_uuid=str(storage.storage_uuid),
        source_path=str(source),
        target_subdirectory=target.as_posix() if target.parts else "",
    )
    started = time.monotonic()
    threads = threads or settings.IMALINK_IMPORT_THREADS

    with storage_lock(storage, wait=settings.IMALINK_LOCK_WAIT, should_stop=should_stop), ExitStack() as closing:
        storage_require_available(storage, writable=True)
        # Checked again now that the lock is held, and from here on read through one descriptor, never by name.
        tree = closing.enter_context(reopen_source(source_path, source))
        root = storage.full_path
        removed = clean_tmp(root)
        if removed:
            logger.info("removed %d partial copies left in %s by an interrupted run", removed, root / TMP_DIR)
        session.source_path, session.target_subdirectory = str(source), report.target_subdirectory
        ImportSession.objects.filter(pk=session.pk).update(
            source_path=session.source_path, target_subdirectory=session.target_subdirectory
        )

        files, skipped = tree.walk(recursive=recursive)
        walk_fates = []
        for s in skipped:
            report.fail(s.relative, s.code, s.reason)
            code, reason = _fate_reason((s.code, s.reason))
            walk_fates.append(
                SourceEntry(
                    import_session=session,
                    path=s.relative[:4096],
                    fate=SourceEntry.Fate.FAILED,
                    code=code,
                    reason=reason,
                )
            )
        _record_fates(walk_fates)
        units = group_units(files, media.RAW_EXTENSIONS)
        report.total = len(files)
        progress(total=report.total, done=0, imported=0, duplicates=0, failed=report.failed, current=None, force=True)

        worker = _Worker(root=root, target=target, claims=_Claims(storage), max_pixels=settings.IMALINK_MAX_PIXELS)
        pending = iter(units)
        in_flight = {}
        try:
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="import") as pool:

                def submit_next() -> bool:
                    unit = next(pending, None)
                    if unit is None:
                        return False
                    in_flight[pool.submit(worker.prepare_unit, unit)] = unit
                    return True

                for _ in range(threads * 2):
                    if not submit_next():
                        break
                aborted = None
                while in_flight:
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in finished:
                        unit = in_flight.pop(future)
                        results, abort = future.result()
                        # Even after an abort, every copy already made is recorded: no file in photos/ without a row.
                        _record_unit(results, session=session, report=report)
                        aborted = aborted or abort
                        if not report.cancelled and aborted is None:
                            submit_next()
                        progress(
                            done=report.done,
                            imported=report.imported,
                            duplicates=report.duplicates,
                            failed=report.failed,
                            current=(unit.files or [c for c, _role in unit.companions])[0].relative.as_posix(),
                            recent_failures=report.failures[-10:],
                        )
                    if not report.cancelled and should_stop is not None:
                        try:
                            should_stop()
                        except Exception:
                            # Stop taking new files; the ones in hand are finished and recorded first.
                            report.cancelled = True
                if aborted is not None:
                    raise aborted
        finally:
            _call_finished(on_finished, session)
            report.images_count = ImageFile.objects.filter(import_session=session).count()
            report.duration_s = round(time.monotonic() - started, 3)
            report.files_per_s = round(report.done / report.duration_s, 2) if report.duration_s else 0.0
            progress(
                done=report.done,
                imported=report.imported,
                duplicates=report.duplicates,
                failed=report.failed,
                current=None,
                recent_failures=report.failures[-10:],
                force=True,
            )
    logger.info(
        "import into session %s: %d imported, %d duplicates, %d failed in %.1fs",
        session.pk,
        report.imported,
        report.duplicates,
        report.failed,
        report.duration_s,
    )
    return report


def _call_finished(on_finished, session: ImportSession) -> None:
    if on_finished is None:
        return
    try:
        on_finished(session)
    except ImalinkError as exc:  # e.g. unsafe_folder: imports/ is a symbolic link
        logger.warning("after the import into session %s: %s", session.pk, exc.message)
    except Exception:
        logger.exception("after the import into session %s", session.pk)


ADOPTED_SESSION_TITLE = "Adopted files"


def adopted_session(storage) -> ImportSession:
    """The storage's "Adopted files" session, found or made: where a scan records files found in photos/ (and a
    move from another storage lands, copies/reconcile.py)."""
    session = ImportSession.objects.filter(file_storage=storage, title=ADOPTED_SESSION_TITLE).order_by("id").first()
    if session is None:
        session = ImportSession.objects.create(
            file_storage=storage,
            title=ADOPTED_SESSION_TITLE,
            description="Files found in photos/ by a scan and adopted where they lie.",
        )
    return session


def adopt_in_place(*, storage, files, should_stop=None) -> ImportReport:
    """Record files a scan found in photos/ where they lie, in the storage's "Adopted files" session.

    The caller holds the storage lock. A file with bytes the storage already has becomes another file of
    that photo (it is really there, so it is tracked); a file that is not an image is reported, not adopted.
    """
    session = adopted_session(storage)
    session = ImportSession.objects.select_related("file_storage", "default_author").get(pk=session.pk)
    report = ImportReport(
        session_id=session.pk,
        storage_uuid=str(storage.storage_uuid),
        source_path=str(storage.full_path / PHOTOS_DIR),
        target_subdirectory="",
    )
    root = storage.full_path
    worker = _Worker(root=root, target=PurePosixPath(), claims=None, max_pixels=settings.IMALINK_MAX_PIXELS)
    with drive.Storage(root) as opened, SourceTree.on_storage(opened) as tree:
        sources = [SourceFile(root / d.path, PurePosixPath(d.path), d.size, d.mtime_ns, tree=tree) for d in files]
        known = {d.path: d.checksum for d in files}
        report.total = len(sources)
        for unit in group_units(sources, media.RAW_EXTENSIONS):
            if should_stop:
                should_stop()
            results = [worker.adopt(f, known.get(f.relative.as_posix())) for f in unit.files]
            if any(not p.failure for p in results):  # a companion found beside its item is adopted as one
                results += [worker.adopt(f, known.get(f.relative.as_posix()), role=role) for f, role in unit.companions]
            before = report.imported
            _record_unit(results, session=session, report=report)
            if report.imported > before:
                report.files.extend(p.stored_path for p in results if not p.failure)
    report.images_count = ImageFile.objects.filter(import_session=session).count()
    return report


def run_import_job(job, ctx, *, on_finished=None) -> dict:
    """Job runner for kind 'import' (registered by indexing, which passes `on_finished`: see import_folder)."""
    params = job.params
    report = import_folder(
        session_id=job.session_id,
        source_path=params["source_path"],
        target_subdirectory=params.get("target_subdirectory") or "",
        recursive=params.get("recursive", True),
        progress=ctx.progress,
        should_stop=ctx.check_cancelled,
        on_finished=on_finished,
    )
    if report.cancelled:
        raise JobCancelled(result=report.as_dict())
    return report.as_dict()
