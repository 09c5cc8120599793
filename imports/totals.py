"""Reads of the running totals that database triggers keep (see migrations/0002_file_totals.py).

Each answer costs one or two queries over a handful of rows, however many files the storage holds, and is exact:
the totals change in the same transaction as the file rows they count.
"""

from django.db.models import BigIntegerField, F, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from .models import FileTotals, StorageTotals


def storage_totals(storage) -> dict:
    """Files on disk (present or modified), their bytes, missing files, and distinct photos of one storage."""
    sums = FileTotals.objects.filter(file_storage_id=storage.pk).aggregate(
        present_files=Sum("present_files"), present_bytes=Sum("present_bytes"), missing_files=Sum("missing_files")
    )
    photos = StorageTotals.objects.filter(file_storage_id=storage.pk).values_list("photos", flat=True).first()
    return {**{name: value or 0 for name, value in sums.items()}, "photos": photos or 0}


def session_file_counts(storage) -> dict[int, tuple[int, int]]:
    """(files on disk, missing files) of each session of this storage, wherever its files lie, by session id."""
    rows = (
        FileTotals.objects.filter(import_session__file_storage_id=storage.pk)
        .values("import_session_id")
        .annotate(present=Sum("present_files"), missing=Sum("missing_files"))
    )
    return {row["import_session_id"]: (row["present"], row["missing"]) for row in rows}


def with_images_count(sessions):
    """Sessions annotated with images_count_annotated (every file row, missing ones too) from the totals."""
    files = (
        FileTotals.objects.filter(import_session=OuterRef("pk")).order_by().values("import_session")
        .annotate(n=Sum(F("present_files") + F("missing_files"))).values("n")[:1]
    )
    return sessions.annotate(images_count_annotated=Coalesce(Subquery(files), 0, output_field=BigIntegerField()))


def per_storage(field: str):
    """An annotation for a FileStorage queryset: the sum of one FileTotals field over its sessions."""
    values = FileTotals.objects.filter(file_storage=OuterRef("pk")).order_by().values("file_storage").annotate(v=Sum(field)).values("v")[:1]
    return Coalesce(Subquery(values), 0, output_field=BigIntegerField())
