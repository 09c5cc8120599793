"""Long work as Jobs: start one, let a worker claim and run it, report progress, cancel it, wait for it.

A job kind maps to a plain function `runner(job, ctx) -> dict`; the Celery task, a management command and
the tests all end up in the same function, and only the way progress is shown differs.
"""

import logging
import time
import traceback

from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from imalink.errors import Conflict, NotFound

from .models import Job

logger = logging.getLogger("imalink.jobs")

# kind -> dotted path of `runner(job, ctx) -> dict`; resolved lazily so apps need not import each other early.
RUNNERS = {
    "accessibility_check": "storages.services.run_accessibility_check_job",
}

PROGRESS_INTERVAL_S = 0.5


class JobCancelled(Exception):
    """Raised inside a runner at a safe point when the job has been asked to stop."""


class JobContext:
    """What a runner gets: a progress callback (throttled writes to the row) and a cancel check."""

    def __init__(self, job: Job):
        self.job = job
        self.progress_data = dict(job.progress or {})
        self._last_write = 0.0
        self._last_cancel_check = 0.0

    def progress(self, *, force: bool = False, **values) -> None:
        self.progress_data.update(values)
        now = time.monotonic()
        if force or now - self._last_write >= PROGRESS_INTERVAL_S:
            self._last_write = now
            Job.objects.filter(pk=self.job.pk).update(progress=self.progress_data)

    def increment(self, counter: str, by: int = 1) -> None:
        self.progress_data[counter] = self.progress_data.get(counter, 0) + by

    def check_cancelled(self) -> None:
        now = time.monotonic()
        if now - self._last_cancel_check < PROGRESS_INTERVAL_S:
            return
        self._last_cancel_check = now
        if Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists():
            raise JobCancelled()


def job_get(job_id: int) -> Job:
    job = Job.objects.select_related("storage", "session").filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"No job with id {job_id}.", details={"job_id": job_id})
    return job


def job_start(*, kind: str, storage=None, session=None, params: dict | None = None, user=None) -> Job:
    """Create a queued job and send it to a worker once the surrounding transaction commits."""
    if kind not in RUNNERS:
        raise ValueError(f"unknown job kind {kind!r}")
    job = Job.objects.create(
        kind=kind,
        storage=storage,
        session=session,
        params=params or {},
        created_by=user if getattr(user, "is_authenticated", False) else None,
        progress={"total": None, "done": 0},
    )
    transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id: int) -> None:
    from django.conf import settings

    from .tasks import run_job

    result = run_job.apply_async((job_id,), queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    Job.objects.filter(pk=job_id).update(celery_task_id=result.id)


def _claim(job_id: int) -> bool:
    """Take a queued job for this worker; False if another worker has it or it is finished or gone."""
    return bool(
        Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(status=Job.Status.RUNNING, started_at=timezone.now())
    )


def _finish(job: Job, status: str, *, result=None, errors=None, progress=None) -> None:
    fields = {"status": status, "finished_at": timezone.now()}
    if result is not None:
        fields["result"] = result
    if errors is not None:
        fields["errors"] = errors
    if progress is not None:
        fields["progress"] = progress
    Job.objects.filter(pk=job.pk).update(**fields)


def job_run(job_id: int) -> Job | None:
    """Claim and run one job to its end. Returns None when there is nothing for this caller to do."""
    if not _claim(job_id):
        logger.info("job %s not claimed: already taken, finished or deleted", job_id)
        return None
    job = Job.objects.select_related("storage", "session").get(pk=job_id)
    ctx = JobContext(job)
    runner = import_string(RUNNERS[job.kind])
    try:
        result = runner(job, ctx)
    except JobCancelled:
        _finish(job, Job.Status.CANCELLED, progress=ctx.progress_data, result={"cancelled": True, **ctx.progress_data})
    except Exception as exc:
        logger.exception("job %s (%s) failed", job.pk, job.kind)
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        _finish(
            job,
            Job.Status.FAILED,
            progress=ctx.progress_data,
            errors=[*(job.errors or []), {"error": message, "type": type(exc).__name__, "trace": traceback.format_exc(limit=5)}],
        )
    else:
        _finish(job, Job.Status.SUCCEEDED, result=result, progress=ctx.progress_data)
    job.refresh_from_db()
    return job


def job_cancel(job: Job) -> Job:
    """A queued job is cancelled at once; a running one stops at its next safe point."""
    if job.is_finished:
        raise Conflict(f"Job {job.pk} has already finished ({job.status}).", code="job_finished")
    now = timezone.now()
    if not Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(status=Job.Status.CANCELLED, cancel_requested=True, finished_at=now):
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    job.refresh_from_db()
    return job


def job_wait(job: Job, timeout: float) -> Job:
    """Poll the job's row until it finishes or `timeout` seconds pass; returns the fresh row."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        job.refresh_from_db()
        if job.is_finished or time.monotonic() >= deadline:
            return job
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.5)


def job_eta_seconds(job: Job) -> float | None:
    progress = job.progress or {}
    total, done = progress.get("total"), progress.get("done") or 0
    if job.status != Job.Status.RUNNING or not job.started_at or not total or done <= 0:
        return None
    elapsed = (timezone.now() - job.started_at).total_seconds()
    return round(elapsed / done * max(total - done, 0), 1)
