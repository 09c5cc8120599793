"""What can be done to a FileStorage: create it on disk, describe it, check it, count it, retire it.

API routes, admin actions and commands call these functions; they hold the rules, the callers hold none.
"""

import errno
import logging
import os
import shutil
import uuid as uuid_lib
from dataclasses import asdict, dataclass
from pathlib import Path

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from imalink.errors import ImalinkError, NotFound, PathRejected

from . import layout
from .models import FileStorage
from .paths import resolve_client_dir

logger = logging.getLogger("imalink.storages")

GB = 1024**3


def storage_get(storage_uuid) -> FileStorage:
    try:
        key = uuid_lib.UUID(str(storage_uuid))
    except ValueError:
        raise NotFound(f"No storage with uuid {storage_uuid!r}: that is not a uuid.", details={"uuid": str(storage_uuid)}) from None
    storage = FileStorage.objects.filter(storage_uuid=key).first()
    if storage is None:
        raise NotFound(f"No storage with uuid {key}.", details={"uuid": str(key)})
    return storage


def _check_writable(folder: Path) -> None:
    """Prove the folder takes a new file, as root too (for whom os.access says yes on a read-only mount)."""
    probe = folder / f".imalink-write-test-{uuid_lib.uuid4().hex}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        reason = "is on a read-only filesystem" if exc.errno == errno.EROFS else f"is not writable ({exc.strerror})"
        raise PathRejected(f"base_path {folder} {reason}.", code="path_not_writable", details={"field": "base_path", "path": str(folder)}) from None
    os.close(fd)
    os.unlink(probe)


def storage_create(*, base_path: str, display_name: str, description: str = "") -> FileStorage:
    base = resolve_client_dir(base_path, field="base_path")
    _check_writable(base)
    display_name = (display_name or "").strip()
    if not display_name:
        raise ImalinkError("display_name must not be empty.", code="validation_error", status=422, details={"field": "display_name"})
    storage_uuid = uuid_lib.uuid4()
    created_at = timezone.now()
    directory_name = layout.directory_name_for(storage_uuid, created_at)
    root = base / directory_name
    try:
        layout.create_tree(root, storage_uuid=storage_uuid, created_at=created_at)
    except OSError as exc:
        layout.remove_empty_tree(root)
        raise ImalinkError(f"Could not create the storage folder in {base}: {exc.strerror}.", code="storage_create_failed") from None
    try:
        with transaction.atomic():
            storage = FileStorage.objects.create(
                storage_uuid=storage_uuid,
                directory_name=directory_name,
                base_path=str(base),
                display_name=display_name,
                description=description or "",
                created_at=created_at,
            )
            FileStorage.objects.filter(pk=storage.pk).update(created_at=created_at)
            storage.created_at = created_at
            storage_check_accessibility(storage)
            from indexing.writer import write_master_index

            write_master_index(storage)
    except BaseException:
        layout.remove_empty_tree(root)
        raise
    logger.info("created storage %s at %s", storage.storage_uuid, root)
    return storage


def storage_update(storage: FileStorage, *, display_name: str | None = None, description: str | None = None) -> FileStorage:
    if display_name is not None:
        if not display_name.strip():
            raise ImalinkError("display_name must not be empty.", code="validation_error", status=422, details={"field": "display_name"})
        storage.display_name = display_name.strip()
    if description is not None:
        storage.description = description
    storage.save()
    return storage


def storage_set_active(storage: FileStorage, *, active: bool) -> FileStorage:
    storage.is_active = active
    storage.save(update_fields=["is_active", "updated_at"])
    return storage


@dataclass
class AccessibilityReport:
    storage_uuid: str
    full_path: str
    is_accessible: bool
    is_writable: bool
    free_space_gb: float | None
    total_space_gb: float | None
    free_bytes: int | None
    total_bytes: int | None
    checked_at: str
    reason: str | None
    reason_code: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def _looks_unmounted(base: Path) -> bool:
    """An empty folder that is not a mount point is what an unmounted drive's mount point looks like."""
    try:
        return not os.path.ismount(base) and not any(os.scandir(base))
    except OSError:
        return False


def _diagnose(storage: FileStorage) -> tuple[str | None, str | None]:
    """(reason_code, reason) for a storage that cannot be used, or (None, None)."""
    base, root = Path(storage.base_path), storage.full_path
    if not base.exists():
        return "path_missing", f"The base path {base} does not exist. Connect or mount the drive that holds it."
    if not root.is_dir():
        if _looks_unmounted(base):
            return "not_mounted", f"{base} is an empty folder and not a mount point: the drive is probably not mounted."
        return "storage_folder_missing", f"{base} is there, but the storage folder {storage.directory_name} is not in it. Was the drive swapped or the folder moved?"
    marker = layout.read_marker(root)
    if marker.storage_uuid is None:
        return "marker_missing", f"{root / layout.MARKER} is {marker.problem}: this folder cannot be confirmed as this storage."
    if marker.storage_uuid != str(storage.storage_uuid):
        return "marker_mismatch", f"{root} belongs to another storage ({marker.storage_uuid}). Is another drive mounted here?"
    return None, None


def storage_is_writable(root: Path) -> tuple[bool, str | None]:
    probe_dir = root / ".imalink" / "tmp"
    if not probe_dir.is_dir():
        probe_dir = root
    probe = probe_dir / f".write-test-{uuid_lib.uuid4().hex}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return False, f"{root} is on a read-only filesystem: it can be read and scanned, not imported into."
        return False, f"{root} is not writable ({exc.strerror}). Check its owner and permissions."
    os.close(fd)
    os.unlink(probe)
    return True, None


def storage_check_accessibility(storage: FileStorage) -> AccessibilityReport:
    """Check the storage on disk, store the result on its row, and return it."""
    now = timezone.now()
    reason_code, reason = _diagnose(storage)
    accessible = reason_code is None
    writable = False
    free = total = None
    if accessible:
        writable, write_problem = storage_is_writable(storage.full_path)
        if not writable:
            reason_code, reason = "read_only", write_problem
        usage = shutil.disk_usage(storage.full_path)
        free, total = usage.free, usage.total
    FileStorage.objects.filter(pk=storage.pk).update(
        is_accessible=accessible,
        is_writable=writable,
        free_bytes=free,
        total_bytes=total,
        accessibility_checked_at=now,
        accessibility_reason=reason or "",
    )
    storage.is_accessible, storage.is_writable = accessible, writable
    storage.free_bytes, storage.total_bytes = free, total
    storage.accessibility_checked_at, storage.accessibility_reason = now, reason or ""
    return AccessibilityReport(
        storage_uuid=str(storage.storage_uuid),
        full_path=str(storage.full_path),
        is_accessible=accessible,
        is_writable=writable,
        free_space_gb=round(free / GB, 3) if free is not None else None,
        total_space_gb=round(total / GB, 3) if total is not None else None,
        free_bytes=free,
        total_bytes=total,
        checked_at=now.isoformat(),
        reason=reason,
        reason_code=reason_code,
    )


def storage_statistics(storage: FileStorage) -> dict:
    """File, size and session figures from aggregate queries: a constant number of queries at any size."""
    from imports.models import ImageFile, ImportSession, Photo

    missing = Q(status=ImageFile.Status.MISSING)
    totals = ImageFile.objects.filter(file_storage=storage).aggregate(
        total_files=Count("id", filter=~missing),
        total_size=Sum("file_size", filter=~missing),
        missing_files=Count("id", filter=missing),
    )
    photos = Photo.objects.filter(files__file_storage=storage).values("id").distinct().count()
    size = totals["total_size"] or 0
    sessions = (
        ImportSession.objects.filter(file_storage=storage)
        .annotate(images_count_annotated=Count("image_files"))
        .order_by("id")
    )
    return {
        "storage_uuid": str(storage.storage_uuid),
        "statistics": {
            "total_files": totals["total_files"],
            "total_size_bytes": size,
            "total_size_mb": round(size / (1024 * 1024), 3),
            "photos": photos,
            "missing_files": totals["missing_files"],
        },
        "import_sessions": [
            {"id": s.id, "title": s.title, "imported_at": s.imported_at, "images_count": s.images_count_annotated}
            for s in sessions
        ],
    }


def run_accessibility_check_job(job, ctx) -> dict:
    """Job runner: check every active storage in turn, with progress, and report each result."""
    storages = list(FileStorage.objects.filter(is_active=True))
    ctx.progress(total=len(storages), done=0, accessible=0, unavailable=0, force=True)
    results = []
    for done, storage in enumerate(storages, start=1):
        ctx.check_cancelled()
        ctx.progress(current=storage.display_name)
        report = storage_check_accessibility(storage)
        ctx.increment("accessible" if report.is_accessible else "unavailable")
        results.append(report.as_dict())
        ctx.progress(done=done)
    ctx.progress(current=None, force=True)
    return {"storages": results, "accessible": ctx.progress_data["accessible"], "unavailable": ctx.progress_data["unavailable"]}


def storage_require_available(storage: FileStorage, *, writable: bool = False) -> None:
    """Refuse (409) to touch a storage whose drive is unplugged, unmounted, another storage's, or read-only.

    This is the guard that keeps an unplugged drive from being taken for deleted files.
    """
    from imalink.errors import StorageUnavailable

    reason_code, reason = _diagnose(storage)
    if reason_code is None and writable:
        ok, problem = storage_is_writable(storage.full_path)
        if not ok:
            reason_code, reason = "read_only", problem
    if reason_code is not None:
        raise StorageUnavailable(
            f"Storage {storage.display_name!r} is unavailable: {reason}",
            details={"storage_uuid": str(storage.storage_uuid), "reason_code": reason_code},
        )
