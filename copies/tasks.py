"""The scheduled Celery task of copies: replicate each primary storage to the backups that are connected.

Installed in django-celery-beat, disabled, by copies/migrations/0001: the user turns it on (and sets its time)
in the admin's Periodic tasks, which is the setting. It is a thin door that starts replicate jobs; the target's
lock runs them one after another, and each job copies only what the backup lacks.
"""

import logging

from celery import shared_task

from imalink.errors import ImalinkError
from jobs import services as jobs
from jobs.models import Job
from storages.models import FileStorage
from storages.services import storage_require_available

from .replication import JOB_KIND

logger = logging.getLogger("imalink.tasks")

SCHEDULE_NAME = "ImaLink: replicate each primary to its connected backups"


def _connected(storages, *, writable: bool):
    for storage in storages:
        try:
            storage_require_available(storage, writable=writable)
        except ImalinkError as exc:
            logger.info("scheduled replication skips %s: %s", storage, exc.message)
            continue
        yield storage


def start_scheduled_replications() -> list[int]:
    """A replicate job for every (connected primary, connected backup) pair that has none queued or running."""
    active = FileStorage.objects.filter(is_active=True).order_by("id")
    primaries = list(_connected(active.filter(role=FileStorage.Role.PRIMARY), writable=False))
    backups = list(_connected(active.filter(role=FileStorage.Role.BACKUP), writable=True)) if primaries else []
    started = []
    for primary in primaries:
        for backup in backups:
            target = str(backup.storage_uuid)
            pending = Job.objects.filter(
                kind=JOB_KIND,
                storage=primary,
                status__in=(Job.Status.QUEUED, Job.Status.RUNNING),
                params__target_storage_uuid=target,
            )
            if pending.exists():
                continue
            job = jobs.job_start(kind=JOB_KIND, storage=primary, params={"target_storage_uuid": target})
            started.append(job.pk)
    return started


@shared_task(name="copies.replicate_primaries")
def replicate_primaries() -> list[int]:
    return start_scheduled_replications()
