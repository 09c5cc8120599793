"""Long work as Jobs: start one, let a worker claim and run it, report progress, cancel it, wait for it.

A job kind maps to a plain function `runner(job, ctx) -> dict`, registered by the app that owns the work in its
AppConfig.ready() (register_runner). The Celery task, a management command and the tests all end up in the same
function, and only the way progress is shown differs. This module imports no other app of ImaLink but imalink.
"""

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import Count, Q
from django.utils import timezone

from imalink.errors import Conflict, ImalinkError, NotFound

from .models import Job

logger = logging.getLogger("imalink.jobs")

RUN_TASK = "jobs.run_job"  # the Celery task (jobs/tasks.py) that runs one job in a worker, by name

# kind -> `runner(job, ctx) -> dict`, filled by each app's AppConfig.ready().
RUNNERS: dict[str, Callable] = {}


def register_runner(kind: str, runner: Callable) -> None:
    """Make `kind` a job kind that `runner(job, ctx)` carries out. Called once per kind, from AppConfig.ready()."""
    if RUNNERS.get(kind, runner) is not runner:
        raise ValueError(f"job kind {kind!r} is already registered to {RUNNERS[kind].__module__}")
    RUNNERS[kind] = runner


PROGRESS_INTERVAL_S = 0.5


class JobCancelled(Exception):
    """Raised inside a runner at a safe point when the job has been asked to stop; may carry a partial result."""

    def __init__(self, result: dict | None = None):
        super().__init__("cancelled")
        self.result = result


class JobWaitsForChildren(Exception):
    """Raised by a runner that handed its work to child jobs: it stays running until the last child ends."""


class JobContext:
    """What a runner gets: a progress callback (throttled writes to the row) and a cancel check."""

    def __init__(self, job: Job, on_progress=None):
        self.job = job
        self.on_progress = on_progress
        self.progress_data = dict(job.progress or {})
        self._last_write = 0.0
        self._last_cancel_check = 0.0

    def progress(self, *, force: bool = False, **values) -> None:
        self.progress_data.update(values)
        if self.on_progress:
            self.on_progress(self.progress_data)
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
    """One job, its state made true first if the process running it is gone (see jobs_sweep_stale)."""
    job = Job.objects.select_related("storage", "session").filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"No job with id {job_id}.", details={"job_id": job_id})
    return job_checked(job)


def job_checked(job: Job) -> Job:
    """The job, re-read if the sweep found its process gone (so a page or an answer never shows a dead job running)."""
    if job.status == Job.Status.RUNNING and job.worker and jobs_sweep_stale([job], resend=False)["failed"]:
        job.refresh_from_db()
    return job


def job_start(
    *, kind: str, storage=None, session=None, params: dict | None = None, user=None, enqueue: bool = True
) -> Job:
    """Create a queued job and send it to a worker once the surrounding transaction commits.

    With enqueue=False the caller runs it itself (job_run), as the management commands do.
    """
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
    if enqueue:
        transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id: int) -> None:
    result = current_app.send_task(RUN_TASK, (job_id,), queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    Job.objects.filter(pk=job_id).update(celery_task_id=result.id, enqueued_at=timezone.now())


def job_enqueue_quietly(job_id: int) -> bool:
    """Send a queued job to the broker; a broker that is down costs a warning, not the user's request.

    The job row stays queued, so it can be sent again later; nothing the user asked for is lost.
    """
    try:
        _enqueue(job_id)
    except Exception as exc:  # kombu and redis raise many types when the broker is unreachable
        logger.warning(
            "job %s stays queued: the task broker could not be reached (%s: %s)", job_id, type(exc).__name__, exc
        )
        return False
    return True


def this_process() -> str:
    """How a job names the process that runs it: "host:pid"."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _claim(job_id: int) -> bool:
    """Take a queued job for this process; False if another one has it or it is finished or gone."""
    now = timezone.now()
    return bool(
        Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
            status=Job.Status.RUNNING, started_at=now, worker=this_process(), heartbeat_at=now
        )
    )


class Heartbeat:
    """While a job runs, a thread marks its row alive every IMALINK_JOB_HEARTBEAT_S seconds.

    A runner may spend minutes in one step (hashing a large video, waiting for a storage's lock) without
    reporting progress; the heartbeat is what tells the sweep that its process is still there.
    """

    def __init__(self, job_id: int):
        self.job_id, self.interval = job_id, settings.IMALINK_JOB_HEARTBEAT_S
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"job-{job_id}-heartbeat", daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()

    def _beat(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                try:
                    Job.objects.filter(pk=self.job_id, status=Job.Status.RUNNING).update(heartbeat_at=timezone.now())
                except DatabaseError as exc:  # the database is away for a moment; the next beat tries again
                    logger.warning("job %s: heartbeat not recorded (%s)", self.job_id, exc)
        finally:
            connections.close_all()  # this thread's own connection


def _owner_is_gone(worker: str) -> bool:
    """True when the job's process ran on this host and no longer exists; False when alive or unknowable here."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a process of another user holds that pid: alive, though maybe not ours
        return False
    return _is_zombie(int(pid))


def _is_zombie(pid: int) -> bool:
    """A killed process that nobody has reaped yet still answers kill(pid, 0), but it is dead (state Z or X).

    A worker's pool process killed with its worker is re-parented to PID 1, which may reap it late.
    """
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False  # no /proc here, or it is gone this instant: the next sweep decides
    state = stat_line[stat_line.rfind(b")") + 2 :][:1]  # the field after "(comm)", which may itself hold spaces
    return state in (b"Z", b"X")


def jobs_sweep_stale(jobs=None, *, resend: bool = True) -> dict:
    """Make the job rows tell the truth after a worker died (SIGKILL, OOM, a reboot) or the broker lost a message.

    - A running job whose process is gone from this host, or whose heartbeat is older than
      IMALINK_JOB_STALE_S, is failed with a reason that says to run it again. Every runner is safe to run
      again: a re-run finishes the work exactly. A job wrongly failed (its process was only cut off from the
      database for longer than that) still records its real end when it finishes; meanwhile its storage lock
      keeps a re-run from interleaving with it.
    - A queued job whose message was sent more than IMALINK_JOB_STALE_S ago is sent again: Redis keeps no
      queue across a restart. Claiming is conditional, so a message delivered twice runs the job once.

    `jobs` limits the sweep to those rows (a job page checks only its own). Reads pass resend=False: a page
    must not wait on a broker that is down; the worker's start and beat send again. Returns the ids touched.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.IMALINK_JOB_STALE_S)
    running = Job.objects.filter(status=Job.Status.RUNNING).exclude(worker="")
    queued = Job.objects.filter(status=Job.Status.QUEUED, enqueued_at__lt=stale_before)
    if jobs is not None:
        ids = [job.pk for job in jobs]
        running, queued = running.filter(pk__in=ids), queued.filter(pk__in=ids)
    failed = []
    for job in running.only("id", "worker", "heartbeat_at", "parent_id", "errors"):
        gone = _owner_is_gone(job.worker)
        if not gone and job.heartbeat_at and job.heartbeat_at >= stale_before:
            continue
        reason = (
            f"The process running this job ({job.worker}) stopped before it finished"
            if gone
            else (
                f"The process running this job ({job.worker}) has not been heard from "
                f"since {job.heartbeat_at or 'it started'}"
            )
        )
        error = {
            "error": f"{reason}: it was killed, ran out of memory, or its machine restarted. "
            "Work it finished is kept; run it again to complete the rest.",
            "type": "WorkerLost",
            "code": "worker_lost",
            "status": 500,
        }
        # Conditional on the same owner: a job that finished or was re-claimed meanwhile is left alone.
        if Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, worker=job.worker).update(
            status=Job.Status.FAILED, finished_at=now, errors=[*(job.errors or []), error]
        ):
            logger.warning("job %s failed by the sweep: %s", job.pk, reason)
            failed.append(job.pk)
            if job.parent_id:
                _settle_parent(job.parent_id)
    resent = [job_id for job_id in queued.values_list("id", flat=True) if job_enqueue_quietly(job_id)] if resend else []
    return {"failed": failed, "resent": resent}


def _finish(job: Job, status: str, *, result=None, errors=None, progress=None) -> None:
    fields = {"status": status, "finished_at": timezone.now()}
    try:
        _finish_row(job, fields, result=result, errors=errors, progress=progress)
    finally:
        if job.parent_id:
            _settle_parent(job.parent_id)


def _finish_row(job: Job, fields: dict, *, result=None, errors=None, progress=None) -> None:
    if result is not None:
        fields["result"] = result
    if errors is not None:
        fields["errors"] = errors
    if progress is not None:
        fields["progress"] = progress
    Job.objects.filter(pk=job.pk).update(**fields)


def job_run(job_id: int, *, on_progress=None) -> Job | None:
    """Claim and run one job to its end. Returns None when there is nothing for this caller to do.

    `on_progress(progress_dict)` is called on every progress report: the CLI draws its bar from it.
    """
    if not _claim(job_id):
        logger.info("job %s not claimed: already taken, finished or deleted", job_id)
        return None
    job = Job.objects.select_related("storage", "session").get(pk=job_id)
    ctx = JobContext(job, on_progress=on_progress)
    runner = RUNNERS[job.kind]
    try:
        with Heartbeat(job.pk):
            result = runner(job, ctx)
    except JobWaitsForChildren:
        # No process runs a parent while its children work: the sweep must not take it for dead.
        Job.objects.filter(pk=job.pk).update(progress=ctx.progress_data, worker="", heartbeat_at=None)
        _settle_parent(job.pk)  # the children may all have finished already
    except JobCancelled as exc:
        result = exc.result if exc.result is not None else {"cancelled": True, **ctx.progress_data}
        _finish(job, Job.Status.CANCELLED, progress=ctx.progress_data, result=result)
    except Exception as exc:
        logger.exception("job %s (%s) failed", job.pk, job.kind)
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        error = {"error": message, "type": type(exc).__name__, "trace": traceback.format_exc(limit=5)}
        if hasattr(exc, "code") and hasattr(exc, "status"):
            error.update(code=exc.code, status=exc.status)  # an ImalinkError keeps its meaning for the API
        _finish(job, Job.Status.FAILED, progress=ctx.progress_data, errors=[*(job.errors or []), error])
    else:
        _finish(job, Job.Status.SUCCEEDED, result=result, progress=ctx.progress_data)
    job.refresh_from_db()
    return job


def job_cancel(job: Job) -> Job:
    """A queued job is cancelled at once; a running one stops at its next safe point."""
    if job.is_finished:
        raise Conflict(f"Job {job.pk} has already finished ({job.status}).", code="job_finished")
    now = timezone.now()
    if not Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
        status=Job.Status.CANCELLED, cancel_requested=True, finished_at=now
    ):
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


def job_response(job: Job, *, wait: float | None):
    """The sync/async rule of DESIGN §5: wait up to IMALINK_SYNC_WAIT (or `wait`) seconds for the job.

    Finished in time: (200, the job's result with its job_id). Otherwise: (202, where to follow it).
    A failed job answers with its error in the one error shape.
    """
    timeout = settings.IMALINK_SYNC_WAIT if wait is None else max(0.0, min(wait, settings.IMALINK_SYNC_WAIT))
    if timeout > 0:
        job = job_wait(job, timeout)
    if job.status == Job.Status.SUCCEEDED:
        return 200, {**(job.result or {}), "job_id": job.pk, "status": job.status}
    if job.status == Job.Status.FAILED:
        last = (job.errors or [{}])[-1]
        raise ImalinkError(
            f"Job {job.pk} failed: {last.get('error', 'unknown error')}",
            code=last.get("code") or "job_failed",
            status=last.get("status") or 500,
            details={"job_id": job.pk},
        )
    return 202, {"job_id": job.pk, "status": job.status, "status_url": f"/api/v1/jobs/{job.pk}", "result": job.result}


def _settle_parent(parent_id: int) -> None:
    """Bring a parent job's progress up to date from its children, and finish it when the last one has."""
    counts = Job.objects.filter(parent_id=parent_id).aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(status__in=Job.FINISHED)),
        succeeded=Count("id", filter=Q(status=Job.Status.SUCCEEDED)),
        failed=Count("id", filter=Q(status=Job.Status.FAILED)),
        cancelled=Count("id", filter=Q(status=Job.Status.CANCELLED)),
    )
    parent = Job.objects.filter(pk=parent_id).first()
    if parent is None or parent.is_finished:
        return
    progress = {**(parent.progress or {}), **counts}
    if counts["total"] and counts["done"] == counts["total"]:
        children = list(
            Job.objects.filter(parent_id=parent_id).order_by("id").values("id", "session_id", "status", "result")
        )
        result = {
            "children": [{"job_id": c["id"], "session_id": c["session_id"], "status": c["status"]} for c in children],
            "written": sum((c["result"] or {}).get("written", 0) for c in children),
            "session_ids": [c["session_id"] for c in children],
            **{k: counts[k] for k in ("succeeded", "failed", "cancelled")},
        }
        status = Job.Status.SUCCEEDED if counts["succeeded"] == counts["total"] else Job.Status.FAILED
        # Conditional: two children finishing at once must not both finish the parent.
        Job.objects.filter(pk=parent_id, status=Job.Status.RUNNING).update(
            status=status, progress=progress, result=result, finished_at=timezone.now()
        )
    else:
        Job.objects.filter(pk=parent_id, status=Job.Status.RUNNING).update(progress=progress)
