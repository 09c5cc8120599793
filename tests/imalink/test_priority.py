"""The Celery worker gives way to the web server: it and its pool run at IMALINK_WORKER_NICE, in a lowered
scheduling group when it leads its own session (as under honcho, `make run`), and the web server does not."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

AUTOGROUP = Path("/proc/self/autogroup")


def nice_of(pid: int) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after its closing parenthesis.
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def autogroup_nice_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if parent_of(int(entry.name)) == pid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def descendants_of(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        children = children_of(todo.pop())
        found += children
        todo += children
    return found


def run_alone(code: str, *, new_session: bool) -> str:
    """Run code in a fresh Python of its own, so that this test process keeps its priority."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=new_session,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


CODE = "from imalink.priority import run_in_background; import os; print(run_in_background({nice})); print(os.nice(0))"


@pytest.mark.skipif(not AUTOGROUP.exists(), reason="this kernel has no autogroup")
def test_a_session_leader_lowers_itself_and_its_session_group():
    nice = max(7, os.nice(0))
    assert run_alone(CODE.format(nice=7), new_session=True).splitlines() == [
        f"{{'nice': {nice}, 'autogroup': 7}}",
        str(nice),
    ]


@pytest.mark.skipif(not AUTOGROUP.exists(), reason="this kernel has no autogroup")
def test_a_session_group_already_lower_is_not_raised():
    code = "from pathlib import Path; Path('/proc/self/autogroup').write_text('15'); " + CODE.format(nice=7)
    nice = max(7, os.nice(0))
    assert run_alone(code, new_session=True).splitlines() == [f"{{'nice': {nice}, 'autogroup': 15}}", str(nice)]


def test_a_process_that_shares_its_session_lowers_only_itself_and_zero_changes_nothing():
    nice = max(5, os.nice(0))
    assert run_alone(CODE.format(nice=5), new_session=False).splitlines() == [
        f"{{'nice': {nice}, 'autogroup': None}}",
        str(nice),
    ]
    assert run_alone(CODE.format(nice=0), new_session=True).splitlines() == [
        f"{{'nice': {os.nice(0)}, 'autogroup': None}}",
        str(os.nice(0)),
    ]


def test_the_worker_and_its_pool_run_below_the_web_server(imalink_server):
    from django.conf import settings

    # honcho runs each command from a process of its own, so they are grandchildren of `manage.py serve`.
    processes = {
        pid: Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in descendants_of(imalink_server.proc.pid)
    }
    starts = {pid for pid, argv in processes.items() if argv[1:3] in ([b"-m", b"celery"], [b"-m", b"gunicorn"])}
    # The first process of each command: its parent runs something else (exec leaves no shell between).
    (worker,) = [pid for pid in starts if b"worker" in processes[pid] and parent_of(pid) not in starts]
    (web,) = [pid for pid in starts if b"gunicorn" in processes[pid] and parent_of(pid) not in starts]
    pool = children_of(worker)
    assert pool, "the worker has no pool processes"
    assert settings.IMALINK_WORKER_NICE == 10
    ours = os.nice(0)  # what the server's processes start with; the worker never raises its priority above it
    for pid in [worker, *pool]:
        assert nice_of(pid) == max(10, ours), pid
        if AUTOGROUP.exists():
            assert autogroup_nice_of(pid) == 10, pid
    for pid in [web, *children_of(web)]:
        assert nice_of(pid) == ours, pid
        if AUTOGROUP.exists():
            assert autogroup_nice_of(pid) == 0, pid
