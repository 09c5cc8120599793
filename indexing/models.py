"""Job: one piece of long work (import, scan, index generation, ...) run by a Celery worker.

The row is the truth about the work: the web process creates it, a worker claims it with a conditional
UPDATE, reports progress into it, and leaves the result in it.
"""

from django.conf import settings
from django.db import models


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    kind = models.CharField(max_length=40)
    storage = models.ForeignKey(
        "storages.FileStorage", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    session = models.ForeignKey(
        "imports.ImportSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True)
    cancel_requested = models.BooleanField(default=False)
    celery_task_id = models.CharField(max_length=64, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="When its message was last sent to the broker.")
    # Who runs it ("host:pid") and when that process last said it was alive; see jobs.jobs_sweep_stale.
    worker = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Job #{self.pk} {self.kind} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


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
    """What was last written (or found current) at one index path: the revision of its scope it matches, and
    the file as it stood then, so index_status can vouch for it from one lstat instead of a rebuild.
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

    class Meta:
        constraints = [models.UniqueConstraint(fields=["storage", "relative_path"], name="indexrecord_unique_path")]

    def __str__(self):
        return f"{self.relative_path} @ {self.revision}"
