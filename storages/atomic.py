"""The one way ImaLink writes a file under a storage: a temporary file, fsync, rename, fsync the folder.

A crash at any point leaves either the old file or the new one, never a torn mix.
"""

import os
import tempfile
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    folder = path.parent
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(folder)


def make_folders_below(base: Path, relative) -> Path:
    """Create base/relative one level at a time, never creating `base` or anything above it.

    If the storage has gone (a drive unplugged) this fails with FileNotFoundError instead of re-creating
    the storage's path on an empty mount point, as mkdir(parents=True) would, even mid-way through.
    """
    path = base
    for part in Path(relative).parts:
        path = path / part
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
    return path
