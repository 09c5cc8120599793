"""Long work as Jobs: start one, let a worker claim and run it, report progress, cancel it, wait for it.

A job kind maps to a plain function `runner(job, ctx) -> dict`, registered by the app that owns the work in its
AppConfig.ready() (register_runner). The Celery task, a management command and the tests all end up in the same
function, and only the way progress is shown differs. This module imports no other app of ImaLink but imalink.

A dead worker is found one way, and the job's row carries it. The claim names the owner ("host:pid") and a
heartbeat thread keeps `heartbeat_at` fresh; `job_lost_reason` alone decides that the owner is gone. Reads show
its verdict without writing (`job_as_seen`); `jobs_sweep_stale` writes it, as a worker starts, every minute from
beat, and before each claim. Celery acknowledges a job's message as the job starts and never redelivers it:
a job run by a management command has no message, and Redis would hand a long job of a live worker to a
second worker once its visibility timeout passed. docs/RELIABILITY.md says why, at more length.

A job may hand its work to child jobs (job_fan_out): a Celery group of `jobs.run_job`, each linked to
`jobs.settle_parent`, which finishes the parent from its children's rows. Not a chord: there is no result
backend, and a chord waits forever for a child whose worker was killed; the sweep settles such a parent.
"""

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from celery import current_app, group
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import Count, Q
from django.utils import timezone

from imalink.errors import Conflict, ImalinkError, NotFound

from .models import Job

logger = logging.getLogger("imalink.jobs")

RUN_TASK = "jobs.run_job"  # the Celery task (jobs/tasks.py) that runs one job in a worker, by name
SETTLE_TASK = "jobs.settle_parent"  # the Celery callback that brings a parent up to date after a child's task

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


# --- reading a job: the truth, and no write ------------------------------------------------------------------


def job_get(job_id: int) -> Job:
    """One job as a read shows it (job_as_seen). Nothing is written."""
    job = Job.objects.select_related("storage", "session").filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"No job with id {job_id}.", details={"job_id": job_id})
    return job_as_seen(job)


def job_as_seen(job: Job, *, now: datetime | None = None) -> Job:
    """The job as the truth has it: a running job whose owner is gone shows as failed, with worker_lost.

    Only this instance changes, never the row, so a page or an answer never writes; the sweep writes the same
    verdict (job_lost_reason) when a worker starts, at the next beat, or at the next claim.
    """
    now = now or timezone.now()
    reason = job_lost_reason(job, now=now)
    if reason:
        job.status, job.finished_at = Job.Status.FAILED, now
        job.errors = [*(job.errors or []), _worker_lost_error(reason)]
    return job


# --- who owns a running job, and whether it is gone ---------------------------------------------------------


def this_process() -> str:
    """How a job names the process that runs it: "host:pid"."""
    return f"{socket.gethostname()}:{os.getpid()}"


def job_lost_reason(job: Job, *, now: datetime | None = None) -> str | None:
    """Why a running job's owner is gone, or None: the one judgement of a dead worker, for reads and the sweep.

    Gone means its process ran on this host and no longer exists, or its heartbeat is older than
    IMALINK_JOB_STALE_S (the only sign of a process on another host, or of one cut off from the database).
    A running job that names no owner (a parent whose children do its work, a row from before heartbeats)
    is never judged here.
    """
    if job.status != Job.Status.RUNNING or not job.worker:
        return None
    if _process_is_gone(job.worker):
        return f"The process running this job ({job.worker}) stopped before it finished"
    stale_before = (now or timezone.now()) - timedelta(seconds=settings.IMALINK_JOB_STALE_S)
    if job.heartbeat_at is None or job.heartbeat_at < stale_before:
        return (
            f"The process running this job ({job.worker}) has not been heard from "
            f"since {job.heartbeat_at or 'it started'}"
        )
    return None


def _worker_lost_error(reason: str) -> dict:
    return {
        "error": f"{reason}: it was killed, ran out of memory, or its machine restarted. "
        "Work it finished is kept; run it again to complete the rest.",
        "type": "WorkerLost",
        "code": "worker_lost",
        "status": 500,
    }


def _process_is_gone(worker: str) -> bool:
    """True when the "host:pid" ran on this host and no longer exists; False when alive or unknowable here."""
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


class Heartbeat:
    """While a job runs, a thread marks its row alive every IMALINK_JOB_HEARTBEAT_S seconds.

    A runner may spend minutes in one step (hashing a large video, waiting for a storage's lock) without
    reporting progress; the heartbeat is what tells job_lost_reason that its process is still there.
    """

    def __init__(self, job_id: int):
        self.job_id, self.interval, self.owner = job_id, settings.IMALINK_JOB_HEARTBEAT_S, this_process()
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
                    # Only while this process owns it: a parent that handed its work to children has no owner.
                    Job.objects.filter(pk=self.job_id, status=Job.Status.RUNNING, worker=self.owner).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError as exc:  # the database is away for a moment; the next beat tries again
                    logger.warning("job %s: heartbeat not recorded (%s)", self.job_id, exc)
        finally:
            connections.close_all()  # this thread's own connection


# --- the sweep: where the verdict is written -----------------------------------------------------------------


def jobs_sweep_stale(jobs=None, *, resend: bool = True) -> dict:
    """Write down the truth after a worker died (SIGKILL, OOM, a reboot) or the broker lost a message.

    - A running job whose owner is gone (job_lost_reason) is failed with worker_lost and a reason that says to
      run it again. Every runner is safe to run again: a re-run finishes the work exactly. A job wrongly failed
      (its process was only cut off from the database for longer than IMALINK_JOB_STALE_S) still records its
      real end when it finishes; meanwhile its storage lock keeps a re-run from interleaving with it.
    - A parent whose children have all ended is finished, and one whose child was failed here is brought up to
      date: a child killed with its worker sends no callback.
    - With `resend`, a queued job whose message was sent more than IMALINK_JOB_STALE_S ago is sent again:
      Redis keeps no queue across a restart, and a worker killed after taking a message but before claiming
      its job took the message with it. Claiming is conditional, so a message delivered twice runs it once.

    Called as a worker starts and every minute from beat (with resend), and before each claim (without: a
    command must not wait on a broker that is down). `jobs` judges only those rows, as they were read.
    Returns the ids touched.
    """
    now = timezone.now()
    if jobs is None:
        candidates = Job.objects.filter(status=Job.Status.RUNNING).exclude(worker="")
        candidates = candidates.only("id", "status", "worker", "heartbeat_at", "parent_id", "errors")
    else:
        candidates = [job for job in jobs if job.status == Job.Status.RUNNING]
    failed, parents = [], set()
    for job in candidates:
        reason = job_lost_reason(job, now=now)
        if reason is None:
            continue
        # Conditional on the owner and the heartbeat that were judged: a job that finished, was re-claimed or
        # was heard from meanwhile is left alone.
        if Job.objects.filter(
            pk=job.pk, status=Job.Status.RUNNING, worker=job.worker, heartbeat_at=job.heartbeat_at
        ).update(status=Job.Status.FAILED, finished_at=now, errors=[*(job.errors or []), _worker_lost_error(reason)]):
            logger.warning("job %s failed by the sweep: %s", job.pk, reason)
            failed.append(job.pk)
            if job.parent_id:
                parents.add(job.parent_id)
    if jobs is None:
        parents.update(
            Job.objects.filter(status=Job.Status.RUNNING, worker="", children__isnull=False)
            .exclude(children__status__in=(Job.Status.QUEUED, Job.Status.RUNNING))
            .values_list("id", flat=True)
            .distinct()
        )
    for parent_id in sorted(parents):
        job_settle_parent(parent_id)
    resent = []
    if resend:
        stale_before = now - timedelta(seconds=settings.IMALINK_JOB_STALE_S)
        queued = Job.objects.filter(status=Job.Status.QUEUED, enqueued_at__lt=stale_before)
        if jobs is not None:
            queued = queued.filter(pk__in=[job.pk for job in jobs])
        resent = [job_id for job_id in queued.values_list("id", flat=True) if job_enqueue_quietly(job_id)]
    return {"failed": failed, "resent": resent}


# --- starting, claiming and running ------------------------------------------------------------------------


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


def _claim(job_id: int) -> bool:
    """Take a queued job for this process; False if another one has it or it is finished or gone."""
    now = timezone.now()
    return bool(
        Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
            status=Job.Status.RUNNING, started_at=now, worker=this_process(), heartbeat_at=now
        )
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


def job_run(job_id: int, *, on_progress=None) -> Job | None:
    """Claim and run one job to its end. Returns None when there is nothing for this caller to do.

    `on_progress(progress_dict)` is called on every progress report: the CLI draws its bar from it. A job that
    handed its work to children (job_fan_out) is returned still running; its children finish it.
    """
    # A command runs with no worker start and no beat beside it: the claim is where it writes down lost jobs.
    jobs_sweep_stale(resend=False)
    if not _claim(job_id):
        logger.info("job %s not claimed: already taken, finished or deleted", job_id)
        return None
    job = Job.objects.select_related("storage", "session").get(pk=job_id)
    ctx = JobContext(job, on_progress=on_progress)
    runner = RUNNERS[job.kind]
    try:
        with Heartbeat(job.pk):
            result = runner(job, ctx)
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
        if isinstance(result, FannedOut):
            job_settle_parent(job.pk)  # no children at all, or all of them already done
        else:
            _finish(job, Job.Status.SUCCEEDED, result=result, progress=ctx.progress_data)
    job.refresh_from_db()
    return job


# --- a job whose work is done by child jobs ------------------------------------------------------------------


@dataclass(frozen=True)
class FannedOut:
    """What a runner returns when its children do its work (job_fan_out): its job stays running until they end."""

    child_ids: list[int]


def fans_out(summarize: Callable[[list[dict]], dict]) -> Callable:
    """Mark a runner that hands its work to child jobs. When the last child ends, the parent's result is the
    children (id, session, status), their counts by status, and `summarize(children)`, where each child is a
    dict of its id, session_id, status and result."""

    def mark(runner: Callable) -> Callable:
        runner.summarize_children = summarize
        return runner

    return mark


def job_fan_out(job: Job, ctx: JobContext, children: list[Job]) -> FannedOut:
    """Send `children` (queued jobs whose parent is `job`) to the workers as a Celery group, each linked to the
    callback that settles `job`; the runner returns what this returns.

    `job` names no owner from here on, so no process's death fails it: its children are its work. A child
    killed with its worker sends no callback, and the sweep that fails it settles the parent instead.
    """
    ids = [child.pk for child in children]
    ctx.progress(total=len(ids), done=0, force=True)
    Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(worker="", heartbeat_at=None)
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    settle = current_app.signature(SETTLE_TASK, (job.pk,), queue=queue, immutable=True)
    signatures = []
    for child_id in ids:
        signature = current_app.signature(RUN_TASK, (child_id,), queue=queue, immutable=True)
        signature.link(settle)
        signatures.append(signature)
    try:
        sent = group(signatures).apply_async() if signatures else None
    except Exception:
        # Nobody will run them: they end with their parent, which fails with the broker's error.
        Job.objects.filter(pk__in=ids, status=Job.Status.QUEUED).update(
            status=Job.Status.CANCELLED, finished_at=timezone.now()
        )
        raise
    now = timezone.now()
    for child_id, result in zip(ids, sent.results if sent else [], strict=True):
        Job.objects.filter(pk=child_id).update(celery_task_id=result.id, enqueued_at=now)
    return FannedOut(child_ids=ids)


def job_settle_parent(parent_id: int) -> None:
    """Bring a parent job's progress up to date from its children's rows, and finish it once they have all ended.

    Any child's callback, the sweep, or both at once may call it; it counts rows, so order does not matter.
    """
    parent = Job.objects.filter(pk=parent_id).first()
    if parent is None or parent.is_finished:
        return
    counts = Job.objects.filter(parent_id=parent_id).aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(status__in=Job.FINISHED)),
        succeeded=Count("id", filter=Q(status=Job.Status.SUCCEEDED)),
        failed=Count("id", filter=Q(status=Job.Status.FAILED)),
        cancelled=Count("id", filter=Q(status=Job.Status.CANCELLED)),
    )
    progress = {**(parent.progress or {}), **counts}
    if counts["done"] < counts["total"]:
        Job.objects.filter(pk=parent_id, status=Job.Status.RUNNING).update(progress=progress)
        return
    children = list(
        Job.objects.filter(parent_id=parent_id).order_by("id").values("id", "session_id", "status", "result")
    )
    summarize = getattr(RUNNERS.get(parent.kind), "summarize_children", None)
    result = {
        "children": [{"job_id": c["id"], "session_id": c["session_id"], "status": c["status"]} for c in children],
        **(summarize(children) if summarize else {}),
        **{k: counts[k] for k in ("succeeded", "failed", "cancelled")},
    }
    if parent.cancel_requested and counts["cancelled"]:
        status = Job.Status.CANCELLED
    elif counts["succeeded"] == counts["total"]:
        status = Job.Status.SUCCEEDED
    else:
        status = Job.Status.FAILED
    # Conditional: two children ending at once must not both finish the parent.
    Job.objects.filter(pk=parent_id, status=Job.Status.RUNNING).update(
        status=status, progress=progress, result=result, finished_at=timezone.now()
    )


# --- cancel, wait, answer ------------------------------------------------------------------------------------


def job_cancel(job: Job) -> Job:
    """A queued job is cancelled at once; a running one stops at its next safe point, as do a parent's children.

    A cancel writes, so it first writes down a lost owner: such a job has finished (failed), and says so.
    """
    job.refresh_from_db()
    jobs_sweep_stale([job], resend=False)
    job.refresh_from_db()
    if job.is_finished:
        raise Conflict(f"Job {job.pk} has already finished ({job.status}).", code="job_finished")
    now = timezone.now()
    if not Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
        status=Job.Status.CANCELLED, cancel_requested=True, finished_at=now
    ):
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    children = Job.objects.filter(parent_id=job.pk)
    if children.exists():
        children.filter(status=Job.Status.QUEUED).update(
            status=Job.Status.CANCELLED, cancel_requested=True, finished_at=now
        )
        children.filter(status=Job.Status.RUNNING).update(cancel_requested=True)
        job_settle_parent(job.pk)
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
