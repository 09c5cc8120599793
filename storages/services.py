"""What can be done to a FileStorage: create it on disk, describe it, check it, move it, retire it.

API routes, admin actions and commands call these functions; they hold the rules, the callers hold none. This is
the disk and row work only: the indexes a create or a migration must rewrite are written by the indexing app, which
wraps these functions (indexing/rewrite.py) and hands them its writer as a hook. The figures drawn from imports
(files, photos, sessions) are imports' to count (imports/totals.py).
"""

import errno
import logging
import os
import uuid as uuid_lib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from imalink.errors import ImalinkError, NotFound, PathRejected, StorageUnavailable

from . import drive, layout
from .locks import storage_lock
from .models import FileStorage
from .paths import allowed_roots, is_inside, resolve_client_dir

logger = logging.getLogger("imalink.storages")

GB = 1024**3


def low_on_space(free_bytes: int | None) -> bool:
    """Whether a storage has less free space than IMALINK_LOW_SPACE_GB:
    the one rule the pages and the health check share."""
    return free_bytes is not None and free_bytes < settings.IMALINK_LOW_SPACE_GB * GB


def min_copies() -> int:
    """The copy policy's number: IMALINK_MIN_COPIES when it is set, else 2 once a second storage exists, else 1."""
    if settings.IMALINK_MIN_COPIES is not None:
        return settings.IMALINK_MIN_COPIES
    return 2 if FileStorage.objects.filter(is_active=True).count() > 1 else 1


def storage_get(storage_uuid) -> FileStorage:
    try:
        key = uuid_lib.UUID(str(storage_uuid))
    except ValueError:
        raise NotFound(
            f"No storage with uuid {storage_uuid!r}: that is not a uuid.", details={"uuid": str(storage_uuid)}
        ) from None
    storage = FileStorage.objects.filter(storage_uuid=key).first()
    if storage is None:
        raise NotFound(f"No storage with uuid {key}.", details={"uuid": str(key)})
    return storage


def _probe_write(folder_fd: int) -> None:
    """Prove the folder takes a new file by making one and removing it, as root too (for whom os.access says yes
    on a read-only mount). OSError when it does not."""
    name = f".imalink-write-test-{uuid_lib.uuid4().hex}"
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder_fd)
    os.close(fd)
    os.unlink(name, dir_fd=folder_fd)


def _check_writable(folder: Path) -> None:
    """PathRejected unless the folder a new storage is to be made in takes a new file."""
    try:
        # O_PATH: a folder that may be written but not listed takes a new storage, as it always did.
        folder_fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _probe_write(folder_fd)
        finally:
            os.close(folder_fd)
    except OSError as exc:
        reason = "is on a read-only filesystem" if exc.errno == errno.EROFS else f"is not writable ({exc.strerror})"
        raise PathRejected(
            f"base_path {folder} {reason}.",
            code="path_not_writable",
            details={"field": "base_path", "path": str(folder)},
        ) from None


def storage_create(
    *,
    base_path: str,
    display_name: str,
    description: str = "",
    on_created: Callable[[FileStorage], object] | None = None,
) -> FileStorage:
    """Make a new storage folder and its row. `on_created(storage)` runs inside the same transaction, so that if it
    fails (the indexing app writes the master index there) nothing is kept: no row, and no folder left behind."""
    base = resolve_client_dir(base_path, field="base_path")
    _check_writable(base)
    display_name = (display_name or "").strip()
    if not display_name:
        raise ImalinkError(
            "display_name must not be empty.", code="validation_error", status=422, details={"field": "display_name"}
        )
    storage_uuid = uuid_lib.uuid4()
    created_at = timezone.now()
    directory_name = layout.directory_name_for(storage_uuid, created_at)
    root = base / directory_name
    try:
        layout.create_tree(root, storage_uuid=storage_uuid, created_at=created_at)
    except OSError as exc:
        layout.remove_empty_tree(root)
        raise ImalinkError(
            f"Could not create the storage folder in {base}: {exc.strerror}.", code="storage_create_failed"
        ) from None
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
            if on_created is not None:
                on_created(storage)
    except BaseException:
        layout.remove_empty_tree(root)
        raise
    logger.info("created storage %s at %s", storage.storage_uuid, root)
    return storage


def storage_update(
    storage: FileStorage,
    *,
    display_name: str | None = None,
    description: str | None = None,
    xmp_writeback: str | None = None,
    role: str | None = None,
) -> FileStorage:
    if display_name is not None:
        if not display_name.strip():
            raise ImalinkError(
                "display_name must not be empty.",
                code="validation_error",
                status=422,
                details={"field": "display_name"},
            )
        storage.display_name = display_name.strip()
    if description is not None:
        storage.description = description
    if xmp_writeback is not None:
        if xmp_writeback not in FileStorage.XmpWriteback.values:
            raise ImalinkError(
                "xmp_writeback must be off or sidecars.",
                code="validation_error",
                status=422,
                details={"field": "xmp_writeback"},
            )
        storage.xmp_writeback = xmp_writeback
    if role is not None:
        if role not in FileStorage.Role.values:
            raise ImalinkError(
                "role must be primary, backup or archive.",
                code="validation_error",
                status=422,
                details={"field": "role"},
            )
        storage.role = role
    storage.save()
    return storage


def storage_update_and_migrate(
    storage: FileStorage,
    *,
    display_name: str | None = None,
    description: str | None = None,
    xmp_writeback: str | None = None,
    role: str | None = None,
    base_path: str | None = None,
    rewrite: Callable[[FileStorage], object] | None = None,
) -> tuple[FileStorage, "MigrationReport | None"]:
    """storage_update, plus the verified migration when base_path is given (`rewrite` as for storage_migrate).
    All of it, or nothing in the database."""
    with transaction.atomic():
        if base_path is not None:
            storage_check_migration(storage, base_path)  # refuse before the name or description changes
        storage = storage_update(
            storage, display_name=display_name, description=description, xmp_writeback=xmp_writeback, role=role
        )
        report = storage_migrate(storage, new_base_path=base_path, rewrite=rewrite) if base_path is not None else None
    return storage, report


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


def _diagnose(storage: FileStorage) -> tuple[str | None, str | None, drive.UnsafeLayout | None]:
    """(reason_code, reason, the UnsafeLayout if that is the cause) for a storage that cannot be used, or Nones.

    Nothing here follows a symbolic link inside the storage or blocks on a named pipe (storages.drive): what is
    not what it should be there makes the storage unavailable with `unsafe_layout`, saying which path and why.
    """
    base, root = Path(storage.base_path), storage.full_path
    if not base.exists():
        return "path_missing", f"The base path {base} does not exist. Connect or mount the drive that holds it.", None
    if not os.path.lexists(root):
        if _looks_unmounted(base):
            return (
                "not_mounted",
                f"{base} is an empty folder and not a mount point: the drive is probably not mounted.",
                None,
            )
        return (
            "storage_folder_missing",
            f"{base} is there, but the storage folder {storage.directory_name} is not in it. "
            "Was the drive swapped or the folder moved?",
            None,
        )
    try:
        problem = layout.check_layout(root, folders=_target_folders(storage))
    except FileNotFoundError:
        return (
            "storage_folder_missing",
            f"{base} is there, but the storage folder {storage.directory_name} is not in it. "
            "Was the drive swapped or the folder moved?",
            None,
        )
    except OSError as exc:
        return "unreadable", f"{root} cannot be read: {exc.strerror}.", None
    if problem is None:
        marker = layout.read_marker(root)
        problem = marker.unsafe
    if problem is not None:
        return "unsafe_layout", problem.reason, problem
    if marker.storage_uuid is None:
        return (
            "marker_missing",
            f"{root / layout.MARKER} is {marker.problem}: this folder cannot be confirmed as this storage.",
            None,
        )
    if marker.storage_uuid != str(storage.storage_uuid):
        return (
            "marker_mismatch",
            f"{root} belongs to another storage ({marker.storage_uuid}). Is another drive mounted here?",
            None,
        )
    return None, None, None


# Where the apps above keep folders of their own under photos/ (the imports app: each session's target). Each
# source is `source(storage) -> storage-relative folder paths`, registered from its AppConfig.ready().
OWN_FOLDER_SOURCES: list[Callable[[FileStorage], Iterable[str]]] = []


def register_own_folders(source: Callable[[FileStorage], Iterable[str]]) -> None:
    """Have the layout check also require `source(storage)`'s folders to be folders, if they exist."""
    if source not in OWN_FOLDER_SOURCES:
        OWN_FOLDER_SOURCES.append(source)


def _target_folders(storage: FileStorage) -> list[str]:
    """The folders the apps above keep in photos/: where a file stands in their place, ImaLink's own files under
    it would look missing."""
    return sorted({folder for source in OWN_FOLDER_SOURCES for folder in source(storage)})


def storage_is_writable(root: Path) -> tuple[bool, str | None]:
    """Prove the storage takes a new file: a probe made and removed in .imalink/tmp (or the storage folder),
    reached from the storage's descriptor and never followed."""
    try:
        with drive.Storage(root) as opened:
            relative = ".imalink/tmp" if opened.kind(".imalink/tmp") == "folder" else ""
            with opened.folder(relative) as folder:
                _probe_write(folder)
    except drive.UnsafeLayout as problem:
        return False, problem.reason
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return False, f"{root} is on a read-only filesystem: it can be read and scanned, not imported into."
        return False, f"{root} is not writable ({exc.strerror}). Check its owner and permissions."
    return True, None


def storage_check_accessibility(storage: FileStorage) -> AccessibilityReport:
    """Check the storage on disk, store the result on its row, and return it."""
    now = timezone.now()
    reason_code, reason, _ = _diagnose(storage)
    accessible = reason_code is None
    writable = False
    free = total = None
    if accessible:
        writable, write_problem = storage_is_writable(storage.full_path)
        if not writable:
            reason_code, reason = "read_only", write_problem
        free, total = _disk_space(storage.full_path)
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
    return {
        "storages": results,
        "accessible": ctx.progress_data["accessible"],
        "unavailable": ctx.progress_data["unavailable"],
    }


def _disk_space(root: Path) -> tuple[int | None, int | None]:
    """(free, total) bytes of the filesystem that holds the storage, from the storage folder's own descriptor
    (statvfs by name would follow a storage folder swapped for a link since it was checked)."""
    try:
        with drive.Storage(root) as opened:
            st = os.fstatvfs(opened.fd)
    except (OSError, drive.UnsafeLayout):
        return None, None
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def storage_require_available(storage: FileStorage, *, writable: bool = False) -> None:
    """Refuse (409) to touch a storage whose drive is unplugged, unmounted, another storage's, or read-only.

    This is the guard that keeps an unplugged drive from being taken for deleted files.
    """
    reason_code, reason, problem = _diagnose(storage)
    if reason_code is None and writable:
        ok, problem = storage_is_writable(storage.full_path)
        if not ok:
            reason_code, reason = "read_only", problem
    if reason_code == "unsafe_layout":
        # Every page and list shows it as unavailable too, not only this refusal.
        FileStorage.objects.filter(pk=storage.pk).update(
            is_accessible=False, accessibility_reason=reason, accessibility_checked_at=timezone.now()
        )
        storage.is_accessible, storage.accessibility_reason = False, reason
    if reason_code == "unsafe_layout":
        problem.message = f"Storage {storage.display_name!r} is unavailable: {reason}"
        problem.details["storage_uuid"] = str(storage.storage_uuid)
        raise problem
    if reason_code is not None:
        raise StorageUnavailable(
            f"Storage {storage.display_name!r} is unavailable: {reason}",
            details={"storage_uuid": str(storage.storage_uuid), "reason_code": reason_code},
        )


# --- drive migration (DESIGN §6, seed Workflow 5) ----------------------------------------------------


class MigrationRefused(ImalinkError):
    code = "migration_refused"


@dataclass
class MigrationReport:
    storage_uuid: str
    old_base_path: str
    new_base_path: str
    changed: bool
    master_index_rewritten: bool
    accessibility: dict
    index_status: dict | None  # None when the storage is not accessible, so its indexes cannot be read

    def as_dict(self) -> dict:
        return asdict(self)


def storage_check_migration(storage: FileStorage, new_base_path: str) -> Path:
    """The real base path that `new_base_path` names, if it holds a copy of this storage; else why not.

    The only proof accepted is the storage's own marker at {new base}/{directory_name}/.imalink/storage.json.
    Reads only: nothing is written here, at the old place or the new one.
    """
    if new_base_path == storage.base_path:
        return Path(storage.base_path)
    base = resolve_client_dir(new_base_path, field="base_path")
    if str(base) == storage.base_path:
        return base
    root = base / storage.directory_name
    uuid = str(storage.storage_uuid)
    details = {"field": "base_path", "path": str(base), "storage_folder": str(root), "storage_uuid": uuid}

    def refuse(reason_code: str, message: str):
        raise MigrationRefused(message, details={**details, "reason_code": reason_code})

    copy_hint = f"e.g. rsync -a {storage.full_path}/ {root}/"
    if not os.path.lexists(root):
        refuse(
            "storage_folder_missing",
            f"{base} has no folder {storage.directory_name}: copy the storage there first, {copy_hint}",
        )
    real_root = Path(os.path.realpath(root))
    if not any(is_inside(real_root, allowed) for allowed in allowed_roots()):
        refuse(
            "storage_folder_not_allowed",
            f"{root} leads through a symlink to {real_root}, outside the folders ImaLink may use.",
        )
    if not real_root.is_dir():
        refuse("storage_folder_missing", f"{root} is not a folder: copy the storage there first, {copy_hint}")
    marker = layout.read_marker(root)
    if marker.problem == "missing":
        refuse(
            "marker_missing",
            f"{root} has no {layout.MARKER}, so it cannot be confirmed as this storage: the copy is incomplete. "
            f"Copy the whole folder, .imalink included, {copy_hint}",
        )
    if marker.storage_uuid is None:
        refuse(
            "marker_unreadable",
            f"{root / layout.MARKER} is {marker.problem}, so {root} cannot be confirmed as this storage. "
            f"Copy it again, {copy_hint}",
        )
    if marker.storage_uuid != uuid:
        refuse(
            "marker_mismatch",
            f"{root} belongs to another storage ({marker.storage_uuid}), not to this one ({uuid}). "
            "Point base_path at the drive that holds the copy of this storage.",
        )
    return base


def storage_migrate(
    storage: FileStorage, *, new_base_path: str, rewrite: Callable[[FileStorage], object] | None = None
) -> MigrationReport:
    """Point the storage at a verified copy on another drive, re-check it, and have `rewrite(storage)` (the
    indexing app's master-index writer) run at the new place under the storage's lock, in the same transaction.

    Refused (400, nothing changed) unless storage_check_migration accepts the new place. The old place is
    never written to: the old drive may be failing, or be kept as a backup copy. The report's index_status is
    left for the caller that knows the indexes (indexing/rewrite.py) to fill in.
    """
    old = storage.base_path
    with transaction.atomic():
        base = storage_check_migration(storage, new_base_path)
        changed = str(base) != old
        if changed:
            storage.base_path = str(base)
            storage.save(update_fields=["base_path", "updated_at"])
        accessibility = storage_check_accessibility(storage)
        rewritten = False
        if changed and accessibility.is_writable and rewrite is not None:
            # A read-only copy is still this storage (its marker says so); its index is rewritten once it is writable.
            new_root = storage.full_path
            try:
                with storage_lock(storage, wait=settings.IMALINK_LOCK_WAIT):
                    rewrite(storage)
                rewritten = True
            except OSError as exc:
                storage.base_path = old  # the transaction puts the row back; keep the object in step with it
                raise ImalinkError(
                    f"Could not write the master index at {new_root}: {exc.strerror}. "
                    f"The storage still points at {old}.",
                    code="migration_failed",
                    status=500,
                    details={"storage_uuid": str(storage.storage_uuid), "path": str(new_root)},
                ) from None
            except BaseException:
                storage.base_path = old
                raise
    if changed:
        logger.info("migrated storage %s from %s to %s", storage.storage_uuid, old, storage.base_path)
    return MigrationReport(
        storage_uuid=str(storage.storage_uuid),
        old_base_path=old,
        new_base_path=storage.base_path,
        changed=changed,
        master_index_rewritten=rewritten,
        accessibility=accessibility.as_dict(),
        index_status=None,
    )
