"""What the indexing app keeps: health reports, the incremental validation's checkpoints, and what each index
was last written from (IndexRevision, IndexRecord). Jobs live in the jobs app."""

from django.db import models


class HealthReport(models.Model):
    """One run of the health check: the seed's per-storage figures, the issues found, and growth."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    summary = models.JSONField(default=dict)
    storages = models.JSONField(default=list)
    issues = models.JSONField(default=list)  # [{"key", "severity", "message", "storage_uuid"}]
    growth = models.JSONField(default=dict)
    alerts = models.JSONField(
        default=dict, blank=True
    )  # what was sent: {"opened": [...], "cleared": [...], "email": bool, "webhook": ...}

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Health report {self.created_at:%Y-%m-%d %H:%M} ({len(self.issues)} issues)"

    @property
    def healthy(self) -> bool:
        return not self.issues


class ValidationCheckpoint(models.Model):
    """Where the incremental monthly full validation of one storage stands (see validation.validate_incrementally)."""

    storage = models.OneToOneField(
        "storages.FileStorage", on_delete=models.CASCADE, related_name="validation_checkpoint"
    )
    cursor = models.TextField(
        blank=True, help_text="The last path checked in the current cycle; the next slice starts after it."
    )
    cycle_started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    files_checked_in_cycle = models.PositiveIntegerField(default=0)

    def __str__(self):
        state = f"complete {self.completed_at:%Y-%m-%d}" if self.completed_at else f"at {self.cursor or 'the start'}"
        return f"Validation of {self.storage}: {state}"


class IndexRevision(models.Model):
    """How many committed changes have touched what one index is built from; kept by database triggers
    (migration 0007), so a bare UPDATE, a recovery or an edit in a SQL shell bumps it as surely as save() does.

    scope is "storage:<id>" for a storage's master index.json and "session:<id>" for imports/session_<id>.json.
    A scope without a row has revision 0.
    """

    scope = models.CharField(max_length=40, unique=True)
    revision = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.scope} @ {self.revision}"


class IndexRecord(models.Model):
    """What ImaLink last learnt of the file at one index path, by writing it or by comparing it with a fresh build:
    the file as it stood then (inode, size, mtime), the revision and basis it was built or compared at, and whether
    it was equal (current). index_status answers from it while the file still stats the same: current only if it was
    equal and the revision and basis have not moved (indexing.writer's module docstring).
    """

    storage = models.ForeignKey("storages.FileStorage", on_delete=models.CASCADE, related_name="index_records")
    relative_path = models.CharField(max_length=255)
    revision = models.BigIntegerField()
    # What else the index was built from: the writer's versions and, for the master index, the storage object.
    basis = models.CharField(max_length=64)
    st_ino = models.BigIntegerField()  # stored as signed 64 bits (see writer._signed64)
    st_size = models.BigIntegerField()
    st_mtime_ns = models.BigIntegerField()
    generated_at = models.CharField(max_length=64, null=True, blank=True)  # the file's own, as read when recorded
    # False: the file parsed but differed from the build (a stale copy put back by hand), so it is not rebuilt again.
    current = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["storage", "relative_path"], name="indexrecord_unique_path")]

    def __str__(self):
        return f"{self.relative_path} @ {self.revision}"
