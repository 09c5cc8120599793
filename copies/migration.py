"""Migration that ImaLink does (issue 17 point 5): copy a whole storage folder to a new base path, every file
verified by its xxh3, check the copy against the database file by file, then switch base_path to it.

Resumable: the copy is made in place at {new_base_path}/{directory_name}, each file through a temporary file
in the copy's own .imalink/tmp (fsync, re-read with the page cache dropped, compare, rename), so a run killed
at any moment leaves whole, verified files and stray temporaries that the next run removes; a re-run skips
every file already there with equal bytes. The marker (.imalink/storage.json) is copied last, so until the copy
is complete nothing takes it for this storage; the copy in progress is known by .imalink/migration.json.

The switch is storages.services' verified migration (via indexing.rewrite, which rewrites the master index at
the new place); the old copy is never written to, and the user removes it. docs/COPIES.md gives the decisions.
"""

import json
import logging
import os
import stat
import threading
import time
import uuid as uuid_lib
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import xxhash
from django.conf import settings
from django.utils import timezone

from imalink.errors import Conflict, ImalinkError
from imports.checksums import CHUNK, fd_checksum
from imports.models import ImageFile
from indexing import rewrite
from jobs.services import JobCancelled
from storages import drive, layout
from storages.locks import storage_lock
from storages.models import FileStorage
from storages.paths import is_inside, resolve_client_dir
from storages.services import GB, storage_require_available

logger = logging.getLogger("imalink.copies")

JOB_KIND = "migrate"
JOURNAL = f"{layout.OWN_DIR}/migration.json"  # in the copy being made: whose copy it is, and from where
MARKER = str(layout.MARKER)
# Not copied: partial copies, the lock (each place has its own), and the journal of a migration into this storage.
NOT_COPIED = (layout.TMP_DIR + "/", layout.LOCK_FILE, JOURNAL)
TMP_PREFIX = "migrate-"
MAX_LISTED = 500


class MigrationCopyRefused(ImalinkError):
    """new_base_path cannot take this storage: nothing was copied or changed."""

    code = "migration_refused"


class MigrationCopyMismatch(Conflict):
    """The copy does not match the database: base_path was not switched."""

    code = "migration_mismatch"


@dataclass
class MigrationCopyReport:
    storage_uuid: str
    old_base_path: str
    new_base_path: str
    old_copy: str
    new_copy: str
    old_copy_left_untouched: bool = True
    files_total: int = 0
    files_copied: int = 0
    files_already_there: int = 0
    files_set_aside: int = 0  # a different file stood where a photo goes in the copy: moved to its quarantine
    bytes_total: int = 0
    bytes_copied: int = 0
    files_verified: int = 0
    database_files_checked: int = 0
    not_copied: list[dict] = field(default_factory=list)  # entries that are not plain files (never followed)
    switched: bool = False
    migration: dict | None = None
    duration_s: float = 0.0
    message: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


# --- what is refused ----------------------------------------------------------------------------------


def _refuse(message: str, reason_code: str, **details) -> MigrationCopyRefused:
    return MigrationCopyRefused(message, details={"field": "new_base_path", "reason_code": reason_code, **details})


def migration_check(storage: FileStorage, new_base_path) -> Path:
    """The real folder `new_base_path` names, if this storage may be copied into it; else why not. Reads only.

    Refused: a path that is not absolute, normalised, existing and inside IMALINK_ALLOWED_ROOTS after symlinks
    (400, storages.paths); the storage's own base path, or a folder inside the storage itself (400); a
    {new_base_path}/{directory_name} that is a link or a file, holds another storage, or holds anything that is
    not this storage's copy (400); a storage whose drive is not there (409).
    """
    base = resolve_client_dir(new_base_path, field="new_base_path")
    storage_require_available(storage)
    root = Path(os.path.realpath(storage.full_path))
    shown = {"path": str(base), "storage_uuid": str(storage.storage_uuid)}
    if base == Path(os.path.realpath(storage.base_path)):
        raise _refuse(f"The storage is already at {base}.", "already_there", **shown)
    if is_inside(base, root):
        raise _refuse(
            f"{base} is inside the storage itself ({root}): choose a folder on another drive or elsewhere.",
            "inside_storage",
            **shown,
        )
    _destination_state(storage, base / storage.directory_name)
    return base


def _destination_state(storage: FileStorage, dest: Path) -> str:
    """'new' (nothing there), 'empty', 'resume' (this storage's copy, complete or in progress); else refused."""
    uuid, shown = str(storage.storage_uuid), {"storage_folder": str(dest), "storage_uuid": str(storage.storage_uuid)}
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return "new"
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(
            f"{dest} is {drive.describe_entry(st.st_mode)}, not a folder: nothing is copied through it.",
            "destination_not_a_folder",
            **shown,
        )
    here = os.stat(storage.full_path)
    if (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino):
        raise _refuse(f"{dest} is the storage folder itself (a bind mount or a link above it).", "same_folder", **shown)
    marker = layout.read_marker(dest)
    if marker.unsafe is not None:
        raise _refuse(f"{dest} holds {marker.problem}: nothing is copied into it.", "unsafe_destination", **shown)
    if marker.storage_uuid is not None:
        if marker.storage_uuid != uuid:
            raise _refuse(
                f"{dest} holds another storage ({marker.storage_uuid}), not this one ({uuid}): nothing is copied over "
                "it. Choose another new_base_path.",
                "marker_mismatch",
                **shown,
            )
        return "resume"
    try:
        with drive.Storage(dest) as opened:
            if _journal_uuid(opened) == uuid:
                return "resume"
            if not opened.listdir(""):
                return "empty"
    except drive.UnsafeLayout as problem:
        raise _refuse(f"{dest} is not safe to copy into: {problem.reason}", "unsafe_destination", **shown) from None
    raise _refuse(
        f"{dest} already exists and is not a copy of this storage: nothing is copied over it. Move it aside, or "
        "choose another new_base_path.",
        "destination_not_empty",
        **shown,
    )


def _journal_uuid(opened: drive.Storage) -> str | None:
    try:
        data = json.loads(opened.read_bytes(JOURNAL, limit=64 * 1024))
    except (OSError, ValueError, drive.FileTooLarge):
        return None
    return data.get("storage_uuid") if isinstance(data, dict) else None


# --- the copy --------------------------------------------------------------------------------------------


def _planned(source: drive.Storage, report: MigrationCopyReport) -> list[tuple[str, int]]:
    """(path, size) of every plain file of the storage to copy, the marker last; anything else is listed."""
    files, marker = [], None

    def unreadable(relative, exc):
        raise exc  # a storage that cannot be read whole cannot be migrated; the error says which path

    for relative, st in drive.walk_files(source.fd, strict=False, shown=source.root, on_error=unreadable):
        if relative.startswith(NOT_COPIED[0]) or relative in NOT_COPIED[1:]:
            continue
        if not stat.S_ISREG(st.st_mode):
            if len(report.not_copied) < MAX_LISTED:
                report.not_copied.append({"path": relative, "found": drive.describe_entry(st.st_mode)})
            continue
        if relative == MARKER:
            marker = (relative, st.st_size)
            continue
        files.append((relative, st.st_size))
    if marker is None:
        raise ImalinkError(f"{source.shown(MARKER)} is missing.", code="marker_missing", status=409)
    files.append(marker)
    return files


def _prepare_destination(storage: FileStorage, dest: Path, source_root: Path) -> None:
    """The copy's folder, its own sub-folders and journal; partial copies of a killed run are removed."""
    try:
        os.mkdir(dest, 0o755)
    except FileExistsError:
        pass
    with drive.Storage(dest) as opened:
        for sub in layout.SUBFOLDERS:
            with opened.folder(sub, create=True):
                pass
        if _journal_uuid(opened) is None:
            journal = {
                "storage_uuid": str(storage.storage_uuid),
                "copied_from": str(source_root),
                "started_at": timezone.now().isoformat(),
            }
            opened.write_atomic(JOURNAL, (json.dumps(journal, indent=2) + "\n").encode())
        with opened.folder(layout.TMP_DIR) as tmp_fd, os.scandir(tmp_fd) as entries:
            for entry in entries:
                if entry.name.startswith(TMP_PREFIX) and entry.is_file(follow_symlinks=False):
                    os.unlink(entry.name, dir_fd=tmp_fd)
        os.fsync(opened.fd)
    drive.fsync_dir(dest.parent)


def _hash_copy(src_fd: int, tmp_fd: int, name: str, st: os.stat_result, buffer: bytearray) -> str:
    """Copy src_fd (from its start) into a new file `name` of tmp_fd, with src's times and mode, fsync'ed; the
    checksum of the bytes read."""
    digest, view = xxhash.xxh3_128(), memoryview(buffer)
    os.lseek(src_fd, 0, os.SEEK_SET)
    out = os.open(name, drive.WRITE_NEW_FLAGS, 0o600, dir_fd=tmp_fd)
    try:
        while n := os.readv(src_fd, [buffer]):
            chunk = view[:n]
            digest.update(chunk)
            while chunk:
                chunk = chunk[os.write(out, chunk) :]
        os.fchmod(out, stat.S_IMODE(st.st_mode))
        os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))  # the scan trusts size and mtime_ns at the new place
        os.fsync(out)
    finally:
        os.close(out)
    return digest.hexdigest()


def _read_back(dirfd: int, name: str, buffer: bytearray, shown) -> str:
    """The checksum of what the drive holds: the file's cached pages are dropped first (it was fsync'ed)."""
    fd, _ = drive.open_file_at(dirfd, name, shown=shown)
    try:
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except (AttributeError, OSError):
            pass
        return fd_checksum(fd, buffer)[0]
    finally:
        os.close(fd)


def _lmode(dirfd: int, name: str) -> int | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return None


class _Copier:
    """Copies one file of the storage to the same path in the copy, verified; thread-safe (one buffer each)."""

    def __init__(self, source: drive.Storage, dest: drive.Storage, stamp: str):
        self.source, self.dest, self.stamp = source, dest, stamp
        self.local = threading.local()
        self.tmp_fd = drive.open_dir(dest.fd, layout.TMP_DIR, shown=dest.root)

    def close(self) -> None:
        os.close(self.tmp_fd)

    def _buffer(self) -> bytearray:
        if not hasattr(self.local, "buffer"):
            self.local.buffer = bytearray(CHUNK)
        return self.local.buffer

    def copy(self, relative: str) -> tuple[str, str, int]:
        """(outcome, checksum, size): outcome is 'copied', 'there' (equal bytes already in place) or 'set_aside'
        (copied after a different file in the copy's photos/ was moved to its quarantine)."""
        buffer = self._buffer()
        src_fd, st = self.source.open_read(relative, noatime=True)
        try:
            with self.dest.parent_of(relative, create=True) as (dirfd, name):
                shown = self.dest.shown(relative)
                outcome = "copied"
                mode = _lmode(dirfd, name)
                if mode is not None:
                    if not stat.S_ISREG(mode):
                        raise drive.unsafe_entry(shown, mode, "a file")
                    there_fd, there = drive.open_file_at(dirfd, name, shown=shown)
                    try:
                        same_size = there.st_size == st.st_size
                        there_sum = fd_checksum(there_fd, buffer)[0] if same_size else None
                    finally:
                        os.close(there_fd)
                    if same_size:
                        source_sum = fd_checksum(src_fd, buffer)[0]
                        if there_sum == source_sum:
                            if there.st_mtime_ns != st.st_mtime_ns:
                                os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dirfd, follow_symlinks=False)
                            return "there", source_sum, st.st_size
                    if relative.startswith(layout.PHOTOS_DIR + "/"):
                        # Never replaced in place: a file of the user's photos/ that differs is set aside first.
                        aside = PurePosixPath(layout.QUARANTINE_DIR) / self.stamp / relative
                        self.dest.rename(relative, aside, create_folders=True)
                        outcome = "set_aside"
                tmp_name = f"{TMP_PREFIX}{uuid_lib.uuid4().hex}.part"
                try:
                    checksum = _hash_copy(src_fd, self.tmp_fd, tmp_name, st, buffer)
                    back = _read_back(self.tmp_fd, tmp_name, buffer, self.dest.shown(f"{layout.TMP_DIR}/{tmp_name}"))
                    if back != checksum:
                        raise ImalinkError(
                            f"The copy of {relative} reads back as {back}, not {checksum}: the new drive may be "
                            "failing. Nothing was switched; run the migration again or choose another drive.",
                            code="copy_failed",
                            status=500,
                            details={"path": relative},
                        )
                    os.rename(tmp_name, name, src_dir_fd=self.tmp_fd, dst_dir_fd=dirfd)
                    tmp_name = None
                    os.fsync(dirfd)
                finally:
                    if tmp_name is not None:
                        try:
                            os.unlink(tmp_name, dir_fd=self.tmp_fd)
                        except FileNotFoundError:
                            pass
                return outcome, checksum, st.st_size
        finally:
            os.close(src_fd)


def _in_order(pool: ThreadPoolExecutor, copier: _Copier, files, limit: int) -> Iterator[tuple[str, tuple]]:
    """(path, copier.copy(path)) for each file, at most `limit` in flight; the marker (last) after all others."""
    *others, marker = files
    pending, in_flight = iter(others), {}
    for relative, _size in pending:
        in_flight[pool.submit(copier.copy, relative)] = relative
        if len(in_flight) >= limit:
            break
    while in_flight:
        finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        for future in finished:
            relative = in_flight.pop(future)
            yield relative, future.result()
            nxt = next(pending, None)
            if nxt is not None:
                in_flight[pool.submit(copier.copy, nxt[0])] = nxt[0]
    yield marker[0], copier.copy(marker[0])


def _copy_tree(storage, dest_root: Path, report, progress, should_stop) -> dict[str, tuple[str, int]]:
    """Copy every planned file; returns {path: (checksum, size)} of what the copy now holds, verified."""
    held: dict[str, tuple[str, int]] = {}
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    with drive.Storage(storage.full_path) as source:
        files = _planned(source, report)
        report.files_total, report.bytes_total = len(files), sum(size for _, size in files)
        _check_space(dest_root.parent, report.bytes_total, dest_root)
        _prepare_destination(storage, dest_root, source.root)
        progress(
            total=report.bytes_total, done=0, files_total=report.files_total, files_done=0, phase="copy", force=True
        )
        sizes = dict(files)
        done = 0
        with drive.Storage(dest_root) as dest:
            copier = _Copier(source, dest, stamp)
            try:
                threads = settings.IMALINK_COPY_THREADS
                with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="migrate") as pool:
                    stop = None
                    for relative, (outcome, checksum, size) in _in_order(pool, copier, files, threads * 2):
                        held[relative] = (checksum, size)
                        report.files_verified += 1
                        if outcome == "there":
                            report.files_already_there += 1
                        else:
                            report.files_copied += 1
                            report.bytes_copied += size
                            report.files_set_aside += outcome == "set_aside"
                        done += sizes[relative]
                        progress(done=done, files_done=len(held), current=relative)
                        if should_stop is not None and stop is None:
                            try:
                                should_stop()
                            except JobCancelled as exc:
                                stop = exc
                                break
                    if stop is not None:
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise stop
            finally:
                copier.close()
    return held


def _check_space(base: Path, needed: int, dest_root: Path) -> None:
    if os.path.lexists(dest_root):
        return  # a resumed copy: part of it is there already
    st = os.statvfs(base)
    free = st.f_bavail * st.f_frsize
    if free < needed:
        raise ImalinkError(
            f"{base} has {free / GB:.2f} GB free and the storage needs {needed / GB:.2f} GB: nothing was copied.",
            code="not_enough_space",
            status=409,
            details={"field": "new_base_path", "free_bytes": free, "needed_bytes": needed},
        )


def _check_against_database(storage, held: dict, report, progress) -> None:
    """Every file the database knows on this storage (present or modified) is in the copy, verified just now,
    with the size recorded; a present file also with the recorded checksum. Else MigrationCopyMismatch."""
    mismatches = []
    rows = (
        ImageFile.objects.filter(file_storage=storage)
        .exclude(status=ImageFile.Status.MISSING)
        .values_list("relative_path", "checksum", "file_size", "status")
    )
    progress(phase="check", force=True)
    for relative, checksum, size, status in rows.iterator(chunk_size=5000):
        report.database_files_checked += 1
        copy = held.get(relative)
        if copy is None:
            mismatches.append({"path": relative, "problem": "not in the copy (it is not on the storage either)"})
        elif copy[1] != size and status == ImageFile.Status.PRESENT:
            mismatches.append({"path": relative, "problem": f"{copy[1]:,} bytes, not the {size:,} recorded"})
        elif copy[0] != checksum and status == ImageFile.Status.PRESENT:
            mismatches.append({"path": relative, "problem": "its bytes are not the ones recorded (corrupt?)"})
    if mismatches:
        raise MigrationCopyMismatch(
            f"The copy does not match the database for {len(mismatches)} file(s), e.g. {mismatches[0]['path']}: "
            f"{mismatches[0]['problem']}. base_path was not switched. Run a scan or a full validation of the storage "
            "first.",
            details={"mismatches": mismatches[:MAX_LISTED], "count": len(mismatches)},
        )


def migrate_storage(
    *, storage: FileStorage, new_base_path: str, progress=None, should_stop=None
) -> MigrationCopyReport:
    """Copy the storage to {new_base_path}/{directory_name}, verified, check it against the database, switch
    base_path, re-check accessibility and rewrite the master index there. Holds the storage's lock throughout;
    never writes to the old copy (but the lock file's note of who holds it, as every job does)."""
    progress = progress or (lambda **kw: None)
    started = time.monotonic()
    base = migration_check(storage, new_base_path)
    old_root = storage.full_path
    report = MigrationCopyReport(
        storage_uuid=str(storage.storage_uuid),
        old_base_path=storage.base_path,
        new_base_path=str(base),
        old_copy=str(old_root),
        new_copy=str(base / storage.directory_name),
    )
    with storage_lock(storage, wait=settings.IMALINK_LOCK_WAIT, should_stop=should_stop):
        storage.refresh_from_db()
        if storage.base_path != report.old_base_path:
            raise Conflict(
                f"The storage was moved to {storage.base_path} while this migration waited for its lock.",
                code="storage_moved",
            )
        storage_require_available(storage)
        base = migration_check(storage, new_base_path)  # again, now that the lock is held
        held = _copy_tree(storage, base / storage.directory_name, report, progress, should_stop)
        _check_against_database(storage, held, report, progress)
        del held
        progress(phase="switch", force=True)
        migration = rewrite.storage_migrate(storage, new_base_path=str(base))
    report.migration = migration.as_dict()
    report.switched = migration.changed
    try:
        with drive.Storage(storage.full_path) as opened:
            opened.unlink(JOURNAL)  # the copy is this storage now
    except (OSError, drive.UnsafeLayout):
        pass
    report.duration_s = round(time.monotonic() - started, 3)
    report.message = (
        f"The storage now lives at {report.new_copy}. The old copy at {report.old_copy} was left untouched: "
        "remove it yourself when you no longer need it."
    )
    progress(phase="done", current=None, force=True)
    logger.info("migrated storage %s to %s (%d files copied)", storage.storage_uuid, base, report.files_copied)
    return report


def run_migrate_job(job, ctx) -> dict:
    """Job runner for kind 'migrate': job.storage moves to params["new_base_path"]."""
    storage = FileStorage.objects.get(pk=job.storage_id)
    return migrate_storage(
        storage=storage,
        new_base_path=job.params["new_base_path"],
        progress=ctx.progress,
        should_stop=ctx.check_cancelled,
    ).as_dict()


JOB_RUNNERS = {JOB_KIND: run_migrate_job}
