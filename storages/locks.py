"""One mutating job per storage at a time: an flock on `.imalink/lock` inside the storage itself.

The lock lives on the drive, so every process on every host that mounts the storage sees it, and the
kernel drops it when its holder dies (a SIGKILLed worker never leaves a stale lock behind).
"""

import errno
import fcntl
import os
import time
from contextlib import contextmanager

from imalink.errors import Conflict

LOCK_FILE = ".imalink/lock"


class StorageBusy(Conflict):
    code = "storage_busy"


@contextmanager
def storage_lock(storage, *, wait: float = 0.0, should_stop=None, poll: float = 0.2):
    """Hold the storage's lock for the block. Waits up to `wait` seconds, then raises StorageBusy.

    `should_stop` is called while waiting, so a cancelled job stops waiting too.
    """
    path = storage.full_path / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        # A read-only drive: flock works on a read-only descriptor, and if the lock file cannot exist there,
        # nothing can write to the drive either, so reading it (scan, validate) needs no lock.
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
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
                        f"Storage {storage.display_name!r} is busy with another import, scan or index job; try again when it finishes.",
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
