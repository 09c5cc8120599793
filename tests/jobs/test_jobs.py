"""Jobs end to end: a real Celery worker on a real broker claims a job, reports progress, and finishes it."""

import subprocess
import sys
import time

import pytest

from jobs import services as jobs
from jobs.models import Job
from tests.conftest import REPO, assert_error, stop_process, subprocess_env, wait_for_line


def wait_finished(job_id: int, timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.is_finished:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {Job.objects.get(pk=job_id).status}")


def test_a_real_worker_runs_a_job_through_redis(celery_worker, make_storage, api):
    storage = make_storage("Main")
    job = jobs.job_start(kind="accessibility_check")
    finished = wait_finished(job.pk)
    assert finished.status == Job.Status.SUCCEEDED, finished.errors
    assert finished.started_at and finished.finished_at and finished.celery_task_id
    assert finished.progress["total"] == 1 and finished.progress["done"] == 1
    assert finished.result["accessible"] == 1
    assert finished.result["storages"][0]["storage_uuid"] == storage["uuid"]

    data = api.get(f"/api/v1/jobs/{job.pk}").json()["data"]
    assert data["status"] == "succeeded" and data["progress"]["done"] == 1
    listed = api.get("/api/v1/jobs/").json()["data"]
    assert [j["id"] for j in listed["jobs"]] == [job.pk]


def test_a_worker_reports_an_unplugged_drive_as_unavailable(celery_worker, make_storage, allowed_root):
    from storages.models import FileStorage

    make_storage("Unplugged")
    (allowed_root / FileStorage.objects.get().directory_name).rename(allowed_root / "elsewhere")
    finished = wait_finished(jobs.job_start(kind="accessibility_check").pk)
    assert finished.status == Job.Status.SUCCEEDED
    assert finished.result["unavailable"] == 1
    assert FileStorage.objects.get().is_accessible is False


@pytest.mark.django_db(transaction=True)
def test_a_queued_job_is_cancelled_at_once(api, test_queue):
    job = Job.objects.create(kind="accessibility_check")  # nobody consumes this queue
    data = api.post(f"/api/v1/jobs/{job.pk}/cancel").json()["data"]
    assert data["status"] == "cancelled"
    assert jobs.job_run(job.pk) is None  # a late worker does not run it
    assert_error(api.post(f"/api/v1/jobs/{job.pk}/cancel"), 409, "job_finished")


@pytest.mark.django_db
def test_an_unknown_job_is_404(api):
    assert_error(api.get("/api/v1/jobs/999999"), 404, "not_found")
    assert_error(api.post("/api/v1/jobs/999999/cancel"), 404, "not_found")


@pytest.mark.django_db
def test_a_job_is_claimed_only_once(admin_user):
    job = Job.objects.create(kind="accessibility_check")
    assert jobs.job_run(job.pk).status == Job.Status.SUCCEEDED
    assert jobs.job_run(job.pk) is None


def test_the_embedded_broker_carries_a_job_without_redis(
    transactional_db, allowed_root, make_storage, tmp_path, test_queue
):
    """What `make run` uses when no Redis answers: kombu's filesystem transport under var/."""
    make_storage("Main")
    env = subprocess_env(tmp_path, CELERY_BROKER_URL="filesystem://", REDIS_URL="redis://127.0.0.1:1/0")
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "imalink",
            "worker",
            "--loglevel",
            "INFO",
            "--queues",
            test_queue,
            "--concurrency",
            "1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_line(log, "ready.", worker)
        starter = "from jobs.services import job_start; print('JOB', job_start(kind='accessibility_check').pk)"
        out = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", starter],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        job_id = int(out.stdout.split("JOB")[1])
        finished = wait_finished(job_id)
        assert finished.status == Job.Status.SUCCEEDED and finished.result["accessible"] == 1
        assert not (REPO / "control").exists(), "kombu state stays under var/"
    finally:
        stop_process(worker)
