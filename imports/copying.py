"""The verified copy into a storage: into .imalink/tmp/, fsync, re-read and compare, then placed without
ever replacing a file that is already there (a clash gets ` (2)`, ` (3)`, ...).

Everything on the storage's side is reached through storages.drive, from the storage folder's descriptor:
.imalink/tmp and every folder under photos/ are opened with O_NOFOLLOW one level at a time, the temporary
copy is created with O_EXCL | O_NOFOLLOW in the tmp folder's descriptor, and it is linked (or renamed) into
the destination folder's descriptor. A symbolic link (or anything but a folder) where one of those folders
belongs raises UnsafeLayout, and nothing is read, written or deleted through it.
"""

import errno
import os
import stat
import threading
import uuid
from pathlib import Path, PurePosixPath

from storages import drive

from .checksums import CHUNK, fd_checksum

TMP_DIR = PurePosixPath(".imalink") / "tmp"
PHOTOS = "photos"
_place_lock = threading.Lock()


class CopyVerificationFailed(Exception):
    pass


def clean_tmp(root: Path) -> int:
    """Remove partial copies left by a run that was killed. Only plain files named import-* in ImaLink's own
    tmp folder are removed, by name relative to its descriptor; a tmp folder that is a link raises UnsafeLayout."""
    removed = 0
    with drive.Storage(root) as storage, storage.folder(TMP_DIR) as tmp_fd, os.scandir(tmp_fd) as entries:
        for entry in entries:
            if entry.name.startswith("import-") and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.name, dir_fd=tmp_fd)
                except FileNotFoundError:
                    continue
                removed += 1
    return removed


def _copy_to_tmp(source: Path | int, tmp_fd: int) -> str:
    """A new file in the tmp folder holding source's bytes, fsync'ed, with source's times. Its name.

    `source` is a path, or a descriptor open for reading (which is read from its start and closed)."""
    name = f"import-{uuid.uuid4().hex}.part"
    if isinstance(source, int):
        os.lseek(source, 0, os.SEEK_SET)
    with open(source, "rb") as src:
        fd = os.open(name, drive.WRITE_NEW_FLAGS, 0o644, dir_fd=tmp_fd)
        try:
            with os.fdopen(fd, "wb") as dst:
                st = os.fstat(src.fileno())
                _copy_bytes(src, dst)
                os.utime(dst.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))  # keep the file time, as cp -p does
                os.fsync(dst.fileno())
        except BaseException:
            _unlink_quietly(name, tmp_fd)
            raise
    return name


def _copy_bytes(src, dst) -> None:
    """All of src (from where it stands) into dst, in the kernel (copy_file_range) where the filesystems allow,
    else through a 1 MiB buffer: the bytes are checked after either way (_verify), so the way does not matter."""
    src_fd, dst_fd = src.fileno(), dst.fileno()
    try:
        while os.copy_file_range(src_fd, dst_fd, 1 << 30):
            pass
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF):
            raise
        # Not between these filesystems (or an old kernel): start again where the source stands.
        os.lseek(dst_fd, 0, os.SEEK_SET)
        os.ftruncate(dst_fd, 0)
        os.lseek(src_fd, 0, os.SEEK_SET)
    while chunk := src.read(CHUNK):
        dst.write(chunk)
    dst.flush()


def _verify(tmp_fd: int, name: str, checksum: str, shown) -> None:
    # Read back what the drive holds, not what we meant to write.
    fd, _ = drive.open_file_at(tmp_fd, name, shown=shown)
    try:
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except (AttributeError, OSError):
            pass
        actual, _ = fd_checksum(fd)
    finally:
        os.close(fd)
    if actual != checksum:
        raise CopyVerificationFailed(f"the copy reads back as {actual}, not {checksum}")


def candidate_names(relative: PurePosixPath):
    yield relative
    n = 2
    while True:
        yield relative.with_name(f"{relative.stem} ({n}){relative.suffix}")
        n += 1


def _lmode(dirfd: int, name: str) -> int | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return None


def _place(tmp_fd: int, tmp_name: str, dest_fd: int, name: str) -> bool:
    """Move the tmp file to `name` in dest_fd only if nothing is there. False if something is."""
    try:
        # atomic, and fails rather than replace; the entry itself is linked, never what it might point to
        os.link(tmp_name, name, src_dir_fd=tmp_fd, dst_dir_fd=dest_fd, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # Filesystems without hard links (FAT, exFAT): we hold the storage lock, so check-then-rename is ours alone.
        with _place_lock:
            if _lmode(dest_fd, name) is not None:
                return False
            os.rename(tmp_name, name, src_dir_fd=tmp_fd, dst_dir_fd=dest_fd)
            return True
    os.unlink(tmp_name, dir_fd=tmp_fd)
    return True


def _unlink_quietly(name: str, dirfd: int) -> None:
    try:
        os.unlink(name, dir_fd=dirfd)
    except FileNotFoundError:
        pass


def copy_verified(
    source: Path | int, *, checksum: str, size: int, root: Path, relative: PurePosixPath, taken_paths: set[str]
) -> tuple[str, bool]:
    """Put `source` at root/relative (or a ` (n)` variant). Returns (storage-relative path, copied).

    `source` is a path, or a descriptor open for reading that the copy owns and closes: a file of another storage
    opened through storages.drive (Storage.open_read), so nothing on that drive is followed either.

    A file already at a candidate name with the same bytes that no row claims is reused, not copied again:
    that is how a re-run finishes an import that was killed between the rename and the database write.
    A folder at a candidate name is passed over; a symbolic link, named pipe, socket or device raises
    UnsafeLayout. `relative` starts with photos/; its folders are made below photos/ one level at a time.
    """
    relative = PurePosixPath(relative)
    below = relative.parent.relative_to(PHOTOS)
    with drive.Storage(root) as storage:
        # Below photos/ only, one level at a time, none followed: a storage that has gone is never re-created.
        with storage.folder(PHOTOS) as photos_fd:
            dest_fd = drive.open_dir(photos_fd, below, create=True, shown=storage.shown(PHOTOS))
        tmp_fd, tmp_name = -1, None
        source_unread = isinstance(source, int)  # a descriptor is closed by the copy that reads it, or here
        try:
            for candidate in candidate_names(relative):
                key = candidate.as_posix()
                if key in taken_paths:
                    continue
                name = candidate.name
                mode = _lmode(dest_fd, name)
                if mode is not None:
                    if stat.S_ISREG(mode):
                        if _same_bytes(dest_fd, name, size, checksum, storage.shown(key)):
                            return key, False
                    elif not stat.S_ISDIR(mode):
                        raise drive.UnsafeLayout(storage.shown(key), drive.describe_entry(mode), "a file or a folder")
                    continue
                if tmp_name is None:
                    tmp_fd = drive.open_dir(storage.fd, TMP_DIR, shown=storage.root)
                    source_unread = False
                    tmp_name = _copy_to_tmp(source, tmp_fd)
                    _verify(tmp_fd, tmp_name, checksum, storage.shown(TMP_DIR / tmp_name))
                if _place(tmp_fd, tmp_name, dest_fd, name):
                    tmp_name = None
                    os.fsync(dest_fd)
                    return key, True
        finally:
            if source_unread:
                os.close(source)
            if tmp_name is not None:
                _unlink_quietly(tmp_name, tmp_fd)
            if tmp_fd >= 0:
                os.close(tmp_fd)
            os.close(dest_fd)
    raise AssertionError("unreachable")


def _same_bytes(dest_fd: int, name: str, size: int, checksum: str, shown) -> bool:
    fd, st = drive.open_file_at(dest_fd, name, shown=shown)
    try:
        return st.st_size == size and fd_checksum(fd)[0] == checksum
    finally:
        os.close(fd)
