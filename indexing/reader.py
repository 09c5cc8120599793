"""Reading index files from disk, which are untrusted: size-capped, parse errors reported, never raised."""

import errno
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from storages.drive import describe_entry

MAX_INDEX_BYTES = 512 * 1024 * 1024


@dataclass
class IndexReading:
    data: dict | None
    problem: str | None  # None, "missing", or why it cannot be used
    unsafe: str | None = None  # what stands there when it is not a plain file ("a symbolic link", ...)


def read_index(path: Path, *, max_bytes: int = MAX_INDEX_BYTES) -> IndexReading:
    """Read one index file as untrusted input: only a plain file is read (never through a symbolic link, never
    a named pipe that would block, a device or a folder), and never more than max_bytes of it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return IndexReading(None, "missing")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return IndexReading(
                None, "not a plain file: a symbolic link (ImaLink writes its indexes as plain files)", "a symbolic link"
            )
        return IndexReading(None, f"unreadable: {exc.strerror}")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return IndexReading(None, f"not a plain file: {describe_entry(st.st_mode)}", describe_entry(st.st_mode))
    with os.fdopen(fd, "rb") as handle:
        size = st.st_size
        if size > max_bytes:
            return IndexReading(None, f"too large: {size:,} bytes, over the limit of {max_bytes:,}")
        try:
            raw = handle.read(max_bytes + 1)
        except OSError as exc:
            return IndexReading(None, f"unreadable: {exc.strerror}")
    if len(raw) > max_bytes:
        return IndexReading(None, f"too large: it grew past the limit of {max_bytes:,} bytes while being read")
    return parse_index(raw)


def parse_index(raw: bytes) -> IndexReading:
    """The index in raw bytes already read within the size limit, or why it cannot be used."""
    try:
        data = json.loads(raw)
    except RecursionError:
        return IndexReading(None, "corrupt: nested too deeply")
    except (ValueError, MemoryError) as exc:
        return IndexReading(None, f"corrupt: {str(exc)[:200]}")
    if not isinstance(data, dict):
        return IndexReading(None, f"corrupt: the top level is a {type(data).__name__}, not an object")
    return IndexReading(data, None)
