"""The Celery side of jobs: the task that runs a job in a worker, the callback that settles a parent after a
child's task, the minute's sweep, and what a worker does as it starts.

Each is a thin door into jobs.services; a task takes an id and re-fetches the row. A job's message is
acknowledged as it starts (CELERY_TASK_ACKS_LATE off): recovery from a dead worker lives in the row (see
jobs.services), and the broker redelivers nothing.
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


@shared_task(name=services.SETTLE_TASK)
def settle_parent(parent_id: int) -> None:
    """Linked to each child's run_job (jobs.services.job_fan_out): count the children's rows, finish the parent
    when they have all ended."""
    services.job_settle_parent(parent_id)


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
    """Every minute (beat): fail jobs whose owner is gone, settle their parents, send again lost messages."""
    return services.jobs_sweep_stale()
