"""Writes a storage's JSON indexes (DESIGN §4): the master `index.json` and, later, session indexes.

Every write goes through storages.atomic, keeps the last BACKUPS_KEPT copies in .imalink/index-backups/,
and is skipped when nothing but the generation time would change.
"""

import json
import logging
import os
from pathlib import Path

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone

from storages.atomic import write_atomic
from storages.layout import FORMAT_VERSION

logger = logging.getLogger("imalink.indexing")

BACKUPS_KEPT = 5
BACKUP_DIR = Path(".imalink") / "index-backups"
VOLATILE_KEYS = ("generated_at", "index_generated")
HASH_ALGORITHMS = {"checksum": "xxh3_128", "hothash": "imalink-hothash-v1"}


def _iso(value):
    return value.isoformat() if value else None


def _without_volatile(data):
    if isinstance(data, dict):
        return {k: _without_volatile(v) for k, v in data.items() if k not in VOLATILE_KEYS}
    if isinstance(data, list):
        return [_without_volatile(v) for v in data]
    return data


def _current_content(path: Path):
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None


def _backup(root: Path, path: Path) -> None:
    backups = root / BACKUP_DIR
    backups.mkdir(parents=True, exist_ok=True)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%fZ")
    stem = path.stem
    write_atomic(backups / f"{stem}.{stamp}.json", path.read_bytes())
    old = sorted(backups.glob(f"{stem}.*.json"))
    for stale in old[:-BACKUPS_KEPT]:
        # Only ImaLink's own backup copies are removed here, never anything under photos/.
        stale.unlink(missing_ok=True)


def write_index(root: Path, relative: str, payload: dict) -> bool:
    """Write one index file atomically. Returns False when the file already held the same content."""
    path = root / relative
    current = _current_content(path) if path.exists() else None
    if current is not None and _without_volatile(current) == _without_volatile(payload):
        return False
    if path.exists():
        _backup(root, path)
    data = json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=False).encode("utf-8") + b"\n"
    write_atomic(path, data)
    logger.info("wrote %s", path)
    return True


def build_master_index(storage) -> dict:
    from imports.models import ImageFile, ImportSession

    files = ImageFile.objects.filter(file_storage=storage).exclude(status=ImageFile.Status.MISSING)
    totals = files.aggregate(count=Count("id"), size=Sum("file_size"))
    sessions = (
        ImportSession.objects.filter(file_storage=storage)
        .annotate(file_count=Count("image_files", filter=~Q(image_files__status=ImageFile.Status.MISSING)))
        .order_by("id")
    )
    return {
        "storage_info": {
            "uuid": str(storage.storage_uuid),
            "directory_name": storage.directory_name,
            "base_path": storage.base_path,
            "full_path": str(storage.full_path),
            "display_name": storage.display_name,
            "description": storage.description,
            "created_at": _iso(storage.created_at),
            "last_scan": _iso(storage.last_scan_at),
            "is_accessible": storage.is_accessible,
            "total_files": totals["count"] or 0,
            "total_size_mb": round((totals["size"] or 0) / (1024 * 1024), 3),
        },
        "import_sessions": [
            {
                "id": s.id,
                "title": s.title,
                "imported_at": _iso(s.imported_at),
                "file_count": s.file_count,
                "index_file": f"imports/session_{s.id}.json",
            }
            for s in sessions
        ],
        "imalink_version": settings.IMALINK_VERSION,
        "format_version": FORMAT_VERSION,
        "generated_at": _iso(timezone.now()),
        "hash_algorithms": HASH_ALGORITHMS,
    }


def write_master_index(storage) -> bool:
    written = write_index(storage.full_path, "index.json", build_master_index(storage))
    storage.last_index_at = timezone.now()
    if storage.pk:
        type(storage).objects.filter(pk=storage.pk).update(last_index_at=storage.last_index_at)
    return written


def index_file_exists(storage) -> bool:
    return os.path.isfile(storage.full_path / "index.json")
