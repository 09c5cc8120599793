"""Hostile things where a storage's indexes belong, met by a scan, index status and adopt.

An index file in a storage can be anything a user, a tool or an attacker put there: a symbolic link out of the
drive, a named pipe that blocks whoever opens it, a folder, a sparse file of gigabytes. Whatever it is, it is
never followed, never blocks and never has its target copied onto the drive. What is not a plain file makes the
storage unavailable (unsafe_layout) until the user moves it aside; a plain file too large to be an index is
moved aside whole when the index is rewritten. The full matrix of places is tests/reliability/test_hostile_matrix.py.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from imports.models import ImportSession
from indexing.reader import read_index
from indexing.scanner import scan_storage
from indexing.writer import index_status, write_storage_indexes
from jobs import services as jobs
from storages.drive import UnsafeLayout
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
    return [
        p.read_bytes()
        for p in storage.full_path.rglob("*")
        if p.is_file() and not p.is_symlink() and p.stat().st_size < 10_000_000
    ]


HOSTILE_KINDS = ["symlink out", "symlink to /dev/zero", "named pipe", "folder"]


@pytest.mark.parametrize("which", ["master", "session"])
@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_whatever_is_not_a_plain_file_in_an_index_place_makes_the_storage_unsafe_until_it_is_moved_aside(
    drive, outside, kind, which, api
):
    storage, session = drive
    path = storage.full_path / ("index.json" if which == "master" else f"imports/session_{session.pk}.json")
    plant(kind, path, outside)

    answer = api.get(
        f"/api/v1/storage-index/status/{storage.storage_uuid}"
    )  # never blocks on the pipe, never reads through the link
    assert answer.status_code == 200, answer.content
    data = answer.json()["data"]
    assert (data["available"], data["reason_code"]) == (False, "unsafe_layout"), data
    assert str(path) in data["reason"]
    move_one_photo(storage)
    with pytest.raises(UnsafeLayout):
        scan_storage(storage)
    assert not storage.image_files.filter(status="missing").exists(), "an unsafe storage had rows marked missing"

    # The user moves the entry aside, as the reason says; then the scan runs and writes a true index.
    aside = storage.full_path.parent / "moved-aside"
    path.rename(aside)
    report = scan_storage(storage)
    assert report.changes_detected and len(report.moved_files) == 1
    assert path.is_file() and not path.is_symlink() and read_index(path).data is not None
    storage.refresh_from_db()
    after = index_status(storage)
    assert after["master_index"]["status"] == "current" and all(s["status"] == "current" for s in after["sessions"]), (
        after
    )
    assert (outside / "secret.json").read_bytes() == SECRET
    assert not any(b"secret-7f3a9c" in data for data in drive_bytes(storage)), "a file off the drive was copied onto it"


@pytest.mark.parametrize("which", ["master", "session"])
def test_a_plain_file_too_large_to_be_an_index_is_kept_whole_and_a_true_index_written(drive, outside, which):
    storage, session = drive
    path = storage.full_path / ("index.json" if which == "master" else f"imports/session_{session.pk}.json")
    plant("sparse 600 MB", path, outside)

    state = index_status(storage)
    state = state["master_index"] if which == "master" else state["sessions"][0]
    assert state["status"] == "corrupt" and "too large" in state["problem"], state
    move_one_photo(storage)
    report = scan_storage(storage)
    assert report.changes_detected and len(report.moved_files) == 1
    assert read_index(path).data is not None
    (aside,) = list((storage.full_path / ".imalink/index-backups").glob(f"{path.stem}.*.set-aside"))
    assert aside.stat().st_size == 600 * 1024 * 1024


@pytest.mark.parametrize("folder", ["imports", ".imalink/index-backups"])
def test_a_symlink_in_place_of_a_folder_that_holds_indexes_is_refused_and_nothing_is_written_through_it(
    drive, outside, folder
):
    storage, session = drive
    real = storage.full_path / folder
    shutil.rmtree(real)
    real.symlink_to(outside, target_is_directory=True)
    before = sorted(p.name for p in outside.iterdir())
    (storage.full_path / "index.json").write_text('{"changed": "so that it is rewritten"}')

    with pytest.raises(UnsafeLayout) as raised:
        write_storage_indexes(storage)
    assert "symbolic link" in raised.value.message and str(real) in raised.value.message
    finished = jobs.job_run(jobs.job_start(kind="index_storage", storage=storage, enqueue=False).pk)
    assert finished.status == "failed"
    assert (finished.errors[-1]["code"], finished.errors[-1]["status"]) == ("storage_unavailable", 409), finished.errors
    assert sorted(p.name for p in outside.iterdir()) == before, "an index was written off the drive"
    assert (outside / "secret.json").read_bytes() == SECRET


def test_adopt_through_the_api_with_a_named_pipe_for_an_index_answers_without_hanging(
    drive, outside, api, celery_worker
):
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


def test_an_import_whose_imports_folder_turns_into_a_symlink_midway_still_places_and_records_every_file(
    drive, outside, corpus, api
):
    """Checked at the start, swapped while the files are copied: the files are placed and recorded, and only the
    index is refused (nothing is written through the link); index status then names the unsafe folder."""
    from indexing.rewrite import import_folder

    storage, _session = drive
    imports = storage.full_path / "imports"
    card = storage.full_path.parent / "card2"
    card.mkdir()
    shutil.copy(corpus / "jpeg/camera/door-knocker.jpg", card)
    session = ImportSession.objects.create(title="Second card", file_storage=storage)

    def swap_once(**values):
        if values.get("done") and not imports.is_symlink():
            imports.rename(storage.full_path.parent / "imports-aside")
            imports.symlink_to(outside, target_is_directory=True)

    report = import_folder(session_id=session.pk, source_path=str(card), progress=swap_once)

    assert (report.imported, report.failed) == (1, 0)
    assert session.image_files.count() == 1
    assert sorted(p.name for p in outside.iterdir()) == ["secret.json"], "an index was written off the drive"
    answer = api.get(f"/api/v1/storage-index/status/{storage.storage_uuid}")
    assert answer.json()["data"]["reason_code"] == "unsafe_layout", answer.json()
