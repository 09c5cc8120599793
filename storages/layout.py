"""The on-disk shape of a storage (DESIGN §1): every path ImaLink keeps inside a storage folder is named here,
and its identity marker, `.imalink/storage.json`, is read and written here.

The marker tells an unplugged drive from deleted files: without the right marker, a storage is unavailable.
"""

import json
import os
import stat
import uuid as uuid_lib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import drive

# 2 (issue 16): items are photos or videos (media_type, duration_s, codec) and each file has a role (an original,
# or a companion: sidecar, edit, thumbnail, proxy, motion). Format 1 indexes still read: all photos, originals.
FORMAT_VERSION = 2
# Paths relative to the storage folder.
PHOTOS_DIR = "photos"  # the user's files: ImaLink never deletes or overwrites one
IMPORTS_DIR = "imports"  # the session indexes
MASTER_INDEX = "index.json"
OWN_DIR = ".imalink"
MARKER = Path(OWN_DIR) / "storage.json"
MAX_MARKER_BYTES = 64 * 1024
LOCK_FILE = f"{OWN_DIR}/lock"  # storages.locks: one mutating job per storage at a time
TMP_DIR = f"{OWN_DIR}/tmp"  # verified copies and atomic writes are made here first
HOTPREVIEW_DIR = f"{OWN_DIR}/hotpreviews"
# Where indexing keeps the copies of the indexes it replaces, and the files it sets aside instead of deleting.
BACKUP_DIR = Path(OWN_DIR) / "index-backups"
# Where a user's file that ImaLink replaces (a sidecar it merges into) is kept first, never deleted.
QUARANTINE_DIR = Path(OWN_DIR) / "quarantine"
SUBFOLDERS = (PHOTOS_DIR, IMPORTS_DIR, OWN_DIR, HOTPREVIEW_DIR, str(BACKUP_DIR), TMP_DIR)


def session_index_file(session_id) -> str:
    """Where a session's index lives, relative to the storage folder: `imports/session_<id>.json` (DESIGN §1)."""
    return f"{IMPORTS_DIR}/session_{session_id}.json"


def hotpreview_relative_path(hothash: str) -> str:
    """Where a photo's hotpreview lives, fanned out by the first two byte pairs of its hothash.

    A video's identity is `video:<checksum>`: its poster frame is `video-<checksum>.jpg`, fanned out by the
    checksum, because exFAT and NTFS (most cards and external drives) refuse ':' in a name.
    """
    prefix, _, digest = hothash.rpartition(":")
    name = f"{prefix}-{digest}" if prefix else digest
    return f"{HOTPREVIEW_DIR}/{digest[0:2]}/{digest[2:4]}/{name}.jpg"


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
        for name in (MASTER_INDEX, str(MARKER)):
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


# --- the layout of a storage, checked before anything touches it ----------------------------------------

# (storage-relative path, what it must be when it exists). The storage folder itself is checked by open_root.
LAYOUT = (
    (OWN_DIR, "folder"),
    (LOCK_FILE, "file"),
    (str(MARKER), "file"),
    (TMP_DIR, "folder"),
    (HOTPREVIEW_DIR, "folder"),
    (str(BACKUP_DIR), "folder"),
    (str(QUARANTINE_DIR), "folder"),
    (IMPORTS_DIR, "folder"),
    (MASTER_INDEX, "file"),
    (PHOTOS_DIR, "folder"),
)
# Folders whose every entry must be of one kind (the hotpreview fan-out, ImaLink's temporary copies), and
# folders whose entries may be files or folders but nothing else (photos/ at its top level; deeper levels
# are checked by every walk and every placement). Session indexes in imports/ must be plain files.
ENTRIES_MUST_BE = ((HOTPREVIEW_DIR, "folder"), (TMP_DIR, "file"))
ENTRIES_FILE_OR_FOLDER = (PHOTOS_DIR,)
SESSION_INDEX_PREFIX, SESSION_INDEX_SUFFIX = "session_", ".json"


def check_layout(root: Path, *, folders=()) -> drive.UnsafeLayout | None:
    """Why the storage at root is unsafe to touch, or None. Never follows, never blocks, reads no file.

    `folders` are more storage-relative paths that must be folders where they exist (an import session's target
    under photos/, say). A missing entry is not this check's business (a marker that is missing is reported as
    such elsewhere). FileNotFoundError when the storage folder itself is not there.
    """
    try:
        opened = drive.Storage(root)
    except drive.UnsafeLayout as problem:
        return problem
    with opened:
        try:
            for relative, expected in (*LAYOUT, *((folder, "folder") for folder in folders)):
                try:
                    mode = opened.lstat(relative).st_mode
                except FileNotFoundError:
                    continue
                if not (stat.S_ISDIR(mode) if expected == "folder" else stat.S_ISREG(mode)):
                    return drive.unsafe_entry(opened.shown(relative), mode, f"a {expected}")
            for relative, expected in ENTRIES_MUST_BE:
                for name, kind in _entries(opened, relative):
                    if kind != expected:
                        return drive.UnsafeLayout(opened.shown(f"{relative}/{name}"), _words(kind), f"a {expected}")
            for relative in ENTRIES_FILE_OR_FOLDER:
                for name, kind in _entries(opened, relative):
                    if kind not in ("file", "folder"):
                        return drive.UnsafeLayout(opened.shown(f"{relative}/{name}"), kind, "a file or a folder")
            for name, kind in _entries(opened, IMPORTS_DIR):
                if name.startswith(SESSION_INDEX_PREFIX) and name.endswith(SESSION_INDEX_SUFFIX) and kind != "file":
                    return drive.UnsafeLayout(opened.shown(f"{IMPORTS_DIR}/{name}"), _words(kind), "a file")
        except drive.UnsafeLayout as problem:
            return problem
    return None


def _entries(opened: drive.Storage, relative: str) -> list[tuple[str, str]]:
    try:
        return opened.listdir(relative)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _words(kind: str) -> str:
    return {"file": "a file", "folder": "a folder"}.get(kind, kind)


def require_safe_layout(root: Path) -> None:
    """Raise UnsafeLayout when check_layout finds something wrong."""
    problem = check_layout(root)
    if problem is not None:
        raise problem
