"""Migration that ImaLink does (issue 17 point 5): the whole storage copied to a new drive, each file verified by
its xxh3, the copy checked against the database, base_path switched; resumable after SIGKILL at random points."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys

import pytest

from copies.migration import migrate_storage
from imports.checksums import file_checksum
from imports.models import ImageFile, ImportSession
from indexing.rewrite import import_folder, storage_create
from indexing.writer import index_status, write_storage_indexes
from jobs import services as jobs
from jobs.models import Job
from storages.layout import QUARANTINE_DIR
from storages.models import FileStorage
from tests.conftest import REPO, assert_error, subprocess_env
from tests.imports.test_import_api import make_camera_copies

CARD = ["raw/pair/canon_eos_6d.JPG", "raw/pair/canon_eos_6d.dng", "jpeg/camera/DSCN0010.jpg", "png/hopper.png"]
NOT_COPIED = (".imalink/lock", ".imalink/migration.json")


def tree(root):
    """Every plain file under root (but the lock, the tmp folder and the journal) with its size, mtime and xxh3."""
    state = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and relative not in NOT_COPIED and not relative.startswith(".imalink/tmp/"):
            st = path.stat()
            state[relative] = (st.st_size, st.st_mtime_ns, file_checksum(path))
    return state


def assert_same_but_the_master_index(before, after):
    """The copy holds every file of the old copy with the same bytes and times; the master index alone was
    rewritten (for its base_path), and the index it replaced kept among the index backups."""
    assert {k: v for k, v in after.items() if k in before and k != "index.json"} == {
        k: v for k, v in before.items() if k != "index.json"
    }
    assert set(before) <= set(after)
    added = set(after) - set(before)
    assert all(k.startswith(".imalink/index-backups/index.") for k in added), added


def make_storage_with_photos(allowed_root, corpus, *, camera_copies=0):
    old = allowed_root / "old-drive"
    old.mkdir()
    storage = storage_create(base_path=str(old), display_name="Main SSD")
    card = allowed_root / "card"
    card.mkdir()
    for name in CARD:
        shutil.copy(corpus / name, card)
    if camera_copies:
        make_camera_copies(card / "burst", camera_copies, corpus)
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    report = import_folder(session_id=session.pk, source_path=str(card), target_subdirectory="2024")
    assert report.failed == 0, report.failures
    write_storage_indexes(storage)  # a second write keeps a backup of each index in .imalink/index-backups
    aside = storage.full_path / QUARANTINE_DIR / "20260101T000000Z" / "photos/old.xmp"
    aside.parent.mkdir(parents=True)
    aside.write_bytes(b"<x:xmpmeta/>")  # something ImaLink set aside once: it moves with the storage
    storage.refresh_from_db()
    return storage


@pytest.fixture
def new_drive(allowed_root):
    folder = allowed_root / "new-drive"
    folder.mkdir()
    return folder


@pytest.mark.django_db
def test_the_whole_storage_is_copied_verified_checked_and_switched_and_the_old_copy_left_alone(
    allowed_root, corpus, new_drive
):
    storage = make_storage_with_photos(allowed_root, corpus)
    old_root = storage.full_path
    before = tree(old_root)
    (old_root / ".imalink/tmp/import-left-over.part").write_bytes(b"partial")  # not copied

    report = migrate_storage(storage=storage, new_base_path=str(new_drive))

    new_root = new_drive / storage.directory_name
    storage.refresh_from_db()
    assert storage.base_path == str(new_drive) and storage.full_path == new_root
    assert report.switched and report.old_copy_left_untouched and report.old_copy == str(old_root)
    assert "left untouched" in report.message and str(old_root) in report.message
    assert tree(old_root) == before  # the old copy: not a byte, not a time changed
    after = tree(new_root)
    # Photos, session indexes, index backups, hotpreviews, quarantine and marker: the same bytes and times. The
    # master index is the one file rewritten, for its base_path.
    assert_same_but_the_master_index(before, after)
    assert any(k.startswith(".imalink/hotpreviews/") for k in after) and ".imalink/storage.json" in after
    assert any(k.startswith(".imalink/index-backups/") for k in after)
    assert any(k.startswith(str(QUARANTINE_DIR)) for k in after)
    assert json.loads((new_root / "index.json").read_text())["storage_info"]["base_path"] == str(new_drive)
    assert not (new_root / ".imalink/migration.json").exists() and os.listdir(new_root / ".imalink/tmp") == []
    rows = ImageFile.objects.filter(file_storage=storage)
    assert report.database_files_checked == rows.count() == 4
    assert report.files_verified == report.files_total == report.files_copied == len(before)
    assert report.bytes_copied == report.bytes_total == sum(size for size, _, _ in before.values())
    assert report.migration["accessibility"]["is_accessible"] and report.migration["master_index_rewritten"]
    assert storage.is_accessible and storage.is_writable
    assert index_status(storage)["healthy"]


@pytest.mark.django_db
def test_progress_is_in_bytes_with_time_left_and_a_rerun_over_a_copy_made_by_hand_copies_nothing(
    allowed_root, corpus, new_drive
):
    storage = make_storage_with_photos(allowed_root, corpus, camera_copies=6)
    shutil.copytree(storage.full_path, new_drive / storage.directory_name)  # the user's own rsync, say
    seen, etas = [], []

    def watch(progress):
        seen.append((progress.get("total"), progress.get("done"), progress.get("phase")))
        if progress.get("phase") == "copy" and 0 < (progress.get("done") or 0) < progress["total"]:
            job = Job.objects.get(pk=migration_job.pk)
            job.progress = dict(progress)
            etas.append(jobs.job_eta_seconds(job))

    migration_job = jobs.job_start(
        kind="migrate", storage=storage, params={"new_base_path": str(new_drive)}, enqueue=False
    )
    finished = jobs.job_run(migration_job.pk, on_progress=watch)

    assert finished.status == "succeeded", finished.errors
    result = finished.result
    assert result["files_copied"] == 0 and result["files_already_there"] == result["files_total"]
    assert result["files_verified"] == result["files_total"] and result["switched"]
    total = result["bytes_total"]
    copy_phase = [done for t, done, phase in seen if phase == "copy"]
    assert all(t == total for t, _, phase in seen if phase == "copy") and copy_phase[-1] == total
    assert copy_phase == sorted(copy_phase)
    assert etas and all(eta is not None and eta >= 0 for eta in etas)


@pytest.mark.django_db
def test_a_copy_that_does_not_match_the_database_is_not_switched(allowed_root, corpus, new_drive):
    storage = make_storage_with_photos(allowed_root, corpus)
    victim = ImageFile.objects.filter(file_storage=storage, file_format="jpeg").first()
    path = storage.full_path / victim.relative_path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # bit rot on the old drive, same size: the copy is faithful to the wrong bytes
    path.write_bytes(bytes(data))

    job = jobs.job_run(
        jobs.job_start(kind="migrate", storage=storage, params={"new_base_path": str(new_drive)}, enqueue=False).pk
    )

    assert job.status == "failed" and job.errors[-1]["code"] == "migration_mismatch"
    assert victim.relative_path in job.errors[-1]["error"]
    storage.refresh_from_db()
    assert storage.base_path != str(new_drive)


@pytest.mark.django_db
def test_a_different_file_in_the_copys_photos_is_set_aside_never_replaced(allowed_root, corpus, new_drive):
    storage = make_storage_with_photos(allowed_root, corpus)
    row = ImageFile.objects.filter(file_storage=storage).first()
    stray = new_drive / storage.directory_name / row.relative_path
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"something else")
    journal = new_drive / storage.directory_name / ".imalink/migration.json"
    journal.parent.mkdir()
    journal.write_text(json.dumps({"storage_uuid": str(storage.storage_uuid)}))  # a copy in progress

    report = migrate_storage(storage=storage, new_base_path=str(new_drive))

    assert report.files_set_aside == 1 and report.switched
    assert file_checksum(stray) == row.checksum
    (kept,) = (new_drive / storage.directory_name / QUARANTINE_DIR).rglob(stray.name)
    assert kept.read_bytes() == b"something else"


# --- what is refused ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_hostile_new_base_paths_are_refused_and_nothing_is_touched(api, allowed_root, corpus, new_drive, tmp_path):
    storage = make_storage_with_photos(allowed_root, corpus)
    url = f"/api/v1/file-storage/{storage.storage_uuid}/migrate"
    outside = tmp_path / "outside"
    outside.mkdir()
    (allowed_root / "link-out").symlink_to(outside)
    another = storage_create(base_path=str(new_drive), display_name="Another")
    taken = allowed_root / "taken"
    taken.mkdir()
    (taken / storage.directory_name).mkdir()
    shutil.copytree(another.full_path / ".imalink", taken / storage.directory_name / ".imalink")  # its marker
    busy = allowed_root / "busy"
    (busy / storage.directory_name).mkdir(parents=True)
    (busy / storage.directory_name / "notes.txt").write_text("mine")
    linked = allowed_root / "linked"
    linked.mkdir()
    (linked / storage.directory_name).symlink_to(outside)
    a_file = allowed_root / "a-file"
    a_file.mkdir()
    (a_file / storage.directory_name).write_text("")
    before = {p: p.stat().st_mtime_ns for p in allowed_root.rglob("*") if not p.is_symlink()}

    cases = [
        ("relative/path", 400, "path_rejected"),
        (str(new_drive) + "/../new-drive", 400, "path_rejected"),
        (str(new_drive) + "\x00", 400, "path_rejected"),
        (str(allowed_root / "nowhere"), 400, "path_not_found"),
        (str(outside), 400, "path_not_allowed"),
        (str(allowed_root / "link-out"), 400, "path_not_allowed"),
        (str(storage.full_path / "photos"), 400, "migration_refused"),
        (str(storage.full_path), 400, "migration_refused"),
        (storage.base_path, 400, "migration_refused"),
        (str(taken), 400, "migration_refused"),
        (str(busy), 400, "migration_refused"),
        (str(linked), 400, "migration_refused"),
        (str(a_file), 400, "migration_refused"),
    ]
    reasons = []
    for new_base_path, status, code in cases:
        error = assert_error(api.post(url, {"new_base_path": new_base_path}), status, code)
        reasons.append(error["details"].get("reason_code"))
    assert reasons[6:] == [
        "inside_storage",
        "inside_storage",
        "already_there",
        "marker_mismatch",
        "destination_not_empty",
        "destination_not_a_folder",
        "destination_not_a_folder",
    ]
    assert_error(api.post(url, {"new_base_path": str(new_drive), "delete_old": True}), 422)
    assert not Job.objects.exists()
    assert {p: p.stat().st_mtime_ns for p in allowed_root.rglob("*") if not p.is_symlink()} == before
    storage.refresh_from_db()
    assert storage.base_path == str(allowed_root / "old-drive")

    old_base = storage.full_path.parent
    old_base.rename(old_base.with_name("unplugged"))
    assert_error(api.post(url, {"new_base_path": str(new_drive)}), 409, "storage_unavailable")
    assert not (new_drive / storage.directory_name).exists()


def test_the_route_migrates_in_a_worker_and_the_put_still_accepts_a_copy_made_by_hand(
    celery_worker, api, allowed_root, corpus, new_drive
):
    storage = make_storage_with_photos(allowed_root, corpus)
    response = api.post(f"/api/v1/file-storage/{storage.storage_uuid}/migrate", {"new_base_path": str(new_drive)})
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["switched"] and data["old_copy_left_untouched"] and data["status"] == "succeeded"

    # Back to the old drive by hand, the seed's way: the PUT checks the marker there and switches.
    back = api.put(f"/api/v1/file-storage/{storage.storage_uuid}", {"base_path": str(allowed_root / "old-drive")})
    assert back.status_code == 200, back.content
    storage.refresh_from_db()
    assert storage.base_path == str(allowed_root / "old-drive")


# --- killed at random points ---------------------------------------------------------------------------------

KILLED_RUN = """
import os, signal, sys
from jobs import services as jobs
from storages.models import FileStorage

kill_at, calls = int(os.environ.get("KILL_AT", "0")), [0]

def on_progress(progress):
    calls[0] += 1
    if calls[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

storage = FileStorage.objects.get(pk=int(os.environ["STORAGE_ID"]))
job = jobs.job_start(kind="migrate", storage=storage, params={"new_base_path": os.environ["NEW_BASE"]}, enqueue=False)
finished = jobs.job_run(job.pk, on_progress=on_progress)
print("FINISHED", finished.status, finished.errors)
"""


def _run_migration(tmp_path, storage, new_base, kill_at=0):
    env = subprocess_env(tmp_path, KILL_AT=kill_at, STORAGE_ID=storage.pk, NEW_BASE=new_base)
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", KILLED_RUN],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.django_db(transaction=True)
def test_a_migration_killed_with_sigkill_at_random_points_finishes_on_a_rerun_every_file_verified(
    allowed_root, corpus, new_drive, tmp_path
):
    storage = make_storage_with_photos(allowed_root, corpus, camera_copies=16)
    old_root = storage.full_path
    before = tree(old_root)
    files = len(before)
    # Progress calls of one run: 1 as the copy starts, 1 per file, then the check, then the switch: a kill at any
    # of them comes before the switch, while up to IMALINK_COPY_THREADS other files are copied, fsynced or renamed.
    points = random.Random(17).sample(range(1, files + 4), 12)
    for kill_at in points:
        run = _run_migration(tmp_path, storage, str(new_drive), kill_at)
        assert run.returncode == -signal.SIGKILL, (kill_at, run.stdout[-2000:], run.stderr[-4000:])
        storage.refresh_from_db()
        assert storage.base_path == str(allowed_root / "old-drive"), kill_at
        assert tree(old_root) == before, kill_at  # the old copy stays whole and untouched
    killed = Job.objects.filter(kind="migrate")
    assert killed.count() == len(points)

    final = _run_migration(tmp_path, storage, str(new_drive))
    assert final.returncode == 0 and "FINISHED succeeded" in final.stdout, final.stdout[-2000:] + final.stderr[-4000:]
    result = Job.objects.filter(kind="migrate", status="succeeded").get().result
    assert result["switched"] and result["files_verified"] == result["files_total"] == files
    assert result["files_copied"] < files  # the killed runs' verified copies were kept, not made again
    storage.refresh_from_db()
    new_root = new_drive / storage.directory_name
    assert storage.full_path == new_root
    for row in ImageFile.objects.filter(file_storage=storage):
        assert file_checksum(new_root / row.relative_path) == row.checksum
    assert_same_but_the_master_index(before, tree(new_root))
    assert os.listdir(new_root / ".imalink/tmp") == []  # the partial copies the kills left were removed
    assert not (new_root / QUARANTINE_DIR / "20260101T000000Z" / "photos" / "2024").exists()
    assert tree(old_root) == before
    assert FileStorage.objects.get(pk=storage.pk).is_accessible
