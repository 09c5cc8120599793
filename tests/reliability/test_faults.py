"""Fault injection: SIGKILL at random points, a storage that vanishes or fills up, a Redis restart, a database
that is gone, and concurrent jobs on one storage. After each fault a re-run must leave everything exact.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from imports.checksums import file_checksum
from imports.models import Author, ImageFile, ImportSession, Photo
from indexing.drill import snapshot
from indexing.writer import index_status
from jobs.models import Job
from jobs.services import jobs_sweep_stale
from storages.models import FileStorage
from tests.conftest import REPO, free_port, require, stop_process, subprocess_env, wait_for_line
from tests.imports.test_import_api import make_camera_copies, make_photos

KILLS = 20
KILL_LOOP_BUDGET_S = 25.0
SEED = 20261124

# One process loads Django and the commands once, then forks a child per command: each child is a real
# manage.py process (own pid, own session) that can be SIGKILLed, without 2-3 s of start-up per kill.
FORK_SERVER = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imalink.settings")
import django
django.setup()
from django.core.management import execute_from_command_line, get_commands, load_command_class
for name in ("import_photos", "scan_storage", "index_storage", "recover_from_indexes"):
    load_command_class(get_commands()[name], name)
import imports.pipeline, indexing.scanner, indexing.writer, indexing.recovery, imports.media, indexing.drill
print("warm", flush=True)
for line in sys.stdin:
    argv, log = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        code = 0
        try:
            execute_from_command_line(["manage.py", *argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print("pid", pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print("exit", os.waitstatus_to_exitcode(status), flush=True)
"""


class Child:
    def __init__(self, server, pid, log):
        self.server, self.pid, self.log, self.returncode = server, pid, log, None

    def poll(self):
        return self.returncode

    def kill(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout=None):
        if self.returncode is None:
            line = self.server.stdout.readline().decode()
            assert line.startswith("exit "), line
            self.returncode = int(line.split()[1])
        return self.returncode


class WarmCommands:
    def __init__(self, tmp_path: Path):
        self.tmp_path, self.n = tmp_path, 0
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FORK_SERVER],
            cwd=REPO,
            env=subprocess_env(tmp_path),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        line = self.proc.stdout.readline().decode()
        assert line.strip() == "warm", line

    def go(self, argv: list[str]) -> Child:
        self.n += 1
        log = self.tmp_path / f"cmd-{self.n}.log"
        self.proc.stdin.write((json.dumps([argv, str(log)]) + "\n").encode())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().decode()
        assert line.startswith("pid "), line
        return Child(self.proc, int(line.split()[1]), log)

    def close(self):
        stop_process(self.proc, signal.SIGKILL)


@pytest.fixture
def warm(tmp_path, transactional_db, allowed_root):
    commands = WarmCommands(tmp_path)
    yield commands
    commands.close()


def typical_duration(warm, argv, runs: int = 1) -> float:
    """How long the command takes; with runs > 1 (for a command that does the same work each time), the shortest:
    a first run slowed by loading what the warm process had not yet imported would put most kills after its end."""
    durations = []
    for _ in range(runs):
        started = time.monotonic()
        proc = warm.go(argv)
        assert proc.wait() == 0, proc.log.read_text()
        durations.append(time.monotonic() - started)
    return min(durations)


def kill_loop(warm, *, argv_for, before=None, after_kill=None, rerun, check, duration: float, what: str):
    """KILLS times: prepare, start the command, SIGKILL it after a random delay, check, re-run to completion, check."""
    rng = random.Random(SEED)
    started, killed_mid_run = time.monotonic(), 0
    for i in range(KILLS):
        if before:
            before(i)
        delay = rng.uniform(0.02, duration * 0.95)
        proc = warm.go(argv_for(i))
        time.sleep(delay)
        proc.kill()
        if proc.wait() != 0:
            killed_mid_run += 1
        assert_no_job_left_running(what)
        if after_kill:
            after_kill(i)
        rerun(i)
        check(i)
    elapsed = time.monotonic() - started
    assert killed_mid_run >= KILLS // 2, f"{what}: only {killed_mid_run} of {KILLS} runs were still going when killed"
    if elapsed > KILL_LOOP_BUDGET_S:
        print(f"{what}: the kill loop took {elapsed:.1f}s (budget {KILL_LOOP_BUDGET_S}s; a loaded machine)")


def assert_no_job_left_running(what: str) -> None:
    """The killed process's job is failed with a reason once anything looks at it (here: the sweep a worker runs)."""
    jobs_sweep_stale()
    left = list(Job.objects.filter(status=Job.Status.RUNNING).values_list("id", "kind", "worker"))
    assert not left, f"{what}: a killed job still says it is running: {left}"
    for errors in Job.objects.filter(status=Job.Status.FAILED).values_list("errors", flat=True):
        assert errors and errors[-1].get("error"), "a failed job without its reason"


def storage_files(storage) -> set[str]:
    root = storage.full_path
    return {p.relative_to(root).as_posix() for p in (root / "photos").rglob("*") if p.is_file()}


def assert_indexes_parse(storage):
    root = storage.full_path
    for path in [root / "index.json", *sorted((root / "imports").glob("*.json"))]:
        if path.exists():
            json.loads(path.read_bytes())  # raises on a torn file


def assert_exact(storage, source_checksums: set[str]):
    """Every source file once, by checksum, in the rows and on disk; no ` (2)` copy; nothing left in tmp/."""
    root = storage.full_path
    rows = list(ImageFile.objects.filter(file_storage=storage))
    assert len(rows) == len({r.checksum for r in rows}), "a file has two rows"
    assert {r.checksum for r in rows} == source_checksums
    assert {r.status for r in rows} <= {"present"}
    on_disk = storage_files(storage)
    assert on_disk == {r.relative_path for r in rows}, "a file without a row, or a row without a file"
    assert not any(" (2)" in p for p in on_disk), "a re-run copied a file twice"
    for r in rows:
        assert file_checksum(root / r.relative_path) == r.checksum
    assert os.listdir(root / ".imalink" / "tmp") == []
    assert_indexes_parse(storage)


def quiet(*args):
    call_command(*args, stdout=StringIO(), stderr=StringIO())


@pytest.fixture
def storage(make_storage, transactional_db):
    return FileStorage.objects.get(storage_uuid=make_storage()["uuid"])


# --- 1. random kill points ---------------------------------------------------------------------------------


@pytest.mark.one_database
def test_an_import_killed_at_random_points_is_finished_exactly_by_a_rerun(warm, storage, allowed_root):
    session = ImportSession.objects.create(title="Cards", file_storage=storage)
    sources: set[str] = set()

    def card(i):
        folder = make_photos(allowed_root / "cards" / f"c{i}", 20, size=(96, 72), seed=1000 + i * 100)
        sources.update(file_checksum(p) for p in folder.iterdir())
        return folder

    def argv(i):
        return [
            "import_photos",
            str(session.pk),
            str(allowed_root / "cards" / f"c{i}"),
            "--target-subdirectory",
            "x",
        ]

    card(-1)
    duration = typical_duration(warm, argv(-1))
    assert_exact(storage, sources)

    kill_loop(
        warm,
        argv_for=argv,
        before=card,
        duration=duration,
        what="import",
        after_kill=lambda i: assert_indexes_parse(storage),
        rerun=lambda i: quiet(*argv(i)),
        check=lambda i: assert_exact(storage, sources),
    )


@pytest.mark.one_database
def test_a_scan_killed_at_random_points_is_finished_exactly_by_a_rerun(warm, storage, allowed_root):
    session = ImportSession.objects.create(title="Cards", file_storage=storage)
    quiet(
        "import_photos",
        str(session.pk),
        str(make_photos(allowed_root / "card", 60, size=(96, 72))),
        "--target-subdirectory",
        "x",
    )
    root, rng = storage.full_path, random.Random(SEED + 1)

    def argv(i):
        return ["scan_storage", str(storage.storage_uuid)]

    duration = typical_duration(warm, argv(-1), runs=3)  # a scan that finds no change does the same work each time

    def move_some(i):
        for rel in rng.sample(sorted(storage_files(storage)), 6):
            dest = root / "photos" / f"moved{i}" / f"{i}-{Path(rel).name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(root / rel, dest)

    def check(i):
        rows = list(ImageFile.objects.filter(file_storage=storage).values_list("relative_path", "status"))
        paths = [p for p, _ in rows]
        assert len(paths) == len(set(paths)) == 60, "a duplicate or lost row"
        assert {s for _, s in rows} == {"present"}
        assert set(paths) == storage_files(storage)
        assert_indexes_parse(storage)

    kill_loop(
        warm,
        argv_for=argv,
        before=move_some,
        duration=duration,
        what="scan",
        after_kill=lambda i: assert_indexes_parse(storage),
        rerun=lambda i: quiet(*argv(i)),
        check=check,
    )


@pytest.mark.one_database
def test_index_writing_killed_at_random_points_never_tears_an_index(warm, storage, allowed_root):
    for n in range(6):
        session = ImportSession.objects.create(title=f"Card {n}", file_storage=storage)
        quiet(
            "import_photos",
            str(session.pk),
            str(make_photos(allowed_root / f"card{n}", 10, size=(96, 72), seed=n * 10)),
        )

    def argv(i):
        return ["index_storage", str(storage.storage_uuid)]

    photos = Photo.objects.filter(files__file_storage=storage)

    def make_stale(i):
        photos.update(title=f"title {i}", description=f"described in round {i} " * 20)

    make_stale(-1)
    duration = typical_duration(warm, argv(-1))

    def check(i):
        assert_indexes_parse(storage)
        assert index_status(storage)["healthy"]

    kill_loop(
        warm,
        argv_for=argv,
        before=make_stale,
        duration=duration,
        what="index_storage",
        after_kill=lambda i: assert_indexes_parse(storage),
        rerun=lambda i: quiet(*argv(i)),
        check=check,
    )


def flush_storage_rows():
    ImageFile.objects.all().delete()
    Photo.objects.all().delete()
    ImportSession.objects.all().delete()
    Job.objects.all().delete()
    FileStorage.objects.all().delete()
    Author.objects.all().delete()


@pytest.mark.one_database
def test_recovery_killed_at_random_points_is_finished_exactly_by_a_rerun(warm, storage, allowed_root):
    author = Author.objects.create(name="Ada", email="ada@example.org")
    for n in range(2):
        session = ImportSession.objects.create(title=f"Card {n}", file_storage=storage, default_author=author)
        quiet(
            "import_photos",
            str(session.pk),
            str(make_photos(allowed_root / f"card{n}", 12, size=(96, 72), seed=n * 20)),
            "--target-subdirectory",
            f"s{n}",
        )
    Photo.objects.filter(files__file_storage=storage).update(title="kept", rating=4, tags=["a", "b"])
    quiet("index_storage", str(storage.storage_uuid))
    before = snapshot()
    assert len(before["files"]) == 24

    def argv(i):
        return ["recover_from_indexes", str(allowed_root)]

    flush_storage_rows()
    duration = typical_duration(warm, argv(-1))
    assert snapshot() == before

    kill_loop(
        warm,
        argv_for=argv,
        before=lambda i: flush_storage_rows(),
        duration=duration,
        what="recovery",
        rerun=lambda i: quiet(*argv(i)),
        check=lambda i: (snapshot() == before) or pytest.fail(f"round {i}: recovered rows differ"),
    )


# --- 2. the storage disappears -----------------------------------------------------------------------------


def test_an_import_whose_drive_vanishes_stops_with_the_reason_and_marks_nothing_missing(
    tmp_path, storage, allowed_root, corpus
):
    count = 150
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    card = make_camera_copies(allowed_root / "card", count, corpus)
    log = tmp_path / "import.log"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "import_photos", str(session.pk), str(card), "--target-subdirectory", "x"],
        cwd=REPO,
        env=subprocess_env(tmp_path),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while (
            ImageFile.objects.filter(file_storage=storage).count() < 5
            and time.monotonic() < deadline
            and proc.poll() is None
        ):
            time.sleep(0.05)
        root = storage.full_path
        os.rename(root, allowed_root / "unplugged")
        code = proc.wait(60)
    finally:
        stop_process(proc, signal.SIGKILL)
    output = log.read_text(errors="replace").replace(str(tmp_path), "<tmp>")
    assert ImageFile.objects.filter(file_storage=storage).count() < count, "the import finished before the drive went"
    # An unplugged drive leaves an empty mount point: nothing may be written there, not even a folder.
    assert not root.exists(), (
        "the vanished storage folder was re-created: "
        f"{sorted(p.relative_to(root).as_posix() for p in root.rglob('*'))[:10]}"
    )
    assert code != 0, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert "storage" in last.lower(), f"the reason does not name the storage: {last!r}"
    assert set(ImageFile.objects.filter(file_storage=storage).values_list("status", flat=True)) == {"present"}
    assert Job.objects.get(kind="import").status == "failed"

    os.rename(allowed_root / "unplugged", root)
    quiet("import_photos", str(session.pk), str(card), "--target-subdirectory", "x")
    assert_exact(storage, {file_checksum(p) for p in card.iterdir()})


# --- 3. the disk fills up ----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(allowed_root):
    mount = allowed_root / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=10m", "tmpfs", str(mount)], capture_output=True)
    require(done.returncode == 0, f"a tmpfs mount (mount said {done.stderr.decode().strip()!r})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


# Not strict: the orphan depends on thread timing and shows in about two runs of three here.


def test_an_import_onto_a_full_disk_stops_with_the_reason_and_leaves_no_unrecorded_file(
    small_disk, make_storage, allowed_root, corpus, settings
):
    settings.IMALINK_IMPORT_THREADS = 4  # eight units in flight: some are still queued when the abort comes
    storage = FileStorage.objects.get(storage_uuid=make_storage(base=small_disk)["uuid"])
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    # Four 2.8 MB camera files, of which the fourth cannot fit in 10 MB, then small photos that still would.
    card = make_camera_copies(allowed_root / "card", 4, corpus)
    for i, path in enumerate(sorted(card.iterdir())):
        path.rename(card / f"A_{i:04d}.JPG")
    for path in make_photos(allowed_root / "small-card", 16, size=(96, 72)).iterdir():
        shutil.move(path, card / f"B_{path.name}")
    argv = ["import_photos", str(session.pk), str(card), "--target-subdirectory", "x"]
    with pytest.raises(Exception) as failure:
        quiet(*argv)
    message = str(failure.value)
    assert "cannot take more files" in message and "No space left" in message, message
    job = Job.objects.get(kind="import")
    assert job.status == "failed" and job.errors[-1]["code"] == "import_aborted", job.errors

    root = storage.full_path
    rows = {r.relative_path: r.checksum for r in ImageFile.objects.filter(file_storage=storage)}
    assert 0 < len(rows) < 20
    on_disk = storage_files(storage)
    assert on_disk == set(rows), f"files in photos/ without a row: {sorted(on_disk - set(rows))}"
    for rel, checksum in rows.items():
        assert file_checksum(root / rel) == checksum

    subprocess.run(["mount", "-o", "remount,size=120m", str(small_disk)], check=True)
    quiet(*argv)
    assert_exact(storage, {file_checksum(p) for p in card.iterdir()})


# --- 4. Redis restarts -------------------------------------------------------------------------------------


class PrivateRedis:
    def __init__(self, tmp_path):
        self.port, self.tmp_path, self.runs = free_port(), tmp_path, 0
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.runs += 1
        self.log = self.tmp_path / f"redis-{self.runs}.log"
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.tmp_path),
            ],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_line(self.log, "Ready to accept connections", self.proc, timeout=20)
        return self


@pytest.fixture
def private_redis(tmp_path):
    require(shutil.which("redis-server") is not None, "redis-server")
    redis = PrivateRedis(tmp_path).start()
    yield redis
    stop_process(redis.proc, signal.SIGKILL)


def test_a_redis_restart_mid_import_leaves_the_job_truthful_and_a_rerun_exact(
    tmp_path, private_redis, test_queue, storage, allowed_root, corpus
):
    import uuid as uuid_lib

    from imalink.celery import app
    from jobs.services import job_start
    from jobs.tasks import run_job

    count = 80
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    card = make_camera_copies(allowed_root / "card", count, corpus)
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
            "--hostname",
            f"fault-{uuid_lib.uuid4().hex[:8]}@%h",
        ],
        cwd=REPO,
        env=subprocess_env(tmp_path, CELERY_BROKER_URL=private_redis.url),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_line(log, "ready.", worker)
        job = job_start(
            kind="import",
            storage=storage,
            session=session,
            params={"source_path": str(card), "target_subdirectory": "x"},
            enqueue=False,
        )
        with app.connection_for_write(private_redis.url) as connection:
            run_job.apply_async((job.pk,), queue=test_queue, connection=connection)
        deadline = time.monotonic() + 60
        while (Job.objects.get(pk=job.pk).progress.get("done") or 0) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Job.objects.get(pk=job.pk).status == "running", "the import never started"
        stop_process(private_redis.proc, signal.SIGKILL)
        time.sleep(1.0)
        private_redis.start()

        deadline = time.monotonic() + 60
        while Job.objects.get(pk=job.pk).status == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop_process(worker, signal.SIGKILL)  # a worker stuck on a lost broker connection has nothing left to finish
    # Whatever the worker did, the row now says it: finished, or failed with the reason its process is gone.
    jobs_sweep_stale()
    job.refresh_from_db()
    rows = ImageFile.objects.filter(file_storage=storage)
    if job.status == "succeeded":
        assert rows.count() == job.result["imported"] == count, "a succeeded job with files missing"
        assert storage_files(storage) == set(rows.values_list("relative_path", flat=True))
    else:
        assert job.status == "failed", job.status
        assert job.errors[-1]["error"], "failed without a reason"

    quiet("import_photos", str(session.pk), str(card), "--target-subdirectory", "x")
    assert_exact(storage, {file_checksum(p) for p in card.iterdir()})


# --- 5. the database is unreachable ------------------------------------------------------------------------


def test_every_api_request_answers_503_when_the_database_is_unreachable(tmp_path, allowed_root, transactional_db):
    port = free_port()
    log = tmp_path / "web.log"
    env = subprocess_env(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:1/nowhere")
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "imalink.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_line(log, "Listening at", web, timeout=30)
        for method, path, body in [
            ("GET", "/api/v1/jobs/", None),
            ("GET", "/api/v1/file-storage/", None),
            ("POST", "/api/v1/file-storage/create", {"base_path": str(allowed_root), "display_name": "x"}),
            ("GET", "/api/v1/photos/", None),
        ]:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}",
                method=method,
                headers={
                    "Authorization": "Bearer not-checked-because-the-database-is-gone",
                    "Content-Type": "application/json",
                },
                data=json.dumps(body).encode() if body else None,
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status, content = response.status, response.read()
            except urllib.error.HTTPError as exc:
                status, content = exc.code, exc.read()
            text = content.decode(errors="replace")
            assert status == 503, (method, path, status, text[:2000])
            assert "Traceback" not in text
            answer = json.loads(text)
            assert answer["success"] is False and answer["error"]["code"] == "service_unavailable", answer
            assert answer["error"]["message"]
    finally:
        stop_process(web)


# --- 6. concurrent mutating jobs -------------------------------------------------------------------------


def test_concurrent_jobs_on_one_storage_never_interleave(celery_worker, api, storage, allowed_root, corpus):
    celery_worker.stop()
    celery_worker.start(concurrency=3)
    first = ImportSession.objects.create(title="Earlier", file_storage=storage)
    quiet("import_photos", str(first.pk), str(make_photos(allowed_root / "earlier", 10, size=(96, 72), seed=500)))
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    card = make_camera_copies(allowed_root / "card", 30, corpus)
    uuid = storage.storage_uuid

    started = [
        api.post(
            f"/api/v1/import-sessions/{session.pk}/import?wait=0",
            {"source_path": str(card), "target_subdirectory": "x"},
        ),
        api.post(f"/api/v1/storage-index/scan/{uuid}?wait=0"),
        api.post(f"/api/v1/storage-index/generate/{uuid}?wait=0"),
    ]
    assert [r.status_code for r in started] == [202, 202, 202], [r.content for r in started]
    ids = [r.json()["data"]["job_id"] for r in started]
    deadline = time.monotonic() + 90
    while not all(j.is_finished for j in Job.objects.filter(pk__in=ids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    jobs = {j.kind: j for j in Job.objects.filter(pk__in=ids)}
    assert {k: j.status for k, j in jobs.items()} == {
        "import": "succeeded",
        "scan": "succeeded",
        "index_storage": "succeeded",
    }, {k: j.errors for k, j in jobs.items()}
    scan = jobs["scan"].result
    # A scan that ran while the import was placing files would have seen files without rows.
    assert (scan["new_files"], scan["missing_files"], scan["modified_files"], scan["moved_files"]) == ([], [], [], [])
    assert jobs["import"].result["imported"] == 30

    rows = list(ImageFile.objects.filter(file_storage=storage))
    assert len(rows) == 40 == len({r.checksum for r in rows})
    assert storage_files(storage) == {r.relative_path for r in rows}
    assert os.listdir(storage.full_path / ".imalink" / "tmp") == []
    order = sorted(jobs.values(), key=lambda j: j.finished_at)
    status = index_status(storage)
    assert status["healthy"], (
        [(j.kind, j.started_at.time(), j.finished_at.time()) for j in order],
        {"master": status["master_index"]["status"], **{s["index_file"]: s["status"] for s in status["sessions"]}},
    )
