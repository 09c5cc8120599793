"""The on-disk shape of a storage (DESIGN §1) and its identity marker, `.imalink/storage.json`.

The marker tells an unplugged drive from deleted files: without the right marker, a storage is unavailable.
"""

import json
import os
import uuid as uuid_lib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .atomic import fsync_dir, write_atomic

FORMAT_VERSION = 1
MARKER = Path(".imalink") / "storage.json"
MAX_MARKER_BYTES = 64 * 1024
SUBFOLDERS = ("photos", "imports", ".imalink", ".imalink/hotpreviews", ".imalink/index-backups", ".imalink/tmp")


def directory_name_for(storage_uuid: uuid_lib.UUID, when: datetime) -> str:
    return f"imalink_{when:%Y%m%d_%H%M%S}_{storage_uuid.hex[:8]}"


def create_tree(root: Path, *, storage_uuid: uuid_lib.UUID, created_at: datetime) -> None:
    """Create a new storage folder with its sub-folders and marker. `root` must not exist yet."""
    os.mkdir(root)  # fails if it exists: a storage folder is never reused by accident
    for sub in SUBFOLDERS:
        os.mkdir(root / sub)
    marker = {"storage_uuid": str(storage_uuid), "created_at": created_at.isoformat(), "format_version": FORMAT_VERSION}
    write_atomic(root / MARKER, (json.dumps(marker, indent=2) + "\n").encode())
    fsync_dir(root)
    fsync_dir(root.parent)


def remove_empty_tree(root: Path) -> None:
    """Undo create_tree after a failure, removing only the empty folders and the files it wrote itself."""
    for name in ("index.json", str(MARKER)):
        try:
            (root / name).unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass
    for sub in reversed(SUBFOLDERS):
        try:
            os.rmdir(root / sub)
        except OSError:
            pass
    try:
        os.rmdir(root)
    except OSError:
        pass


@dataclass
class MarkerReading:
    storage_uuid: str | None
    problem: str | None = None


def read_marker(root: Path) -> MarkerReading:
    """The uuid in a storage folder's marker, or why it cannot be read. Never raises on hostile content."""
    path = root / MARKER
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_MARKER_BYTES + 1)
    except FileNotFoundError:
        return MarkerReading(None, "missing")
    except OSError as exc:
        return MarkerReading(None, f"unreadable: {exc.strerror}")
    if len(raw) > MAX_MARKER_BYTES:
        return MarkerReading(None, "too large")
    try:
        data = json.loads(raw)
        value = str(uuid_lib.UUID(str(data["storage_uuid"])))
    except (ValueError, KeyError, TypeError, RecursionError):
        return MarkerReading(None, "not a valid storage marker")
    return MarkerReading(value)
