"""`manage.py serve` (what `make run` starts) survives a crash: a worker or beat that dies is started again after a
back-off, with one line saying so, while the web server keeps answering; Ctrl-C still stops everything, cleanly."""

import os
import re
import signal
import stat
import time
from pathlib import Path

import pytest
import requests

from imalink.supervise import BACKOFF_FIRST, BACKOFF_MAX, how_it_ended, next_backoff
from tests.imalink.test_priority import descendants_of, parent_of

pytestmark = [pytest.mark.redis, pytest.mark.worker, pytest.mark.live_server_http]


@pytest.mark.database_independent
def test_the_back_off_doubles_while_a_process_keeps_dying_and_resets_once_it_ran_a_minute():
    waits, wait = [], None
    for _ in range(7):
        wait = next_backoff(wait, ran_for=3)
        waits.append(wait)
    assert waits == [1, 2, 4, 8, 16, 30, 30]
    assert BACKOFF_FIRST == 1 and BACKOFF_MAX == 30
    assert next_backoff(30, ran_for=61) == 1
    assert how_it_ended(-9) == "killed by SIGKILL" and how_it_ended(3) == "exit code 3"


def command_of(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def first_process(server, word: bytes) -> int:
    """The process honcho started for `celery worker` or `celery beat` (its parent is not a celery process)."""
    processes = {pid: command_of(pid) for pid in descendants_of(server.proc.pid)}
    celery = {pid for pid, argv in processes.items() if argv[1:3] == [b"-m", b"celery"]}
    (pid,) = [pid for pid in celery if word in processes[pid] and parent_of(pid) not in celery]
    return pid


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition, what: str, server, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        assert server.proc.poll() is None, f"serve exited ({server.proc.returncode}):\n{server.output()[-4000:]}"
        time.sleep(0.2)
    raise AssertionError(f"{what} never happened:\n{server.output()[-4000:]}")


def restart_lines(server, name: str) -> list[str]:
    return [line for line in server.output().splitlines() if re.search(rf"\| {name} \(pid \d+\) died after", line)]


def kill_and_watch_the_web(server, name: str, word: bytes, back: str) -> tuple[int, int, int]:
    """kill -9 one process, poll the web until the process is back;
    (old pid, new pid, web answers while it was away)."""
    before = server.output().count(back)
    old = first_process(server, word)
    os.kill(old, signal.SIGKILL)
    answers = 0
    while server.output().count(back) == before:
        response = requests.get(f"{server.url}/accounts/login/", timeout=10)
        assert response.status_code == 200, response.status_code
        answers += 1
        assert server.proc.poll() is None, server.output()[-4000:]
        assert answers < 600, f"{name} never came back:\n{server.output()[-4000:]}"
        time.sleep(0.1)
    return old, first_process(server, word), answers


def test_a_killed_worker_or_beat_is_restarted_while_the_web_serves_and_ctrl_c_stops_all(imalink_server, api_token):
    from django.conf import settings

    server = imalink_server
    bearer = {"Authorization": f"Bearer {api_token}"}
    # It says which instance and queue it serves, and gunicorn's control socket is the instance's own, under var/.
    assert (
        f"Instance: {settings.IMALINK_INSTANCE} (IMALINK_INSTANCE); Celery queue {settings.CELERY_TASK_DEFAULT_QUEUE}, "
        in server.output()
    )
    assert stat.S_ISSOCK((server.tmp_path / "var" / "gunicorn.ctl").stat().st_mode)

    old, new, answers = kill_and_watch_the_web(server, "worker", b"worker", "ready.")
    assert new != old and answers >= 2
    (line,) = restart_lines(server, "worker")
    assert re.search(
        rf"worker \(pid {old}\) died after \d+ s \(killed by SIGKILL\); restarting it in 1 s, at \d\d:\d\d:\d\d$", line
    ), line
    assert not restart_lines(server, "web") and not restart_lines(server, "beat")

    # A job submitted now is run, to success, by the new worker.
    response = requests.post(f"{server.url}/api/v1/health/check?wait=0", headers=bearer, timeout=30)
    assert response.status_code == 202, response.text
    job_id = response.json()["data"]["job_id"]
    job = {}

    def finished():
        job.update(requests.get(f"{server.url}/api/v1/jobs/{job_id}", headers=bearer, timeout=10).json()["data"])
        return job["status"] in ("succeeded", "failed", "cancelled")

    wait_until(finished, f"job {job_id} finishing", server)
    assert job["status"] == "succeeded", job
    assert int(job["worker"].rsplit(":", 1)[1]) in [new, *descendants_of(new)], (job["worker"], new)

    old_beat, new_beat, answers = kill_and_watch_the_web(server, "beat", b"beat", "beat: Starting")
    assert new_beat != old_beat and answers >= 2
    (line,) = restart_lines(server, "beat")
    assert re.search(rf"beat \(pid {old_beat}\) died after \d+ s \(killed by SIGKILL\); restarting it in 1 s", line), (
        line
    )
    assert len(restart_lines(server, "worker")) == 1 and not restart_lines(server, "web")

    # Ctrl-C (SIGINT to the foreground process group) stops all three, and serve exits 0.
    everything = descendants_of(server.proc.pid)
    assert len(everything) >= 6
    os.killpg(server.proc.pid, signal.SIGINT)
    assert server.proc.wait(60) == 0, server.output()[-4000:]
    left = [pid for pid in everything if alive(pid)]
    assert left == [], left
    assert "SIGINT received" in server.output()
