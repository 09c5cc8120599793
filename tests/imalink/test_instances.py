"""Two ImaLink instances on one host and one Redis stay apart: each runs only its own jobs, and only its own worker
answers its broadcasts. Neither sets IMALINK_INSTANCE or IMALINK_CELERY_QUEUE: the names come from their databases."""

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, stop_process, wait_for_line
from tests.imalink.test_priority import descendants_of

pytestmark = [pytest.mark.redis, pytest.mark.worker, pytest.mark.database_independent]

JOBS = 4
ENQUEUE = (
    "from jobs import services as jobs; from jobs.models import Job; {skip}"
    "print('JOBS', [jobs.job_start(kind='health_check').pk for _ in range({n})])"
)


def instance_env(folder: Path, redis_url: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMALINK_", "CELERY_", "DJANGO_SETTINGS")) and k != "DATABASE_URL"
    }
    env.update(
        DATABASE_URL=f"sqlite:///{folder / 'imalink.sqlite3'}",
        IMALINK_VAR_DIR=str(folder / "var"),
        IMALINK_ALLOWED_ROOTS=str(folder),
        REDIS_URL=redis_url,
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def jobs_of(folder: Path) -> dict[int, tuple[str, str, str]]:
    """id -> (status, worker, celery_task_id), read straight from the instance's own database."""
    with sqlite3.connect(f"file:{folder / 'imalink.sqlite3'}?mode=ro", uri=True, timeout=30) as db:
        return {row[0]: row[1:] for row in db.execute("SELECT id, status, worker, celery_task_id FROM indexing_job")}


@pytest.fixture
def two_instances(tmp_path, redis_available):
    folders = [tmp_path / "one", tmp_path / "two"]
    for folder in folders:
        folder.mkdir()
    manage(instance_env(folders[0], redis_available), "migrate", "--noinput", "-v", "0")
    shutil.copy(folders[0] / "imalink.sqlite3", folders[1] / "imalink.sqlite3")
    workers = []
    try:
        for n, folder in enumerate(folders):
            log = folder / "worker.log"
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "imalink",
                    "worker",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    "1",
                    "--hostname",
                    f"instance{n}@%h",
                ],
                cwd=REPO,
                env=instance_env(folder, redis_available),
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            workers.append((folder, proc, log))
        for _, proc, log in workers:
            wait_for_line(log, "ready.", proc, timeout=120)
        yield workers
    finally:
        for _, proc, _ in workers:
            stop_process(proc, signal.SIGTERM)


def test_two_instances_on_one_redis_each_run_only_their_own_jobs(two_instances, redis_available):
    import redis

    submitted = []
    for n, (folder, _, _) in enumerate(two_instances):
        # The second database's ids start after 1000, so a job taken by the wrong worker cannot pass for its own.
        skip = "Job.objects.create(id=1000, kind='health_check').delete(); " if n else ""
        out = manage(instance_env(folder, redis_available), "shell", "-c", ENQUEUE.format(skip=skip, n=JOBS))
        submitted.append(json.loads(re.search(r"JOBS (\[.*\])", out).group(1)))
    assert submitted[0] == [1, 2, 3, 4] and submitted[1] == [1001, 1002, 1003, 1004]

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(
            status != "queued" and status != "running"
            for folder, _, _ in two_instances
            for status, _, _ in jobs_of(folder).values()
        ):
            break
        time.sleep(0.5)
    tasks = [{task_id for _, _, task_id in jobs_of(folder).values()} for folder, _, _ in two_instances]
    for n, ((folder, proc, log), ids) in enumerate(zip(two_instances, submitted)):
        rows = jobs_of(folder)
        assert sorted(rows) == ids
        pool = {str(pid) for pid in [proc.pid, *descendants_of(proc.pid)]}
        for job_id, (status, worker, task_id) in rows.items():
            assert status == "succeeded", (folder.name, job_id, status, log.read_text()[-3000:])
            assert worker.rsplit(":", 1)[1] in pool, (folder.name, job_id, worker, pool)
        # This worker received every task of its own instance, and none of the other's.
        received = set(re.findall(r"Task jobs\.run_job\[([0-9a-f-]+)\] received", log.read_text()))
        assert tasks[n] <= received and not tasks[1 - n] & received, folder.name

    # Each derived its own name from its database, and says so as it starts.
    names = []
    for folder, proc, log in two_instances:
        (line,) = re.findall(r"ImaLink instance (\S+): serving queue (\S+), Redis keys under (\S+)", log.read_text())
        names.append(line)
    (one, one_queue, one_prefix), (two, two_queue, two_prefix) = names
    assert one != two and one.startswith("db-") and two.startswith("db-")
    assert (one_queue, one_prefix) == (f"imalink-{one}", f"imalink:{one}:")
    assert (two_queue, two_prefix) == (f"imalink-{two}", f"imalink:{two}:")

    # Broadcasts are the instance's own too: a ping from one reaches its own worker only.
    for n, (folder, _, _) in enumerate(two_instances):
        done = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "imalink", "inspect", "ping", "--json", "--timeout", "3"],
            cwd=REPO,
            env=instance_env(folder, redis_available),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        replies = json.loads(done.stdout.strip().splitlines()[-1])
        assert [name.split("@")[0] for name in replies] == [f"instance{n}"], replies

    # And in Redis, each instance's queue bindings sit under its own prefix.
    client = redis.Redis.from_url(redis_available)
    assert client.exists(f"imalink:{one}:_kombu.binding.imalink-{one}")
    assert client.exists(f"imalink:{two}:_kombu.binding.imalink-{two}")
