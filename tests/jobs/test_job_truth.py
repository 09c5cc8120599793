"""A job's row tells the truth after its worker dies: the heartbeat, the sweep,
and a real worker SIGKILLed mid-import."""

import socket
import subprocess
import threading
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from imports.models import ImageFile, ImportSession
from jobs import services as jobs
from jobs.models import Job
from storages.models import FileStorage
from tests.imports.test_import_api import make_camera_copies

HOST = socket.gethostname()


def slow_runner(job, ctx) -> dict:
    """A runner that reports nothing for a while, as one long step of a real job does."""
    time.sleep(job.params["seconds"])
    return {"slept": job.params["seconds"]}


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def running_job(worker: str, *, heartbeat_age: float = 0, **fields) -> Job:
    beat = timezone.now() - timedelta(seconds=heartbeat_age)
    return Job.objects.create(
        kind="scan", status=Job.Status.RUNNING, started_at=beat, worker=worker, heartbeat_at=beat, **fields
    )


def test_a_running_job_names_its_process_and_its_heartbeat_advances_during_a_silent_step(
    transactional_db, settings, monkeypatch
):
    settings.IMALINK_JOB_HEARTBEAT_S = 0.1
    monkeypatch.setitem(jobs.RUNNERS, "slow", slow_runner)
    job = jobs.job_start(kind="slow", params={"seconds": 1.0}, enqueue=False)
    seen = []

    def watcher():
        try:
            while len(seen) < 6:
                time.sleep(0.15)
                row = Job.objects.get(pk=job.pk)
                seen.append((row.worker, row.heartbeat_at))
        finally:
            connections.close_all()

    thread = threading.Thread(target=watcher)
    thread.start()
    finished = jobs.job_run(job.pk)
    thread.join()
    assert finished.status == Job.Status.SUCCEEDED
    assert finished.worker == jobs.this_process()
    beats = {beat for worker, beat in seen if worker == jobs.this_process()}
    assert len(beats) >= 3, f"the heartbeat did not advance while the runner was silent: {seen}"
    # Nothing the sweep does touches a job whose process is alive and heard from.
    assert jobs.jobs_sweep_stale() == {"failed": [], "resent": []}


@pytest.mark.django_db
def test_the_sweep_fails_exactly_the_jobs_whose_process_is_gone(settings):
    settings.IMALINK_JOB_STALE_S = 120
    gone_here = running_job(f"{HOST}:{dead_pid()}")
    alive_here = running_job(jobs.this_process(), heartbeat_age=5)
    silent_elsewhere = running_job("other-host:4242", heartbeat_age=600)
    heard_elsewhere = running_job("other-host:4243", heartbeat_age=30)
    parent = Job.objects.create(kind="index_batch", status=Job.Status.RUNNING, worker="", progress={"total": 1})
    child = running_job(f"{HOST}:{dead_pid()}", parent=parent)
    legacy = Job.objects.create(kind="scan", status=Job.Status.RUNNING)  # a row from before heartbeats: no owner known

    touched = jobs.jobs_sweep_stale()

    assert sorted(touched["failed"]) == sorted([gone_here.pk, silent_elsewhere.pk, child.pk])
    for job in (gone_here, silent_elsewhere, child):
        job.refresh_from_db()
        assert job.status == Job.Status.FAILED and job.finished_at
        error = job.errors[-1]
        assert error["code"] == "worker_lost" and "run it again" in error["error"], error
    for job in (alive_here, heard_elsewhere, legacy):
        job.refresh_from_db()
        assert job.status == Job.Status.RUNNING
    parent.refresh_from_db()
    assert parent.status == Job.Status.FAILED, "a parent whose only child was lost must not stay running"
    assert jobs.jobs_sweep_stale()["failed"] == [], "a second sweep finds nothing more"


@pytest.mark.django_db
def test_a_job_read_through_the_api_never_shows_a_dead_process_as_running(api, client, admin_user):
    job = running_job(f"{HOST}:{dead_pid()}")
    data = api.get(f"/api/v1/jobs/{job.pk}").json()["data"]
    assert data["status"] == "failed"
    assert data["errors"][-1]["code"] == "worker_lost"
    assert data["worker"] == job.worker and data["heartbeat_at"]

    other = running_job(f"{HOST}:{dead_pid()}")
    listed = {j["id"]: j["status"] for j in api.get("/api/v1/jobs/").json()["data"]["jobs"]}
    assert listed[other.pk] == "failed"

    third = running_job(f"{HOST}:{dead_pid()}")
    client.force_login(admin_user)
    page = client.get(f"/jobs/{third.pk}/").content.decode()
    assert "stopped before it finished" in page and third.worker in page
    third.refresh_from_db()
    assert third.status == Job.Status.FAILED


@pytest.mark.django_db
def test_a_finished_or_reclaimed_job_is_never_failed_by_a_late_sweep(settings):
    job = running_job(f"{HOST}:{dead_pid()}")
    stale = Job.objects.get(pk=job.pk)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, finished_at=timezone.now())
    jobs.jobs_sweep_stale([stale])  # the sweep read the row while it ran; the job then finished
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.errors == []


def test_a_queued_job_whose_message_was_lost_is_sent_again(
    transactional_db, redis_available, test_queue, settings, api
):
    import redis

    settings.IMALINK_JOB_STALE_S = 60
    lost = jobs.job_start(kind="accessibility_check", enqueue=False)
    Job.objects.filter(pk=lost.pk).update(
        celery_task_id="lost-in-a-redis-restart", enqueued_at=timezone.now() - timedelta(seconds=300)
    )
    fresh = jobs.job_start(kind="accessibility_check", enqueue=False)
    Job.objects.filter(pk=fresh.pk).update(
        celery_task_id="still-waiting", enqueued_at=timezone.now() - timedelta(seconds=5)
    )

    assert api.get("/api/v1/jobs/").status_code == 200  # a read never talks to the broker
    assert Job.objects.get(pk=lost.pk).celery_task_id == "lost-in-a-redis-restart"

    touched = jobs.jobs_sweep_stale()

    assert touched == {"failed": [], "resent": [lost.pk]}
    lost.refresh_from_db()
    assert lost.celery_task_id != "lost-in-a-redis-restart" and lost.enqueued_at > timezone.now() - timedelta(
        seconds=30
    )
    # kombu keeps the instance's queues under its key prefix (IMALINK_REDIS_PREFIX).
    assert redis.Redis.from_url(redis_available).llen(settings.IMALINK_REDIS_PREFIX + test_queue) == 1, (
        "the message is on the broker again"
    )


def test_a_worker_killed_mid_import_leaves_a_failed_job_and_a_rerun_completes(
    celery_worker, make_storage, allowed_root, corpus, api
):
    storage = FileStorage.objects.get(storage_uuid=make_storage("Main")["uuid"])
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    card = make_camera_copies(allowed_root / "card", 60, corpus)
    job = jobs.job_start(kind="import", storage=storage, session=session, params={"source_path": str(card)})
    deadline = time.monotonic() + 60
    while (Job.objects.get(pk=job.pk).progress.get("done") or 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING and job.worker.startswith(f"{HOST}:"), (job.status, job.worker)

    celery_worker.kill()  # SIGKILL to the whole worker: the main process and the child running the job
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING, "nothing has noticed yet"
    celery_worker.start()  # a worker that starts sweeps first
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED, "the new worker's start did not fail the dead worker's job"
    assert job.errors[-1]["code"] == "worker_lost"
    assert api.get(f"/api/v1/jobs/{job.pk}").json()["data"]["status"] == "failed"

    rerun = api.post(f"/api/v1/import-sessions/{session.pk}/import?wait=0", {"source_path": str(card)})
    deadline = time.monotonic() + 90
    rerun_id = rerun.json()["data"]["job_id"]
    while not Job.objects.get(pk=rerun_id).is_finished and time.monotonic() < deadline:
        time.sleep(0.2)
    assert Job.objects.get(pk=rerun_id).status == Job.Status.SUCCEEDED, Job.objects.get(pk=rerun_id).errors
    rows = ImageFile.objects.filter(file_storage=storage)
    assert rows.count() == 60
    placed = {
        p.relative_to(storage.full_path).as_posix() for p in (storage.full_path / "photos").rglob("*") if p.is_file()
    }
    assert placed == set(rows.values_list("relative_path", flat=True)), "a file without a row, or a row without a file"
    assert not any((storage.full_path / ".imalink" / "tmp").iterdir()), "an orphan in .imalink/tmp"


@pytest.mark.database_independent
def test_a_process_killed_but_not_yet_reaped_counts_as_gone():
    # A worker's pool process killed with it is re-parented to PID 1, which may reap it late: kill(pid, 0)
    # still succeeds on such a zombie, and the sweep must not take it for a live owner of the job.
    dead = subprocess.Popen(["true"])  # never waited for here: it stays a zombie of this process
    deadline = time.monotonic() + 10
    while jobs._owner_is_gone(f"{HOST}:{dead.pid}") is False and time.monotonic() < deadline:
        time.sleep(0.02)
    assert jobs._owner_is_gone(f"{HOST}:{dead.pid}") is True
    alive = subprocess.Popen(["sleep", "30"])
    try:
        assert jobs._owner_is_gone(f"{HOST}:{alive.pid}") is False
        assert jobs._owner_is_gone(f"elsewhere:{alive.pid}") is False  # another host's pid says nothing here
    finally:
        alive.kill()
        alive.wait()
        dead.wait()
