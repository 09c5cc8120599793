"""Reads of the running totals that database triggers keep (see migrations/0002_file_totals.py), and the storage
statistics drawn from them (GET /api/v1/file-storage/<uuid>/statistics, the storage page, the health check).

Each answer costs one or two queries over a handful of rows, however many files the storage holds, and is exact:
the totals change in the same transaction as the file rows they count.
"""

from django.db.models import BigIntegerField, F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce

from .counting import photos_only_here
from .models import FileTotals, ImportSession, Photo, StoragePhoto, StorageTotals


def file_totals(storage) -> tuple[dict, dict[int, tuple[int, int]]]:
    """In one query: the storage's files on disk (present or modified), their bytes and its missing files; and
    (files on disk, missing files) of each session of this storage, wherever its files lie, by session id."""
    rows = FileTotals.objects.filter(
        Q(file_storage_id=storage.pk) | Q(import_session__file_storage_id=storage.pk)
    ).values_list(
        "file_storage_id",
        "import_session_id",
        "import_session__file_storage_id",
        "present_files",
        "present_bytes",
        "missing_files",
    )
    totals = {"present_files": 0, "present_bytes": 0, "missing_files": 0}
    sessions: dict[int, tuple[int, int]] = {}
    for file_storage_id, session_id, session_storage_id, present, size, missing in rows:
        if file_storage_id == storage.pk:
            totals["present_files"] += present
            totals["present_bytes"] += size
            totals["missing_files"] += missing
        if session_storage_id == storage.pk:
            on_disk, gone = sessions.get(session_id, (0, 0))
            sessions[session_id] = (on_disk + present, gone + missing)
    return totals, sessions


def photo_count(storage) -> int:
    """How many distinct photos the storage holds files of."""
    return StorageTotals.objects.filter(file_storage_id=storage.pk).values_list("photos", flat=True).first() or 0


def video_count(storage) -> int:
    """How many of those items are videos: each video (Photo's partial index photo_videos holds them alone) looked
    up in the storage's StoragePhoto rows by their unique (storage, photo) index. The cost follows the number of
    videos, never the storage's size in photos."""
    videos = Photo.objects.filter(media_type=Photo.MediaType.VIDEO).values("id")
    return StoragePhoto.objects.filter(file_storage_id=storage.pk, photo_id__in=videos).count()


def with_images_count(sessions):
    """Sessions annotated with images_count_annotated (every file row, missing ones too) from the totals."""
    files = (
        FileTotals.objects.filter(import_session=OuterRef("pk"))
        .order_by()
        .values("import_session")
        .annotate(n=Sum(F("present_files") + F("missing_files")))
        .values("n")[:1]
    )
    return sessions.annotate(images_count_annotated=Coalesce(Subquery(files), 0, output_field=BigIntegerField()))


def storage_statistics(storage) -> dict:
    """File, size, photo and session figures, exact, from running totals that database triggers keep.

    A constant number of queries over a handful of rows at any size (below): no file row is read, so
    an import committing a file every few milliseconds does not make each call aggregate the whole storage.
    """
    totals, counts = file_totals(storage)
    size = totals["present_bytes"]
    sessions = ImportSession.objects.filter(file_storage=storage).order_by("id").values("id", "title", "imported_at")
    return {
        "storage_uuid": str(storage.storage_uuid),
        "statistics": {
            "total_files": totals["present_files"],
            "total_size_bytes": size,
            "total_size_mb": round(size / (1024 * 1024), 3),
            "photos": photo_count(storage),
            "videos": video_count(storage),
            "missing_files": totals["missing_files"],
            "photos_only_here": photos_only_here(storage),
        },
        "import_sessions": [
            {
                "id": s["id"],
                "title": s["title"],
                "imported_at": s["imported_at"],
                "images_count": sum(counts.get(s["id"], (0, 0))),
            }
            for s in sessions
        ],
    }
