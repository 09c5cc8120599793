"""Hostile things where a storage's indexes belong, met by a scan, index status and adopt.

An index file in a storage can be anything a user, a tool or an attacker put there: a symbolic link out of the
drive, a named pipe that blocks whoever opens it, a folder, a sparse file of gigabytes. Whatever it is, it is
never followed, never blocks, never has its target copied onto the drive, and is kept, moved aside whole, when
ImaLink writes the index in its place. A symbolic link in place of a folder ImaLink writes into is refused.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from imports.models import ImportSession
from indexing import jobs
from indexing.reader import read_index
from indexing.recovery import recover_from_indexes
from indexing.scanner import scan_storage
from indexing.writer import index_status, write_storage_indexes
from storages.atomic import UnsafeFolder
from tests.conftest import imported_storage

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

SECRET = b'{"storage_info": {"uuid": "secret-7f3a9c", "note": "a file outside the drive"}}\n'


@pytest.fixture
def outside(tmp_path):
    """A folder off the drive, with a file in it that must never be copied, changed or followed."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.json").write_bytes(SECRET)
    return folder


@pytest.fixture
def drive(allowed_root, corpus):
    """A storage with one import and its indexes written."""
    return imported_storage(allowed_root, corpus)


def plant(kind: str, path: Path, outside: Path) -> None:
    """Put a hostile entry of this kind where an index file belongs."""
    path.unlink()
    if kind == "symlink out":
        path.symlink_to(outside / "secret.json")
    elif kind == "symlink to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "named pipe":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
        (path / "keep.txt").write_text("a user's note")
    elif kind == "sparse 600 MB":
        with open(path, "wb") as handle:
            handle.truncate(600 * 1024 * 1024)
    else:
        raise AssertionError(kind)


def move_one_photo(storage) -> None:
    """A change for the scan to find, so that it rewrites the indexes."""
    photos = storage.full_path / "photos"
    first = sorted(p for p in photos.rglob("*") if p.is_file())[0]
    (photos / "moved").mkdir(exist_ok=True)
    first.rename(photos / "moved" / first.name)


def drive_bytes(storage) -> list[bytes]:
    return [p.read_bytes() for p in storage.full_path.rglob("*") if p.is_file() and not p.is_symlink() and p.stat().st_size < 10_000_000]


KINDS = ["symlink out", "symlink to /dev/zero", "named pipe", "folder", "sparse 600 MB"]


@pytest.mark.parametrize("which", ["master", "session"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_scan_keeps_whatever_stands_in_an_index_place_and_writes_a_true_index(drive, outside, kind, which, api):
    storage, session = drive
    path = storage.full_path / ("index.json" if which == "master" else f"imports/session_{session.pk}.json")
    plant(kind, path, outside)

    status = index_status(storage)  # never blocks on the pipe, never reads through the link
    state = status["master_index"] if which == "master" else status["sessions"][0]
    assert state["status"] == "corrupt", state
    assert ("not a plain file" in state["problem"]) or ("too large" in state["problem"]), state["problem"]
    answer = api.get(f"/api/v1/storage-index/status/{storage.storage_uuid}")
    assert answer.status_code == 200, answer.content

    move_one_photo(storage)
    report = scan_storage(storage)
    assert report.changes_detected and len(report.moved_files) == 1

    # The index in its place is a plain file that parses and agrees with the database.
    assert path.is_file() and not path.is_symlink()
    assert read_index(path).data is not None
    storage.refresh_from_db()
    after = index_status(storage)
    assert after["master_index"]["status"] == "current" and all(s["status"] == "current" for s in after["sessions"]), after
    # What stood there is kept whole, moved aside, and never followed.
    (aside,) = list((storage.full_path / ".imalink/index-backups").glob(f"{path.stem}.*.set-aside"))
    if kind.startswith("symlink"):
        assert aside.is_symlink() and os.readlink(aside) == (str(outside / "secret.json") if kind == "symlink out" else "/dev/zero")
    elif kind == "folder":
        assert (aside / "keep.txt").read_text() == "a user's note"
    elif kind == "named pipe":
        assert aside.is_fifo()
    else:
        assert aside.stat().st_size == 600 * 1024 * 1024
    assert (outside / "secret.json").read_bytes() == SECRET
    assert not any(b"secret-7f3a9c" in data for data in drive_bytes(storage)), "a file off the drive was copied onto it"


@pytest.mark.parametrize("folder", ["imports", ".imalink/index-backups"])
def test_a_symlink_in_place_of_a_folder_that_holds_indexes_is_refused_and_nothing_is_written_through_it(drive, outside, folder):
    storage, session = drive
    real = storage.full_path / folder
    shutil.rmtree(real)
    real.symlink_to(outside, target_is_directory=True)
    before = sorted(p.name for p in outside.iterdir())
    (storage.full_path / "index.json").write_text('{"changed": "so that it is rewritten"}')

    with pytest.raises(UnsafeFolder) as raised:
        write_storage_indexes(storage)
    assert "symbolic link" in raised.value.message and str(real) in raised.value.message
    finished = jobs.job_run(jobs.job_start(kind="index_storage", storage=storage, enqueue=False).pk)
    assert finished.status == "failed"
    assert (finished.errors[-1]["code"], finished.errors[-1]["status"]) == ("unsafe_folder", 409), "the API answers 409 unsafe_folder"
    assert sorted(p.name for p in outside.iterdir()) == before, "an index was written off the drive"
    assert (outside / "secret.json").read_bytes() == SECRET


@pytest.mark.parametrize("kind", ["named pipe", "symlink out", "folder"])
def test_adopt_meets_a_hostile_master_index_with_a_reason_and_recovers_from_its_backup(drive, outside, kind):
    storage, session = drive
    root = storage.full_path
    write_storage_indexes(storage)
    good = (root / "index.json").read_bytes()
    # A backup of the master as the writer keeps it; then the database is lost.
    backups = root / ".imalink/index-backups"
    backups.mkdir(exist_ok=True)
    (backups / "index.20260101T000000000000Z.json").write_bytes(good)
    call_command("flush", interactive=False, verbosity=0)
    plant(kind, root / "index.json", outside)

    report = recover_from_indexes([], folders=[root])
    (found,) = report.storages
    assert any("not a plain file" in p["problem"] for p in found["problems"]), found["problems"]
    assert found["files_restored"] == 3, found
    assert ImportSession.objects.get(pk=session.pk).title == "Card"
    assert (outside / "secret.json").read_bytes() == SECRET
    assert not any(b"secret-7f3a9c" in data for data in drive_bytes(storage))


def test_adopt_through_the_api_with_a_named_pipe_for_an_index_answers_without_hanging(drive, outside, api, celery_worker):
    storage, _session = drive
    root = storage.full_path
    call_command("flush", interactive=False, verbosity=0)
    from django.contrib.auth import get_user_model

    from imalink.models import ApiToken

    user = get_user_model().objects.create_superuser("admin3", "", "pw-for-tests-123")
    api.headers["Authorization"] = f"Bearer {ApiToken.issue(user=user)[1]}"
    plant("named pipe", root / "index.json", outside)
    for name in root.joinpath("imports").iterdir():
        plant("named pipe", name, outside)
    shutil.rmtree(root / ".imalink/index-backups", ignore_errors=True)
    answer = api.post("/api/v1/file-storage/adopt?wait=20", {"path": str(root)})
    assert answer.status_code in (200, 400, 409, 422), answer.content
    body = json.dumps(answer.json())
    assert "not a plain file" in body or "index" in body.lower(), body


def test_an_import_that_cannot_write_its_index_through_a_symlinked_imports_folder_still_succeeds(drive, outside, corpus):
    """The files are placed and recorded; only the index is refused, and index status says it is missing."""
    from imports.pipeline import import_folder

    storage, _session = drive
    imports = storage.full_path / "imports"
    shutil.rmtree(imports)
    imports.symlink_to(outside, target_is_directory=True)
    card = storage.full_path.parent / "card2"
    card.mkdir()
    shutil.copy(corpus / "jpeg/camera/door-knocker.jpg", card)
    session = ImportSession.objects.create(title="Second card", file_storage=storage)

    report = import_folder(session_id=session.pk, source_path=str(card))

    assert (report.imported, report.failed) == (1, 0)
    assert session.image_files.count() == 1
    assert sorted(p.name for p in outside.iterdir()) == ["secret.json"], "an index was written off the drive"
    state = next(s for s in index_status(storage)["sessions"] if s["session_id"] == session.pk)
    assert not state["current"]
