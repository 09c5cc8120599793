"""A job's row tells the truth after its worker dies: the heartbeat, the sweep,
and a real worker SIGKILLed mid-import."""

import socket
import subprocess
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from imports.models import ImageFile, ImportSession
from jobs import services as jobs
from jobs.models import Job
from storages.models import FileStorage
from tests.conftest import assert_error
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
    fields.setdefault("kind", "scan")
    return Job.objects.create(status=Job.Status.RUNNING, started_at=beat, worker=worker, heartbeat_at=beat, **fields)


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
    seen_failed = {job.pk for job in Job.objects.all() if jobs.job_as_seen(job).status == Job.Status.FAILED}

    touched = jobs.jobs_sweep_stale()

    assert set(touched["failed"]) == seen_failed, "a read and the sweep judge by one rule (job_lost_reason)"

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


def writes_in(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE")]


@pytest.mark.django_db
def test_every_read_shows_a_dead_process_as_failed_and_writes_nothing(api, client, admin_user):
    lost = running_job(f"{HOST}:{dead_pid()}")
    find = running_job(f"{HOST}:{dead_pid()}", kind="recovery_find", params={"search_roots": ["/x"]})
    alive = running_job(jobs.this_process())
    client.force_login(admin_user)
    api.get("/api/v1/jobs/0")  # auth stamps the token's last use (once a minute at most): done before counting

    with CaptureQueriesContext(connection) as queries:
        one = api.get(f"/api/v1/jobs/{lost.pk}").json()["data"]
        listed = {j["id"]: j for j in api.get("/api/v1/jobs/").json()["data"]["jobs"]}
        detail = client.get(f"/jobs/{lost.pk}/").content.decode()
        page = client.get("/jobs/").content.decode()
        recovery = client.get(f"/recovery/?find={find.pk}")
    assert writes_in(queries.captured_queries) == [], "a read wrote to the database"

    assert one["status"] == "failed" and one["errors"][-1]["code"] == "worker_lost"
    assert one["worker"] == lost.worker and one["heartbeat_at"] and one["finished_at"]
    assert listed[lost.pk]["status"] == listed[find.pk]["status"] == "failed"
    assert listed[alive.pk]["status"] == "running"
    assert "stopped before it finished" in detail and lost.worker in detail
    assert page.count(">failed<") == 2 and page.count(">running<") == 1
    assert recovery.status_code == 200 and recovery.context["find_job"].status == "failed"
    assert set(Job.objects.values_list("status", flat=True)) == {"running"}, "the rows are as they were"

    # The sweep writes what the reads showed, in the same words.
    assert sorted(jobs.jobs_sweep_stale()["failed"]) == sorted([lost.pk, find.pk])
    lost.refresh_from_db()
    assert lost.errors[-1]["error"] == one["errors"][-1]["error"]


@pytest.mark.django_db
def test_cancelling_a_job_whose_process_is_gone_writes_it_failed_and_answers_409(api):
    lost = running_job(f"{HOST}:{dead_pid()}")
    assert_error(api.post(f"/api/v1/jobs/{lost.pk}/cancel"), 409, "job_finished")
    lost.refresh_from_db()
    assert lost.status == Job.Status.FAILED and lost.errors[-1]["code"] == "worker_lost"
    assert not lost.cancel_requested


@pytest.mark.django_db
def test_a_command_writes_down_a_lost_job_before_it_claims_its_own(admin_user):
    # A management command has no worker start and no beat beside it: its claim is where the truth is written.
    lost = running_job(f"{HOST}:{dead_pid()}")
    mine = Job.objects.create(kind="accessibility_check")
    assert jobs.job_run(mine.pk).status == Job.Status.SUCCEEDED
    lost.refresh_from_db()
    assert lost.status == Job.Status.FAILED and lost.errors[-1]["code"] == "worker_lost"


@pytest.mark.django_db
def test_a_finished_or_reclaimed_job_is_never_failed_by_a_late_sweep(settings):
    job = running_job(f"{HOST}:{dead_pid()}")
    stale = Job.objects.get(pk=job.pk)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, finished_at=timezone.now())
    jobs.jobs_sweep_stale([stale])  # the sweep read the row while it ran; the job then finished
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.errors == []


@pytest.mark.django_db
def test_a_parent_whose_children_all_ended_without_a_callback_is_settled_by_the_sweep():
    # Its last child's worker died after finishing the child and before sending the callback (jobs.settle_parent).
    parent = Job.objects.create(kind="index_batch", status=Job.Status.RUNNING, worker="", progress={"total": 2})
    ended = [
        Job.objects.create(kind="index_session", parent=parent, status=status, result=result)
        for status, result in ((Job.Status.SUCCEEDED, {"written": 2}), (Job.Status.FAILED, None))
    ]
    waiting = Job.objects.create(kind="index_batch", status=Job.Status.RUNNING, worker="", progress={"total": 1})
    running_job(jobs.this_process(), kind="index_session", parent=waiting)

    jobs.jobs_sweep_stale()

    parent.refresh_from_db()
    assert parent.status == Job.Status.FAILED and parent.finished_at
    assert parent.result == {
        "children": [{"job_id": c.pk, "session_id": None, "status": c.status} for c in ended],
        "written": 2,
        "session_ids": [None, None],
        "succeeded": 1,
        "failed": 1,
        "cancelled": 0,
    }
    assert (parent.progress["total"], parent.progress["done"]) == (2, 2)
    waiting.refresh_from_db()
    assert waiting.status == Job.Status.RUNNING, "a parent with a child still at work waits"


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


def copies_on_the_broker(redis_url: str, queue: str, task_id: str) -> list[str]:
    """Where the broker still holds this task's message: waiting in the queue, or taken but not acknowledged."""
    import redis

    broker, prefix, needle = redis.Redis.from_url(redis_url), settings.IMALINK_REDIS_PREFIX, task_id.encode()
    places = [("queue", m) for m in broker.lrange(prefix + queue, 0, -1)]
    places += [("unacked", m) for m in broker.hvals(prefix + "unacked")]
    return [place for place, message in places if needle in message]


def test_a_worker_killed_mid_import_leaves_a_failed_job_and_a_rerun_completes(
    celery_worker, make_storage, allowed_root, corpus, api, redis_available, test_queue
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
    # One recovery, the row's: the message was acknowledged as the job started, so no second path (the broker
    # redelivering it, after Redis's visibility timeout even to a live worker) competes with the sweep.
    assert copies_on_the_broker(redis_available, test_queue, job.celery_task_id) == []

    celery_worker.kill()  # SIGKILL to the whole worker: the main process and the child running the job
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING, "nothing has noticed yet"
    celery_worker.start()  # a worker that starts sweeps first
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED, "the new worker's start did not fail the dead worker's job"
    assert job.errors[-1]["code"] == "worker_lost"
    assert copies_on_the_broker(redis_available, test_queue, job.celery_task_id) == [], "nothing to redeliver"
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
    while jobs._process_is_gone(f"{HOST}:{dead.pid}") is False and time.monotonic() < deadline:
        time.sleep(0.02)
    assert jobs._process_is_gone(f"{HOST}:{dead.pid}") is True
    alive = subprocess.Popen(["sleep", "30"])
    try:
        assert jobs._process_is_gone(f"{HOST}:{alive.pid}") is False
        assert jobs._process_is_gone(f"elsewhere:{alive.pid}") is False  # another host's pid says nothing here
    finally:
        alive.kill()
        alive.wait()
        dead.wait()
