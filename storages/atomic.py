"""The one way ImaLink writes a file under a storage: a temporary file, fsync, rename, fsync the folder.

A crash at any point leaves either the old file or the new one, never a torn mix.
"""

import os
import stat
import tempfile
from pathlib import Path

from imalink.errors import Conflict


class UnsafeFolder(Conflict):
    """A folder ImaLink would write into is a symbolic link, or not a folder at all: it could lead off the drive."""

    code = "unsafe_folder"


def describe_entry(mode: int) -> str:
    """What a non-regular directory entry is, in words, from its lstat mode."""
    for test, words in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"),
                        (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISREG, "a file")):
        if test(mode):
            return words
    return "not a file"


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

    Every level it walks must be a real folder: a symbolic link (or a file) in its place is refused with
    UnsafeFolder, so nothing ImaLink writes can be led off the storage by what is on the drive.
    """
    path = base
    for part in Path(relative).parts:
        path = path / part
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        mode = os.lstat(path).st_mode
        if not stat.S_ISDIR(mode):
            raise UnsafeFolder(
                f"{path} is {describe_entry(mode)}, not a folder: ImaLink never writes through it. Move it aside and try again.",
                details={"path": str(path)},
            )
    return path
