"""Authors, import sessions, photos and the image files that hold them.

A Photo is a picture, identified by its hothash; an ImageFile is one file of it (a JPEG, its RAW companion)
in one storage, identified exactly by its checksum.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self):
        return self.name


class ImportSession(models.Model):
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    imported_at = models.DateTimeField(auto_now_add=True)
    file_storage = models.ForeignKey("storages.FileStorage", on_delete=models.PROTECT, related_name="import_sessions")
    default_author = models.ForeignKey(Author, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source_path = models.CharField(max_length=4096, blank=True)
    target_subdirectory = models.CharField(max_length=1024, blank=True)

    class Meta:
        ordering = ["-imported_at", "-id"]

    def __str__(self):
        return f"#{self.pk} {self.title}"

    @property
    def images_count(self) -> int:
        annotated = getattr(self, "images_count_annotated", None)
        return annotated if annotated is not None else self.image_files.count()


class Photo(models.Model):
    hothash = models.CharField(max_length=80, unique=True)
    hothash_version = models.CharField(max_length=40, default="imalink-hothash-v1")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    taken_at = models.DateTimeField(null=True, blank=True, db_index=True)
    gps_latitude = models.FloatField(null=True, blank=True)
    gps_longitude = models.FloatField(null=True, blank=True)
    camera_make = models.CharField(max_length=200, blank=True)
    camera_model = models.CharField(max_length=200, blank=True)
    has_hotpreview = models.BooleanField(default=True)
    # Kept in the database as well as on disk, so previews show while a drive is unplugged.
    hotpreview = models.BinaryField(null=True, blank=True)

    title = models.CharField(max_length=300, blank=True)
    description = models.TextField(blank=True)
    rating = models.PositiveSmallIntegerField(default=0, validators=[MinValueValidator(0), MaxValueValidator(5)])
    tags = models.JSONField(default=list, blank=True)
    author = models.ForeignKey(Author, null=True, blank=True, on_delete=models.SET_NULL, related_name="photos")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-taken_at", "-id"]
        constraints = [models.CheckConstraint(condition=models.Q(rating__lte=5), name="photo_rating_0_5")]

    def __str__(self):
        return self.title or self.hothash[:16]


class ImageFile(models.Model):
    class Status(models.TextChoices):
        PRESENT = "present"
        MISSING = "missing"
        MODIFIED = "modified"

    photo = models.ForeignKey(Photo, on_delete=models.PROTECT, related_name="files")
    import_session = models.ForeignKey(ImportSession, on_delete=models.PROTECT, related_name="image_files")
    file_storage = models.ForeignKey("storages.FileStorage", on_delete=models.PROTECT, related_name="image_files")
    relative_path = models.CharField(max_length=4096, help_text="POSIX path relative to the storage root.")
    original_filename = models.CharField(max_length=1024)
    file_format = models.CharField(max_length=16)
    file_size = models.BigIntegerField()
    mtime_ns = models.BigIntegerField()
    checksum = models.CharField(max_length=32, help_text="xxh3-128 of the file's bytes, lower-case hex.")
    is_primary = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PRESENT)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["relative_path", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["file_storage", "relative_path"],
                condition=~models.Q(status="missing"),
                name="imagefile_unique_path_on_disk",
            ),
        ]
        indexes = [
            models.Index(fields=["file_storage", "checksum"], name="imagefile_storage_checksum"),
            models.Index(fields=["file_storage", "file_size"], name="imagefile_storage_size"),
            models.Index(fields=["file_storage", "status"], name="imagefile_storage_status"),
        ]

    def __str__(self):
        return self.relative_path


# Running totals, kept by database triggers in the same transaction as every change to an ImageFile row (by
# save(), a bulk or bare UPDATE, or a SQL shell alike; see migration 0002), so that statistics and the master
# index read a handful of rows instead of aggregating every file of a storage. Nothing in Python writes them.


class FileTotals(models.Model):
    """The files of one import session that lie in one storage: those on disk (present or modified) and missing."""

    file_storage = models.ForeignKey("storages.FileStorage", on_delete=models.CASCADE, related_name="+")
    import_session = models.ForeignKey(ImportSession, on_delete=models.CASCADE, related_name="+")
    present_files = models.BigIntegerField(default=0)
    present_bytes = models.BigIntegerField(default=0)
    missing_files = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["file_storage", "import_session"], name="filetotals_unique_bucket")
        ]


class StoragePhoto(models.Model):
    """How many files of one photo one storage holds; the row exists while there is at least one."""

    file_storage = models.ForeignKey("storages.FileStorage", on_delete=models.CASCADE, related_name="+")
    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="+")
    files = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["file_storage", "photo"], name="storagephoto_unique_pair")]


class StorageTotals(models.Model):
    """How many distinct photos a storage holds files of: its StoragePhoto rows, counted as they come and go."""

    file_storage = models.OneToOneField(
        "storages.FileStorage", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    photos = models.BigIntegerField(default=0)
