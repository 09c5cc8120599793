"""One mutating job per storage at a time: an flock on `.imalink/lock` inside the storage itself.

The lock lives on the drive, so every process on every host that mounts the storage sees it, and the
kernel drops it when its holder dies (a SIGKILLed worker never leaves a stale lock behind).
"""

import errno
import fcntl
import os
import stat
import time
from contextlib import contextmanager

from imalink.errors import Conflict

from . import drive
from .layout import LOCK_FILE  # noqa: F401  (re-exported: callers read it here)

LOCK_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class StorageBusy(Conflict):
    code = "storage_busy"


@contextmanager
def storage_lock(storage, *, wait: float = 0.0, should_stop=None, poll: float = 0.2):
    """Hold the storage's lock for the block. Waits up to `wait` seconds, then raises StorageBusy.

    `should_stop` is called while waiting, so a cancelled job stops waiting too.
    """
    fd = _open_lock(storage.full_path)
    if fd is None:
        yield
        return
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StorageBusy(
                        f"Storage {storage.display_name!r} is busy with another import, scan or index job; "
                        "try again when it finishes.",
                        details={"storage_uuid": str(storage.storage_uuid)},
                    ) from None
                if should_stop:
                    should_stop()
                time.sleep(poll)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.uname().nodename} {os.getpid()}\n".encode())
        except OSError:
            pass  # who holds the lock is a courtesy note; a read-only descriptor cannot write it
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _open_lock(root) -> int | None:
    """A descriptor on the storage's lock file, reached from the storage folder and never followed.

    Whatever stands at .imalink/lock must be a plain file: a symbolic link (say, to /etc/shadow), a named pipe
    or a folder there raises drive.UnsafeLayout before anything is opened for writing, truncated or blocked on.
    None on a read-only drive where the lock file cannot exist: nothing can write there, so reading needs no lock.
    """
    with drive.Storage(root) as storage, storage.parent_of(LOCK_FILE) as (dirfd, name):
        shown = storage.shown(LOCK_FILE)
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | LOCK_FLAGS, 0o644, dir_fd=dirfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise drive.UnsafeLayout(shown, "a symbolic link", "a file") from None
            if exc.errno == errno.EISDIR:
                raise drive.UnsafeLayout(shown, "a folder", "a file") from None
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            # A read-only drive: flock works on a read-only descriptor.
            try:
                fd = os.open(name, os.O_RDONLY | LOCK_FLAGS, dir_fd=dirfd)
            except FileNotFoundError:
                return None
            except OSError as again:
                if again.errno == errno.ELOOP:
                    raise drive.UnsafeLayout(shown, "a symbolic link", "a file") from None
                return None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise drive.UnsafeLayout(shown, drive.describe_entry(mode), "a file")
        return fd
