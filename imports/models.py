"""Authors, import sessions, media items (photos and videos) and the files that hold them.

A Photo is one media item: a picture, identified by its hothash, or a video, identified by `video:` and its
checksum (docs/MEDIA.md says why). An ImageFile is one file of it in one storage, identified exactly by its
checksum: the item's originals (a JPEG, its RAW, a video) and its companions (an XMP sidecar, an Apple .AAE
edit, a camera's .THM thumbnail or .LRV proxy, a live photo's motion video), told apart by `role`.
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
    # A session made by replication mirrors the session it copied (issue 17): same title, description, author.
    mirror_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="mirrors")

    class Meta:
        ordering = ["-imported_at", "-id"]

    def __str__(self):
        return f"#{self.pk} {self.title}"

    @property
    def images_count(self) -> int:
        annotated = getattr(self, "images_count_annotated", None)
        return annotated if annotated is not None else self.image_files.count()


class Photo(models.Model):
    class MediaType(models.TextChoices):
        PHOTO = "photo"
        VIDEO = "video"

    hothash = models.CharField(max_length=80, unique=True)
    media_type = models.CharField(max_length=8, choices=MediaType.choices, default=MediaType.PHOTO)
    duration_s = models.FloatField(null=True, blank=True, help_text="A video's length in seconds.")
    codec = models.CharField(max_length=40, blank=True, help_text="A video's codec, as FFmpeg names it.")
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
    # When the user last changed title, description, rating or tags in ImaLink; a sidecar changed after it is
    # read again, an older one never overwrites the change (imports/metadata.py).
    metadata_edited_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-taken_at", "-id"]
        constraints = [models.CheckConstraint(condition=models.Q(rating__lte=5), name="photo_rating_0_5")]
        # The videos alone (a partial index, as small as they are few): statistics count a storage's videos
        # from it without reading the storage's every item (imports/totals.py).
        indexes = [
            models.Index(fields=["id"], condition=models.Q(media_type="video"), name="photo_videos"),
        ]

    def __str__(self):
        return self.title or self.hothash[:16]


class ImageFile(models.Model):
    class Status(models.TextChoices):
        PRESENT = "present"
        MISSING = "missing"
        MODIFIED = "modified"

    class Role(models.TextChoices):
        """What a file is to its item. Only an original is media; the rest are companions, matched by basename."""

        ORIGINAL = "original"  # a photo's JPEG, HEIC or RAW, or a video
        SIDECAR = "sidecar"  # XMP (IMG_1.xmp, IMG_1.CR2.xmp): edited by other programs, so it may change
        EDIT = "edit"  # Apple's .AAE
        THUMBNAIL = "thumbnail"  # Canon's and GoPro's .THM
        PROXY = "proxy"  # GoPro's and DJI's low-resolution .LRV
        MOTION = "motion"  # a live photo's video (IMG_1234.HEIC with IMG_1234.MOV)

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
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.ORIGINAL)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PRESENT)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # When its bytes were last read back and found equal to the checksum: a verified copy or a full validation.
    verified_at = models.DateTimeField(null=True, blank=True)
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
            models.Index(fields=["checksum", "file_storage"], name="imagefile_checksum_storage"),
        ]

    def __str__(self):
        return self.relative_path


class SourceEntry(models.Model):
    """One file of an import's source folder and its fate: the import report lists every file, none silently."""

    class Fate(models.TextChoices):
        ARCHIVED = "archived"  # copied with verification as an original of its item
        COMPANION = "companion"  # copied with verification beside its item (role says what it is)
        DUPLICATE = "duplicate"  # its bytes were already in the storage: not copied again
        FAILED = "failed"  # could not be archived (code and reason say why)
        SKIPPED = "skipped"  # not media and not a companion: left in the source (docs/MEDIA.md)

    import_session = models.ForeignKey(ImportSession, on_delete=models.CASCADE, related_name="source_entries")
    path = models.CharField(max_length=4096, help_text="POSIX path relative to the source folder.")
    fate = models.CharField(max_length=10, choices=Fate.choices)
    role = models.CharField(max_length=10, blank=True)
    code = models.CharField(max_length=40, blank=True)
    reason = models.CharField(max_length=1000, blank=True)
    stored_path = models.CharField(max_length=4096, blank=True, help_text="Where it lies in the storage.")
    file_size = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["path", "id"]
        constraints = [models.UniqueConstraint(fields=["import_session", "path"], name="sourceentry_unique_path")]
        indexes = [models.Index(fields=["import_session", "fate"], name="sourceentry_session_fate")]

    def __str__(self):
        return f"{self.path}: {self.fate}"


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
