"""The Celery side of jobs: the one task that runs a job in a worker, and what a worker does as it starts.

Each is a thin door into jobs.services; the task takes an id and re-fetches the row.
"""

import logging

from celery import shared_task
from celery.signals import worker_init, worker_ready
from django.conf import settings
from django.db import connections

from imalink.priority import run_in_background

from . import services

logger = logging.getLogger("imalink.tasks")


@shared_task(name=services.RUN_TASK)
def run_job(job_id: int) -> str | None:
    job = services.job_run(job_id)
    return job.status if job else None


@worker_init.connect
def yield_to_the_web(**kwargs) -> None:
    """Before the pool starts, so its processes inherit it: imports and scans wait, readers do not
    (IMALINK_WORKER_NICE)."""
    done = run_in_background(settings.IMALINK_WORKER_NICE)
    logger.info("worker priority: nice %s, session group %s", done["nice"], done["autogroup"])


@worker_ready.connect
def sweep_when_a_worker_starts(**kwargs) -> None:
    """A worker that starts after a crash finds the crashed worker's jobs still "running": fail them now."""
    try:
        touched = services.jobs_sweep_stale()
        if touched["failed"] or touched["resent"]:
            logger.warning(
                "at start: failed %s (their process is gone), sent again %s", touched["failed"], touched["resent"]
            )
    finally:
        connections.close_all()  # the pool's processes must not share this process's connection


@shared_task(name="jobs.sweep_stale_jobs")
def sweep_stale_jobs() -> dict:
    """Every minute (beat): fail jobs whose process is gone, send again queued jobs whose message was lost."""
    return services.jobs_sweep_stale()
