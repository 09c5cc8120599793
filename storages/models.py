"""FileStorage: one self-describing storage folder on some drive.

The folder's name is fixed at creation; its base_path may change when a drive is migrated.
"""

import uuid
from pathlib import Path

from django.db import models


class FileStorage(models.Model):
    class XmpWriteback(models.TextChoices):
        """Whether a change to a photo's rating, tags, title or description is written to its XMP sidecar."""

        OFF = "off"
        SIDECARS = "sidecars"

    class Role(models.TextChoices):
        """What a storage is in the copy policy (issue 17, docs/COPIES.md): scheduled replication copies each
        primary to the backups that are connected; an archive is counted as a copy and never written to by it."""

        PRIMARY = "primary"
        BACKUP = "backup"
        ARCHIVE = "archive"

    storage_uuid = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    directory_name = models.CharField(max_length=64, unique=True, editable=False)
    base_path = models.CharField(max_length=4096)
    display_name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    xmp_writeback = models.CharField(max_length=10, choices=XmpWriteback.choices, default=XmpWriteback.OFF)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.PRIMARY)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_scan_at = models.DateTimeField(null=True, blank=True)
    last_index_at = models.DateTimeField(null=True, blank=True)

    # The last accessibility check, kept so pages can show it while the drive is unplugged.
    is_accessible = models.BooleanField(null=True, blank=True)
    is_writable = models.BooleanField(null=True, blank=True)
    free_bytes = models.BigIntegerField(null=True, blank=True)
    total_bytes = models.BigIntegerField(null=True, blank=True)
    accessibility_checked_at = models.DateTimeField(null=True, blank=True)
    accessibility_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.display_name} ({self.directory_name})"

    @property
    def full_path(self) -> Path:
        return Path(self.base_path) / self.directory_name
