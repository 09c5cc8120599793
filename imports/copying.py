"""The verified copy into a storage: into .imalink/tmp/, fsync, re-read and compare, then placed without
ever replacing a file that is already there (a clash gets ` (2)`, ` (3)`, ...).
"""

import errno
import os
import threading
import uuid
from pathlib import Path, PurePosixPath

import xxhash

from storages.atomic import fsync_dir, make_folders_below

from .checksums import CHUNK, file_checksum

TMP_DIR = Path(".imalink") / "tmp"
_place_lock = threading.Lock()


class CopyVerificationFailed(Exception):
    pass


def clean_tmp(root: Path) -> int:
    """Remove partial copies left by a run that was killed. Only ImaLink's own tmp folder is touched."""
    removed = 0
    tmp = root / TMP_DIR
    for entry in os.scandir(tmp):
        if entry.is_file(follow_symlinks=False) and entry.name.startswith("import-"):
            os.unlink(entry.path)
            removed += 1
    return removed


def _copy_to_tmp(source: Path, root: Path) -> Path:
    tmp = root / TMP_DIR / f"import-{uuid.uuid4().hex}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _verify(tmp: Path, checksum: str) -> None:
    # Read back what the drive holds, not what we meant to write.
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except (AttributeError, OSError):
        pass
    finally:
        os.close(fd)
    digest = xxhash.xxh3_128()
    with open(tmp, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != checksum:
        raise CopyVerificationFailed(f"the copy reads back as {digest.hexdigest()}, not {checksum}")


def candidate_names(relative: PurePosixPath):
    yield relative
    n = 2
    while True:
        yield relative.with_name(f"{relative.stem} ({n}){relative.suffix}")
        n += 1


def _place(tmp: Path, dest: Path) -> bool:
    """Move tmp to dest only if dest does not exist. False if it does."""
    try:
        os.link(tmp, dest)  # atomic, and fails rather than replace
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # Filesystems without hard links (FAT, exFAT): we hold the storage lock, so check-then-rename is ours alone.
        with _place_lock:
            if os.path.lexists(dest):
                return False
            os.rename(tmp, dest)
            return True
    os.unlink(tmp)
    return True


def copy_verified(source: Path, *, checksum: str, size: int, root: Path, relative: PurePosixPath, taken_paths: set[str]) -> tuple[str, bool]:
    """Put `source` at root/relative (or a ` (n)` variant). Returns (storage-relative path, copied).

    A file already at a candidate name with the same bytes that no row claims is reused, not copied again:
    that is how a re-run finishes an import that was killed between the rename and the database write.
    """
    tmp = None
    try:
        for candidate in candidate_names(relative):
            dest = root / candidate
            key = candidate.as_posix()
            if key in taken_paths:
                continue
            if os.path.lexists(dest):
                if not os.path.islink(dest) and os.path.isfile(dest) and os.path.getsize(dest) == size and file_checksum(dest) == checksum:
                    return key, False
                continue
            if tmp is None:
                # Below photos/ only, one level at a time: a storage that has gone is never re-created.
                make_folders_below(root / "photos", dest.parent.relative_to(root / "photos"))
                tmp = _copy_to_tmp(source, root)
                st = os.stat(source)
                os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # keep the camera's file time, as cp -p does
                _verify(tmp, checksum)
            if _place(tmp, dest):
                tmp = None
                fsync_dir(dest.parent)
                return key, True
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    raise AssertionError("unreachable")
