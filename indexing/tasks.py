"""The scheduled Celery tasks of indexing: each is a thin door that starts jobs (the jobs app runs them).

The scheduled ones are installed in django-celery-beat by a data migration (indexing/migrations/0004) and
can be edited in the admin.
"""

import logging

from celery import shared_task
from django.conf import settings

from imalink.errors import ImalinkError
from jobs import services as jobs
from storages.models import FileStorage
from storages.services import storage_require_available

logger = logging.getLogger("imalink.tasks")


def _available_storages():
    for storage in FileStorage.objects.filter(is_active=True).order_by("id"):
        try:
            storage_require_available(storage)
        except ImalinkError as exc:
            logger.info("skipping %s: %s", storage, exc.message)
            continue
        yield storage


@shared_task(name="indexing.daily_health_check")
def daily_health_check() -> int | None:
    """The daily health check, recorded as a job like any other."""
    job = jobs.job_start(kind="health_check", enqueue=False)
    finished = jobs.job_run(job.pk)
    return finished.result.get("report_id") if finished and finished.result else None


@shared_task(name="indexing.weekly_maintenance")
def weekly_maintenance() -> list[int]:
    """The seed's weekly script: regenerate every index, then scan, for every available storage.

    Each becomes a job of its own; the per-storage lock runs them one after the other.
    """
    started = []
    for storage in _available_storages():
        started.append(jobs.job_start(kind="index_storage", storage=storage).pk)
        started.append(jobs.job_start(kind="scan", storage=storage, params={"dry_run": False, "adopt_new": False}).pk)
    return started


@shared_task(name="indexing.nightly_validation_slice")
def nightly_validation_slice() -> list[int]:
    """One night's slice of the monthly full validation of every available storage (time-budgeted)."""
    return [
        jobs.job_start(
            kind="validate",
            storage=storage,
            params={"mode": "full", "incremental": True, "budget_s": settings.IMALINK_VALIDATION_BUDGET_S},
        ).pk
        for storage in _available_storages()
    ]
