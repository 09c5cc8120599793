"""Celery tasks: each is a thin door into a plain function; they take ids and re-fetch their rows."""

from celery import shared_task

from . import jobs


@shared_task(name="indexing.run_job")
def run_job(job_id: int) -> str | None:
    job = jobs.job_run(job_id)
    return job.status if job else None
