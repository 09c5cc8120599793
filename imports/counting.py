"""A photo's copies across storages (issue 17): how many storages hold its bytes, which, and when each was verified.

A photo's copies are the distinct storages that hold a `present` file with its reference checksum: the checksum of
its primary original (else of its first original on record). A missing file is no copy, and neither is a modified
one: its bytes are no longer the checksum's. A storage holds a copy whether or not it is plugged in now; whether it
is available is its kept accessibility state (FileStorage.is_accessible, the last check), so no request touches a
disk. A storage's `verified_at` is the latest verified_at of its files with those bytes: the last time any of them
was read back equal to the checksum.

The count, and the storage of an only copy, are kept by database triggers on the photo row (migration 0008), so
filters and totals over 100,000 photos read an index instead of every file. This module sits in imports, below
indexing, so that the health check can use it too.
"""

from django.db.models import BooleanField, Count, Exists, IntegerField, Max, OuterRef
from django.db.models.expressions import RawSQL

from storages.models import FileStorage

from .models import ImageFile, Photo, StoragePhoto

# Unqualified: no other table has these names, and a subquery aliases imports_photo (U0, ...).
COUNT_COLUMN = "copies_count"
SOLE_COLUMN = "copies_sole_storage_id"
VERIFIED_SOLE_COLUMN = "copies_verified_sole_storage_id"


def reference_checksum(photo) -> str | None:
    """The checksum that a copy of this photo holds: its primary original's, else its first original's."""
    return (
        ImageFile.objects.filter(photo=photo, role=ImageFile.Role.ORIGINAL)
        .order_by("-is_primary", "id")
        .values_list("checksum", flat=True)
        .first()
    )


def photo_copies(photo) -> dict:
    """{"count", "available", "storages": [{"storage_uuid", "display_name", "available", "verified_at"}]}:
    every storage holding a copy, by name; `available` counts those whose last accessibility check found them."""
    checksum = reference_checksum(photo)
    holders = []
    if checksum is not None:
        rows = (
            ImageFile.objects.filter(photo=photo, checksum=checksum, status=ImageFile.Status.PRESENT)
            .order_by()
            .values("file_storage_id")
            .annotate(verified_at=Max("verified_at"))
        )
        verified = {r["file_storage_id"]: r["verified_at"] for r in rows}
        for storage in FileStorage.objects.filter(pk__in=verified).order_by("id"):
            holders.append(
                {
                    "storage_uuid": storage.storage_uuid,
                    "display_name": storage.display_name,
                    "role": storage.role,
                    "available": storage.is_accessible is True,
                    "verified_at": verified[storage.pk],
                }
            )
    return {"count": len(holders), "available": sum(h["available"] for h in holders), "storages": holders}


def with_fewer_copies(photos, n: int, *, storage_uuid=None):
    """The photos of this queryset kept in fewer than n storages (the trigger-kept count, by its index); only those
    with a file on record in that storage when storage_uuid is given (its StoragePhoto rows: no join, no DISTINCT)."""
    photos = photos.filter(RawSQL(f"{COUNT_COLUMN} < %s", (n,), output_field=BooleanField()))
    if storage_uuid is not None:
        storage_id = FileStorage.objects.filter(storage_uuid=storage_uuid).values_list("pk", flat=True).first()
        # One probe of the unique (storage, photo) index per photo: an IN list would be built anew per query.
        photos = photos.filter(Exists(StoragePhoto.objects.filter(file_storage_id=storage_id, photo=OuterRef("pk"))))
    return photos


def fewest_copies_first(photos):
    """The under-protected list's order: fewest copies first (a photo with none, every copy missing or modified,
    heads it), then oldest on record. The (copies_count, id) index serves it with no sort: ordered newest first
    instead, 50,000 under-protected photos of 100,000 were sorted on every page asked for (the load benchmark)."""
    return photos.order_by(RawSQL(COUNT_COLUMN, (), output_field=IntegerField()).asc(), "id")


def with_copies_count(photos):
    """The photos annotated with `copies_count`."""
    return photos.annotate(copies_count=RawSQL(COUNT_COLUMN, (), output_field=IntegerField()))


def only_here(storage):
    """The photos whose only copy is on this storage."""
    return Photo.objects.filter(RawSQL(f"{SOLE_COLUMN} = %s", (storage.pk,), output_field=BooleanField()))


def photos_only_here(storage) -> int:
    """How many photos have their only copy on this storage: one index range, whatever the storage's size."""
    return only_here(storage).count()


def only_verified_here(storage):
    """The photos with more than one copy whose only verified copy is on this storage: of the storages holding a
    copy, it alone holds one whose verified_at is set (a copy never read back is not known to be good)."""
    return with_copies_count(
        Photo.objects.filter(RawSQL(f"{VERIFIED_SOLE_COLUMN} = %s", (storage.pk,), output_field=BooleanField()))
    ).filter(copies_count__gt=1)


def under_protected_on(storage, n: int) -> int:
    """How many photos with a file on record on this storage are kept in fewer than n storages: each under-protected
    photo (the count's index) probed in the unique (storage, photo) index, so one storage costs what it holds."""
    return with_fewer_copies(Photo.objects.all(), n, storage_uuid=storage.storage_uuid).count()


def under_protected_by_storage(n: int) -> dict[int, int]:
    """{storage id: how many photos with a file row on it are kept in fewer than n storages} (the health check)."""
    few = with_fewer_copies(Photo.objects.all(), n).values("id")
    rows = (
        StoragePhoto.objects.filter(photo_id__in=few)
        .order_by()
        .values("file_storage_id")
        .annotate(n=Count("id"))
        .values_list("file_storage_id", "n")
    )
    return dict(rows)


def _listed(photos, storage, limit: int) -> list[dict]:
    """Up to `limit` of these photos, oldest row first, each with its file on this storage and its copies."""
    chosen = list(with_copies_count(photos.defer("hotpreview")).order_by("id")[:limit])
    paths: dict[int, str] = {}
    for photo_id, storage_id, path in (
        ImageFile.objects.filter(photo_id__in=[p.pk for p in chosen])  # by the photo index: a few rows each
        .exclude(status=ImageFile.Status.MISSING)
        .order_by("-is_primary", "-id")
        .values_list("photo_id", "file_storage_id", "relative_path")
    ):
        if storage_id == storage.pk:
            paths[photo_id] = path  # the last one written wins: the primary, else the oldest
    return [
        {
            "hothash": p.hothash,
            "title": p.title,
            "taken_at": p.taken_at,
            "path": paths.get(p.pk),
            "copies": p.copies_count,
        }
        for p in chosen
    ]


def retire_check(storage, *, limit: int = 100) -> dict:
    """Whether this storage can be retired without losing a photo's only copy, or its only verified copy; the
    photos that keep it from being so, up to `limit` of each kind, with their full counts."""
    only = only_here(storage)
    only_verified = only_verified_here(storage)
    only_count, verified_count = only.count(), only_verified.count()
    return {
        "storage_uuid": storage.storage_uuid,
        "safe_to_retire": only_count == 0 and verified_count == 0,
        "only_copy_count": only_count,
        "only_copy": _listed(only, storage, limit),
        "only_verified_copy_count": verified_count,
        "only_verified_copy": _listed(only_verified, storage, limit),
        "limit": limit,
    }
