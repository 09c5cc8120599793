"""Routes under /api/v1/file-storage/: thin doors into storages.services."""

from uuid import UUID

from ninja import Query, Router

from imalink.schemas import ok, responses
from imports import counting, totals
from indexing import rewrite

from . import services
from .models import FileStorage
from .schemas import (
    AccessibilityOut,
    RetireCheckOut,
    StatisticsOut,
    StorageCreateIn,
    StorageList,
    StorageOut,
    StorageUpdateIn,
    StorageUpdateOut,
)

router = Router(tags=["file-storage"])


@router.post("/create", response=responses(StorageOut), summary="Create a storage folder on a drive")
def create_storage(request, payload: StorageCreateIn):
    storage = rewrite.storage_create(**payload.dict())
    return ok(StorageOut.from_storage(storage))


@router.get("/", response=responses(StorageList), summary="List storages")
def list_storages(request, include_inactive: bool = True):
    storages = FileStorage.objects.all()
    if not include_inactive:
        storages = storages.filter(is_active=True)
    items = [StorageOut.from_storage(s) for s in storages]
    return ok({"storages": items, "count": len(items)})


@router.get("/{uuid}", response=responses(StorageOut), summary="One storage")
def get_storage(request, uuid: UUID):
    return ok(StorageOut.from_storage(services.storage_get(uuid)))


@router.put(
    "/{uuid}",
    response=responses(StorageUpdateOut),
    summary="Change a storage's name, description, role or sidecar setting, or move it to another drive",
)
def update_storage(request, uuid: UUID, payload: StorageUpdateIn):
    """A base_path moves the storage to a copy on another drive (seed Workflow 5): it is accepted only when
    `{base_path}/{directory_name}/.imalink/storage.json` holds this storage's uuid; otherwise 400 migration_refused."""
    storage, migration = rewrite.storage_update_and_migrate(
        services.storage_get(uuid), **payload.dict(exclude_unset=True)
    )
    return ok({**StorageOut.from_storage(storage), "migration": migration.as_dict() if migration else None})


@router.post("/{uuid}/deactivate", response=responses(StorageOut), summary="Mark a storage inactive")
def deactivate_storage(request, uuid: UUID):
    return ok(StorageOut.from_storage(services.storage_set_active(services.storage_get(uuid), active=False)))


@router.post("/{uuid}/reactivate", response=responses(StorageOut), summary="Mark a storage active again")
def reactivate_storage(request, uuid: UUID):
    return ok(StorageOut.from_storage(services.storage_set_active(services.storage_get(uuid), active=True)))


@router.post(
    "/{uuid}/accessibility",
    response=responses(AccessibilityOut),
    exclude_unset=True,
    summary="Check that the storage's drive is there and writable",
)
def check_accessibility(request, uuid: UUID):
    data = services.storage_check_accessibility(services.storage_get(uuid)).as_dict()
    # Space that cannot be measured (the drive is not there) is left out rather than sent as null: the seed's
    # health script reads it with .get("free_space_gb", 0) and compares it with a number.
    for key in ("free_space_gb", "total_space_gb", "free_bytes", "total_bytes"):
        if data[key] is None:
            del data[key]
    return ok(data)


@router.get("/{uuid}/statistics", response=responses(StatisticsOut), summary="File, size and session figures")
def storage_statistics(request, uuid: UUID):
    return ok(totals.storage_statistics(services.storage_get(uuid)))


@router.get(
    "/{uuid}/retire-check",
    response=responses(RetireCheckOut),
    summary="Safe to retire? The photos whose only copy, or only verified copy, is on this storage",
)
def retire_check(request, uuid: UUID, limit: int = Query(100, ge=0, le=1000)):
    """Reads the database only (copies are counted by triggers), so it answers for an unplugged storage too."""
    return ok(counting.retire_check(services.storage_get(uuid), limit=limit))
