"""Shared fixtures: real files, the real database, and on demand a real Redis, Celery worker and web server.

Under CI=true a test that needs Redis or PostgreSQL fails when it is unreachable; elsewhere it is skipped.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("IMALINK_CORPUS", REPO.parent / "shared" / "corpus"))
# What a card holds beside still images: videos, XMP sidecars, a motion photo (its own MANIFEST.tsv).
CORPUS_CARD = Path(os.environ.get("IMALINK_CORPUS_CARD", REPO.parent / "shared" / "corpus-card"))
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, what: str) -> None:
    """Skip when a real service is missing on a developer's machine; fail under CI, where it must be there."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but is unreachable.")
    pytest.skip(f"{what} is unreachable.")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """Keep the SQLite test database in a file, so worker and server subprocesses can share it."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "imalink-test.sqlite3")
    else:
        # A name of this run's own, so two runs on one server (a developer's and CI's) never drop each other's.
        db.setdefault("TEST", {})["NAME"] = f"test_{db['NAME']}_{os.getpid()}"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's, and before it drops a PostgreSQL test database, end every other session still on it.

    A subprocess that outlived its test (a worker's pool process, a gunicorn thread) would otherwise keep the
    database from being dropped, and leave it behind on the server. The ones found are named in the output.
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name, backend_start, left(query, 120), "
            "pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        for row in cursor.fetchall():
            print(f"\nended a session still on the test database at teardown: {row[:4]}", file=sys.stderr)


@pytest.fixture(scope="session", autouse=True)
def _database_reachable(django_db_blocker):
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        return
    import psycopg

    try:
        psycopg.connect(
            host=db["HOST"] or "localhost",
            port=db["PORT"] or 5432,
            user=db["USER"],
            dbname=db["NAME"],
            connect_timeout=3,
        ).close()
        reachable = True
    except psycopg.Error:
        reachable = False
    require(reachable, f"PostgreSQL at {db['HOST']}:{db['PORT']}")


@pytest.fixture
def corpus() -> Path:
    require(CORPUS.is_dir(), f"the shared corpus at {CORPUS}")
    return CORPUS


@pytest.fixture
def corpus_card() -> Path:
    require(CORPUS_CARD.is_dir(), f"the shared card corpus at {CORPUS_CARD}")
    return CORPUS_CARD


# A synchronous route waits up to IMALINK_SYNC_WAIT (30 s by default) for its job, then answers 202. Under
# `make test`'s parallel passes a slow job may take longer than that; a test that means to wait for the
# synchronous answer must not get a 202 because the machine is busy. Tests that want 202 say ?wait=0, or set
# the setting themselves.
TEST_SYNC_WAIT_S = 180


@pytest.fixture(autouse=True)
def _synchronous_answers_wait_long(settings):
    settings.IMALINK_SYNC_WAIT = TEST_SYNC_WAIT_S


@pytest.fixture
def allowed_root(tmp_path, settings) -> Path:
    """A folder inside IMALINK_ALLOWED_ROOTS for this test (and nothing else is allowed)."""
    root = tmp_path / "allowed"
    root.mkdir()
    settings.IMALINK_ALLOWED_ROOTS = [root]
    return root


@pytest.fixture
def write_protectable_drive(allowed_root):
    """A folder inside the allowed root, and a function that makes it refuse writes afterwards.

    As root, chmod stops nothing, so the folder is a tmpfs that gets remounted read-only; otherwise chmod does.
    """
    drive = allowed_root / "drive"
    drive.mkdir()
    protected = []
    if os.geteuid() == 0:
        ok = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(drive)], capture_output=True
            ).returncode
            == 0
        )
        require(ok, "a read-only mount")

    def protect():
        if os.geteuid() == 0:
            ok = subprocess.run(["mount", "-o", "remount,ro", str(drive)], capture_output=True).returncode == 0
            require(ok, "a read-only mount")
            return
        for folder, dirs, _files in os.walk(drive):
            protected.append(folder)
            os.chmod(folder, 0o555)

    yield drive, protect
    for folder in protected:
        os.chmod(folder, 0o755)
    if os.geteuid() == 0:
        subprocess.run(["umount", str(drive)], check=True)


@pytest.fixture
def admin_user(django_user_model):
    """The `admin` superuser (the one `make run` creates; a live server in this test may have made it already)."""
    user = django_user_model.objects.filter(username="admin").first()
    if user is None:
        return django_user_model.objects.create_superuser("admin", "", "admin-password-for-tests")
    return user


@pytest.fixture
def api_token(admin_user) -> str:
    from imalink.models import ApiToken

    return ApiToken.issue(user=admin_user, name="tests")[1]


class ApiClient:
    """Django's test client with a bearer token, JSON bodies, and the envelope unpacked on request."""

    def __init__(self, client, token):
        self.client, self.headers = client, {"Authorization": f"Bearer {token}"}

    def _send(self, method, path, body=None, raw=None, **kwargs):
        import json

        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        extra = {"content_type": "application/json"} if data is not None else {}
        if data is None and method in ("post", "put"):
            data, extra = "", {"content_type": "application/json"}  # no body at all, as curl -X POST sends
        return getattr(self.client, method)(path, data=data, headers=self.headers, **extra, **kwargs)

    def get(self, path, **kw):
        return self._send("get", path, **kw)

    def post(self, path, body=None, **kw):
        return self._send("post", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self._send("put", path, body, **kw)

    def delete(self, path, **kw):
        return self._send("delete", path, **kw)


@pytest.fixture
def api(client, api_token) -> ApiClient:
    return ApiClient(client, api_token)


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The response is the one error shape, with this status (and code)."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


@pytest.fixture
def make_storage(api, allowed_root):
    """Create a storage through the API and return its JSON."""

    def _make(name="Test storage", base=None):
        base = base or allowed_root
        response = api.post("/api/v1/file-storage/create", {"base_path": str(base), "display_name": name})
        assert response.status_code == 200, response.content
        return response.json()["data"]

    return _make


# --- real services --------------------------------------------------------------------------------

THREE_PHOTOS = ("jpeg/camera/DSCN0010.jpg", "jpeg/camera/jolla.jpg", "png/hopper.png")


def imported_storage(allowed_root: Path, corpus: Path, names=THREE_PHOTOS):
    """A storage under allowed_root/drive with one real import of these corpus files and its indexes written."""
    from imports.models import ImportSession
    from indexing.rewrite import import_folder, storage_create
    from indexing.writer import write_storage_indexes

    base = allowed_root / "drive"
    base.mkdir()
    storage = storage_create(base_path=str(base), display_name="Drive")
    card = allowed_root / "card"
    card.mkdir()
    for name in names:
        shutil.copy(corpus / name, card)
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    import_folder(session_id=session.pk, source_path=str(card))
    write_storage_indexes(storage)
    storage.refresh_from_db()
    return storage, session


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_available() -> str:
    import redis

    try:
        ok = redis.Redis.from_url(redis_url(), socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError):
        ok = False
    require(ok, f"Redis at {redis_url()}")
    return redis_url()


def subprocess_database_url() -> str:
    """A DATABASE_URL that points a subprocess at this test run's database."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{s['NAME']}"


def subprocess_env(tmp_path: Path, **extra) -> dict:
    from django.conf import settings

    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)}
    env.update(
        DATABASE_URL=subprocess_database_url(),
        IMALINK_VAR_DIR=str(tmp_path / "var"),
        IMALINK_ALLOWED_ROOTS=os.pathsep.join(str(p) for p in settings.IMALINK_ALLOWED_ROOTS),
        # This test process's instance and queue: the subprocess's own database path would name another instance.
        IMALINK_INSTANCE=settings.IMALINK_INSTANCE,
        IMALINK_CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        IMALINK_SYNC_WAIT=str(settings.IMALINK_SYNC_WAIT),
        PYTHONUNBUFFERED="1",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_line(log: Path, needle: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and needle in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(
        f"{needle!r} never appeared (exit {proc.poll()}):\n"
        f"{log.read_text(errors='replace')[-4000:] if log.exists() else ''}"
    )


def stop_process(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 20) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode


@pytest.fixture
def test_queue(settings) -> str:
    """A queue of this test's own, so no other worker on the machine takes its tasks."""
    settings.CELERY_TASK_DEFAULT_QUEUE = f"imalink-test-{uuid.uuid4().hex[:12]}"
    return settings.CELERY_TASK_DEFAULT_QUEUE


@pytest.fixture
def celery_worker(transactional_db, redis_available, test_queue, allowed_root, tmp_path):
    """A real `celery worker` process on the real Redis, sharing this test's database.

    Yields a handle with .start() / .kill() so tests can crash and restart it.
    """

    class Worker:
        def __init__(self):
            self.proc, self.runs = None, 0

        def start(self, concurrency: int = 1):
            self.runs += 1
            self.log = tmp_path / f"worker-{self.runs}.log"
            env = subprocess_env(tmp_path, CELERY_BROKER_URL=redis_available)
            self.proc = subprocess.Popen(
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
                    str(concurrency),
                    "--without-gossip",
                    "--without-mingle",
                    "--hostname",
                    f"test-{uuid.uuid4().hex[:8]}@%h",
                ],
                cwd=REPO,
                env=env,
                stdout=self.log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            wait_for_line(self.log, "ready.", self.proc)
            return self

        def kill(self):
            return stop_process(self.proc, signal.SIGKILL)

        def stop(self):
            return stop_process(self.proc)

    worker = Worker().start()
    yield worker
    if worker.proc.poll() is None:
        worker.stop()


@pytest.fixture
def have_curl():
    require(shutil.which("curl") is not None, "curl")


def http_status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


class Server:
    """`manage.py serve` (what `make run` starts: web, worker and beat) as a subprocess on a free port."""

    def __init__(self, tmp_path: Path, env: dict):
        self.port, self.tmp_path, self.env, self.runs = free_port(), tmp_path, env, 0
        self.url = f"http://localhost:{self.port}"

    def start(self):
        self.runs += 1
        self.log = self.tmp_path / f"serve-{self.runs}.log"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "serve",
                "--port",
                str(self.port),
                "--web-workers",
                "1",
                "--concurrency",
                "1",
            ],
            cwd=REPO,
            env=self.env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_line(self.log, "Listening at", self.proc)
        wait_for_line(self.log, "ready.", self.proc)  # the Celery worker
        wait_for_line(self.log, "beat: Starting", self.proc)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def imalink_server(transactional_db, redis_available, test_queue, allowed_root, tmp_path):
    env = subprocess_env(tmp_path, REDIS_URL=redis_available)
    env.pop("CELERY_BROKER_URL", None)
    srv = Server(tmp_path, env).start()
    yield srv
    stop_process(srv.proc)


# --- a real browser ----------------------------------------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    require(path is not None, "Chromium (Debian's chromium package, which `make test` installs)")
    return path


@pytest.fixture
def browser_page(chromium_path, request, monkeypatch):
    """A Playwright page in headless Chromium; page.shot(name) saves a screenshot under test-output/<test>/."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    out = REPO / "test-output" / request.node.name.replace("/", "_")
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.shot = lambda name: page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        page.output_dir = out
        try:
            yield page
        finally:
            context.close()
            browser.close()
