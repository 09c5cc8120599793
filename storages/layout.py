"""The on-disk shape of a storage (DESIGN §1) and its identity marker, `.imalink/storage.json`.

The marker tells an unplugged drive from deleted files: without the right marker, a storage is unavailable.
"""

import json
import os
import uuid as uuid_lib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import drive

FORMAT_VERSION = 1
MARKER = Path(".imalink") / "storage.json"
MAX_MARKER_BYTES = 64 * 1024
# Where indexing keeps the copies of the indexes it replaces, and the files it sets aside instead of deleting.
BACKUP_DIR = Path(".imalink") / "index-backups"
SUBFOLDERS = ("photos", "imports", ".imalink", ".imalink/hotpreviews", str(BACKUP_DIR), ".imalink/tmp")


def session_index_file(session_id) -> str:
    """Where a session's index lives, relative to the storage folder: `imports/session_<id>.json` (DESIGN §1)."""
    return f"imports/session_{session_id}.json"


def directory_name_for(storage_uuid: uuid_lib.UUID, when: datetime) -> str:
    return f"imalink_{when:%Y%m%d_%H%M%S}_{storage_uuid.hex[:8]}"


def create_tree(root: Path, *, storage_uuid: uuid_lib.UUID, created_at: datetime) -> None:
    """Create a new storage folder with its sub-folders and marker. `root` must not exist yet.

    The sub-folders and the marker are made from the new folder's own descriptor (storages.drive), so nothing
    put in its place between two steps can lead a write elsewhere.
    """
    os.mkdir(root)  # fails if it exists: a storage folder is never reused by accident
    with drive.Storage(root) as storage:
        for sub in SUBFOLDERS:
            with storage.parent_of(sub) as (dirfd, name):
                os.mkdir(name, 0o755, dir_fd=dirfd)
        marker = {
            "storage_uuid": str(storage_uuid),
            "created_at": created_at.isoformat(),
            "format_version": FORMAT_VERSION,
        }
        storage.write_atomic(MARKER, (json.dumps(marker, indent=2) + "\n").encode())
        os.fsync(storage.fd)
    drive.fsync_dir(root.parent)


def remove_empty_tree(root: Path) -> None:
    """Undo create_tree after a failure, removing only the empty folders and the files it wrote itself."""
    try:
        storage = drive.Storage(root)
    except (OSError, drive.UnsafeLayout):
        return  # not a folder ImaLink made: leave it alone
    with storage:
        for name in ("index.json", str(MARKER)):
            try:
                storage.unlink(name)
            except (OSError, drive.UnsafeLayout):
                pass
        for sub in reversed(SUBFOLDERS):
            try:
                with storage.parent_of(sub) as (dirfd, name):
                    os.rmdir(name, dir_fd=dirfd)
            except (OSError, drive.UnsafeLayout):
                pass
    try:
        os.rmdir(root)
    except OSError:
        pass


@dataclass
class MarkerReading:
    storage_uuid: str | None
    problem: str | None = None
    unsafe: "drive.UnsafeLayout | None" = None


def read_marker(root: Path) -> MarkerReading:
    """The uuid in a storage folder's marker, or why it cannot be read. Never raises on hostile content, never
    follows a symbolic link and never blocks on a named pipe (storages.drive): `unsafe` says the marker, or a
    folder on the way to it, is not what it should be."""
    try:
        with drive.Storage(root) as storage:
            raw = storage.read_bytes(MARKER, limit=MAX_MARKER_BYTES)
    except drive.UnsafeLayout as problem:
        return MarkerReading(None, f"unsafe: {problem.found}, not {problem.expected} ({problem.path})", unsafe=problem)
    except drive.FileTooLarge:
        return MarkerReading(None, "too large")
    except (FileNotFoundError, NotADirectoryError):
        return MarkerReading(None, "missing")
    except OSError as exc:
        return MarkerReading(None, f"unreadable: {exc.strerror}")
    try:
        data = json.loads(raw)
        value = str(uuid_lib.UUID(str(data["storage_uuid"])))
    except (ValueError, KeyError, TypeError, RecursionError):
        return MarkerReading(None, "not a valid storage marker")
    return MarkerReading(value)
