"""Celery tasks: each is a thin door into a plain function; they take ids and re-fetch their rows.

The scheduled ones are installed in django-celery-beat by a data migration (indexing/migrations/0004) and
can be edited in the admin.
"""

import logging

from celery import shared_task
from celery.signals import worker_init, worker_ready
from django.conf import settings
from django.db import connections

from . import jobs

logger = logging.getLogger("imalink.tasks")


@shared_task(name="indexing.run_job")
def run_job(job_id: int) -> str | None:
    job = jobs.job_run(job_id)
    return job.status if job else None


def _available_storages():
    from imalink.errors import ImalinkError
    from storages.models import FileStorage
    from storages.services import storage_require_available

    for storage in FileStorage.objects.filter(is_active=True).order_by("id"):
        try:
            storage_require_available(storage)
        except ImalinkError as exc:
            logger.info("skipping %s: %s", storage, exc.message)
            continue
        yield storage


@worker_init.connect
def yield_to_the_web(**kwargs) -> None:
    """Before the pool starts, so its processes inherit it: imports and scans wait, readers do not
    (IMALINK_WORKER_NICE)."""
    from imalink.priority import run_in_background

    done = run_in_background(settings.IMALINK_WORKER_NICE)
    logger.info("worker priority: nice %s, session group %s", done["nice"], done["autogroup"])


@worker_ready.connect
def sweep_when_a_worker_starts(**kwargs) -> None:
    """A worker that starts after a crash finds the crashed worker's jobs still "running": fail them now."""
    try:
        touched = jobs.jobs_sweep_stale()
        if touched["failed"] or touched["resent"]:
            logger.warning(
                "at start: failed %s (their process is gone), sent again %s", touched["failed"], touched["resent"]
            )
    finally:
        connections.close_all()  # the pool's processes must not share this process's connection


@shared_task(name="indexing.sweep_stale_jobs")
def sweep_stale_jobs() -> dict:
    """Every minute (beat): fail jobs whose process is gone, send again queued jobs whose message was lost."""
    return jobs.jobs_sweep_stale()


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
