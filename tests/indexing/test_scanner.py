"""Scanning: ImaLink keeps every database connection when the user reorganises photos/ by hand.

The first test is the seed's Workflow 3 as written, through the API and a real worker; the rest are the
cases a file explorer produces, each against indexing.scanner.scan_storage on real files.
"""

import json
import os
import shutil
import time

import pytest

from imalink.errors import StorageUnavailable
from imports.models import ImageFile, ImportSession, Photo
from indexing.rewrite import import_folder
from indexing.scanner import scan_storage
from storages.models import FileStorage
from tests.conftest import assert_error
from tests.seed import SeedRequests, seed_python_block

BEFORE = {
    "italy": {
        "IMG_001.jpg": "jpeg/camera/DSCN0010.jpg",
        "IMG_002.CR2": "raw/metadata_only/CanonRaw.cr2",
        "IMG_003.jpg": "jpeg/camera/jolla.jpg",
    },
    "wedding": {"DSC_001.jpg": "jpeg/camera/canon_hdr_NO.jpg", "DSC_002.jpg": "jpeg/camera/img_1771.jpg"},
}
AFTER = {
    "photos/2024/italy/IMG_001.jpg": "photos/Vacations/Italy_2024/Rome/IMG_001.jpg",
    "photos/2024/italy/IMG_003.jpg": "photos/Vacations/Italy_2024/Rome/IMG_003.jpg",
    "photos/2024/italy/IMG_002.CR2": "photos/Vacations/Italy_2024/Venice/IMG_002.CR2",
    "photos/2024/wedding/DSC_001.jpg": "photos/Events/Wedding_August/DSC_001.jpg",
    "photos/2024/wedding/DSC_002.jpg": "photos/Events/Wedding_August/DSC_002.jpg",
}


def import_tree(allowed_root, corpus, storage):
    sessions = {}
    for name, files in BEFORE.items():
        card = allowed_root / f"card-{name}"
        card.mkdir()
        for target, source in files.items():
            shutil.copy(corpus / source, card / target)
        session = ImportSession.objects.create(title=name.title(), file_storage=storage)
        report = import_folder(session_id=session.pk, source_path=str(card), target_subdirectory=f"2024/{name}")
        assert report.imported == len(files), report.failures
        sessions[name] = session
    return sessions


def reorganise(root, moves=AFTER):
    for old, new in moves.items():
        (root / new).parent.mkdir(parents=True, exist_ok=True)
        os.rename(root / old, root / new)


def test_the_seed_workflow_3_runs_as_written(celery_worker, api, make_storage, allowed_root, corpus):
    storage = FileStorage.objects.get(storage_uuid=make_storage()["uuid"])
    sessions = import_tree(allowed_root, corpus, storage)
    expected = [
        {
            "hothash": f.photo.hothash,
            "old_path": f.relative_path,
            "new_path": AFTER[f.relative_path],
            "session_id": f.import_session_id,
        }
        for f in ImageFile.objects.select_related("photo")
    ]
    reorganise(storage.full_path)

    # Step 2: scan for changes.
    response = api.post(f"/api/v1/storage-index/scan/{storage.storage_uuid}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert data["changes_detected"] is True
    key = lambda e: e["old_path"]  # noqa: E731
    assert sorted(data["moved_files"], key=key) == sorted(expected, key=key)
    assert data["missing_files"] == [] and data["new_files"] == [] and data["modified_files"] == []
    assert data["bytes_read"] == sum(os.path.getsize(storage.full_path / p) for p in AFTER.values())

    # Step 3: regenerate the affected session indexes, then the master index, as the seed does.
    for session in sessions.values():
        assert api.post(f"/api/v1/storage-index/session/{session.pk}").status_code == 200
    assert api.post(f"/api/v1/storage-index/generate/{storage.storage_uuid}").status_code == 200
    for session in sessions.values():
        index = json.loads((storage.full_path / f"imports/session_{session.pk}.json").read_text())
        paths = {e["path"] for e in index["files"].values()} | {
            c["path"] for e in index["files"].values() for c in e["companions"]
        }
        assert paths <= set(AFTER.values()) and paths
    # Every metadata connection survives: same rows, same photos, new paths.
    assert {f.relative_path for f in ImageFile.objects.all()} == set(AFTER.values())
    assert ImageFile.objects.filter(status="present").count() == 5

    # The seed's Workflow 8 integrity check reports every file valid.
    code = seed_python_block("Workflow 8", "Bulk File Validation")
    namespace = {"requests": SeedRequests(api), "os": os}
    exec(compile(code, "seed-workflow-8", "exec"), namespace)
    result = namespace["validate_storage_integrity"](str(storage.storage_uuid))
    assert result["missing_files"] == [] and result["validated_files"] == 5
    assert result["total_sessions"] == 2


def test_two_scans_at_once_run_one_after_the_other(celery_worker, api, make_storage, allowed_root, corpus):
    celery_worker.stop()
    celery_worker.start(concurrency=2)
    storage = FileStorage.objects.get(storage_uuid=make_storage()["uuid"])
    import_tree(allowed_root, corpus, storage)
    reorganise(storage.full_path)
    from jobs.models import Job
    from storages.locks import storage_lock

    # The storage's lock is held here until both scans are claimed and waiting for it: on a tiny storage the
    # first would otherwise end before the second is taken, and the test would prove nothing.
    with storage_lock(storage):
        ids = [
            api.post(f"/api/v1/storage-index/scan/{storage.storage_uuid}?wait=0").json()["data"]["job_id"]
            for _ in range(2)
        ]
        deadline = time.monotonic() + 60
        while Job.objects.filter(pk__in=ids, status="running").count() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Job.objects.filter(pk__in=ids, status="running").count() == 2, "the two scans were not both claimed"
    deadline = time.monotonic() + 60
    while not all(Job.objects.get(pk=i).is_finished for i in ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    first, second = sorted((Job.objects.get(pk=i) for i in ids), key=lambda j: j.finished_at)
    assert first.status == second.status == "succeeded"
    assert len(first.result["moved_files"]) == 5
    assert second.result["changes_detected"] is False and second.result["bytes_read"] == 0
    assert second.started_at < first.finished_at, (
        "the second scan was claimed while the first ran, and waited for the lock"
    )
    assert {f.relative_path for f in ImageFile.objects.all()} == set(AFTER.values())


# --- the cases a file explorer produces --------------------------------------------------------------


@pytest.fixture
def storage(make_storage):
    return FileStorage.objects.get(storage_uuid=make_storage()["uuid"])


@pytest.fixture
def imported(storage, allowed_root, corpus):
    return import_tree(allowed_root, corpus, storage)


def row(path):
    return ImageFile.objects.select_related("photo").get(relative_path=path)


@pytest.mark.django_db
def test_a_raw_and_its_jpeg_moved_to_different_folders(storage, allowed_root, corpus):
    card = allowed_root / "card"
    card.mkdir()
    shutil.copy(corpus / "raw/pair/canon_eos_6d.dng", card)
    shutil.copy(corpus / "raw/pair/canon_eos_6d.JPG", card)
    session = ImportSession.objects.create(title="Pair", file_storage=storage)
    import_folder(session_id=session.pk, source_path=str(card))
    photo = Photo.objects.get()
    reorganise(
        storage.full_path,
        {
            "photos/canon_eos_6d.dng": "photos/raw/canon_eos_6d.dng",
            "photos/canon_eos_6d.JPG": "photos/jpeg/canon_eos_6d.JPG",
        },
    )
    report = scan_storage(storage)
    assert {(m["old_path"], m["new_path"], m["hothash"]) for m in report.moved_files} == {
        ("photos/canon_eos_6d.dng", "photos/raw/canon_eos_6d.dng", photo.hothash),
        ("photos/canon_eos_6d.JPG", "photos/jpeg/canon_eos_6d.JPG", photo.hothash),
    }
    assert set(photo.files.values_list("relative_path", "is_primary")) == {
        ("photos/raw/canon_eos_6d.dng", False),
        ("photos/jpeg/canon_eos_6d.JPG", True),
    }


@pytest.mark.django_db
def test_a_file_moved_by_copy_and_delete_is_a_move(storage, imported):
    root = storage.full_path
    (root / "photos/elsewhere").mkdir()
    time.sleep(0.01)
    shutil.copy(root / "photos/2024/italy/IMG_003.jpg", root / "photos/elsewhere/IMG_003.jpg")  # a new mtime
    os.unlink(root / "photos/2024/italy/IMG_003.jpg")
    report = scan_storage(storage)
    assert [(m["old_path"], m["new_path"]) for m in report.moved_files] == [
        ("photos/2024/italy/IMG_003.jpg", "photos/elsewhere/IMG_003.jpg")
    ]
    assert report.bytes_read == os.path.getsize(root / "photos/elsewhere/IMG_003.jpg")
    moved = row("photos/elsewhere/IMG_003.jpg")
    assert moved.mtime_ns == os.stat(root / "photos/elsewhere/IMG_003.jpg").st_mtime_ns and moved.status == "present"


@pytest.mark.django_db
def test_a_file_edited_in_place_is_modified(storage, imported):
    path = storage.full_path / "photos/2024/wedding/DSC_002.jpg"
    original = row("photos/2024/wedding/DSC_002.jpg").checksum
    with open(path, "ab") as handle:
        handle.write(b"edited")
    report = scan_storage(storage)
    assert [m["path"] for m in report.modified_files] == ["photos/2024/wedding/DSC_002.jpg"]
    assert report.moved_files == report.missing_files == report.new_files == []
    edited = row("photos/2024/wedding/DSC_002.jpg")
    assert edited.status == "modified" and edited.checksum == original  # the known-good checksum is kept
    again = scan_storage(storage)
    assert again.changes_detected is False  # an edit already reported is not news


@pytest.mark.django_db
def test_a_deleted_file_is_missing_and_its_row_is_kept(storage, imported):
    os.unlink(storage.full_path / "photos/2024/italy/IMG_001.jpg")
    report = scan_storage(storage)
    assert [m["path"] for m in report.missing_files] == ["photos/2024/italy/IMG_001.jpg"]
    assert row("photos/2024/italy/IMG_001.jpg").status == "missing"
    assert ImageFile.objects.count() == 5
    index = json.loads((storage.full_path / f"imports/session_{imported['italy'].pk}.json").read_text())
    statuses = {e["path"]: e["status"] for e in index["files"].values()}
    assert statuses["photos/2024/italy/IMG_001.jpg"] == "missing"


@pytest.mark.django_db
def test_a_missing_file_put_back_is_present_again(storage, imported, tmp_path):
    path = storage.full_path / "photos/2024/italy/IMG_001.jpg"
    shutil.move(path, tmp_path / "aside.jpg")
    scan_storage(storage)
    shutil.move(tmp_path / "aside.jpg", path)
    report = scan_storage(storage)
    assert [m["path"] for m in report.restored_files] == ["photos/2024/italy/IMG_001.jpg"]
    assert row("photos/2024/italy/IMG_001.jpg").status == "present"


@pytest.mark.django_db
def test_a_dropped_in_file_is_new_and_then_adopted(storage, imported, corpus):
    shutil.copy(corpus / "png/hopper.png", storage.full_path / "photos/2024/hopper.png")
    (storage.full_path / "photos/2024/notes.txt").write_text("shopping list")
    report = scan_storage(storage)
    assert [n["path"] for n in report.new_files] == ["photos/2024/hopper.png", "photos/2024/notes.txt"]
    assert not ImageFile.objects.filter(relative_path="photos/2024/hopper.png").exists()
    adopted = scan_storage(storage, adopt_new=True)
    assert {n["path"]: n["adopted"] for n in adopted.new_files} == {
        "photos/2024/hopper.png": True,
        "photos/2024/notes.txt": False,
    }
    hopper = row("photos/2024/hopper.png")
    assert (
        hopper.import_session.title == "Adopted files" and hopper.photo.has_hotpreview and hopper.file_format == "png"
    )
    assert adopted.adopted["failures"][0]["path"] == "photos/2024/notes.txt"
    assert (storage.full_path / "photos/2024/hopper.png").exists()  # adopted where it lies, not copied
    assert [n["path"] for n in scan_storage(storage).new_files] == ["photos/2024/notes.txt"]


@pytest.mark.django_db
def test_a_rename_to_another_letter_case_is_a_move(storage, imported):
    reorganise(storage.full_path, {"photos/2024/italy/IMG_001.jpg": "photos/2024/italy/img_001.JPG"})
    report = scan_storage(storage)
    assert [(m["old_path"], m["new_path"]) for m in report.moved_files] == [
        ("photos/2024/italy/IMG_001.jpg", "photos/2024/italy/img_001.JPG")
    ]


@pytest.mark.django_db
def test_two_files_that_swapped_names_are_both_moves(storage, imported):
    root = storage.full_path
    a, b = "photos/2024/wedding/DSC_001.jpg", "photos/2024/wedding/DSC_002.jpg"
    ids = {a: row(a).id, b: row(b).id}
    os.rename(root / a, root / "swap.tmp")
    os.rename(root / b, root / a)
    os.rename(root / "swap.tmp", root / b)
    report = scan_storage(storage)
    assert {(m["old_path"], m["new_path"]) for m in report.moved_files} == {(a, b), (b, a)}
    assert report.missing_files == report.modified_files == report.new_files == []
    assert ImageFile.objects.get(pk=ids[a]).relative_path == b and ImageFile.objects.get(pk=ids[b]).relative_path == a


@pytest.mark.django_db
def test_an_unplugged_drive_is_refused_and_nothing_is_marked_missing(storage, imported, allowed_root, api):
    storage.full_path.rename(allowed_root / "unplugged")
    with pytest.raises(StorageUnavailable):
        scan_storage(storage)
    error = assert_error(api.post(f"/api/v1/storage-index/scan/{storage.storage_uuid}"), 409, "storage_unavailable")
    assert "unavailable" in error["message"]
    assert set(ImageFile.objects.values_list("status", flat=True)) == {"present"}
    storage.refresh_from_db()
    assert storage.last_scan_at is None


@pytest.mark.django_db
def test_a_drive_with_the_wrong_marker_is_refused(storage, imported):
    marker = storage.full_path / ".imalink/storage.json"
    marker.write_text(json.dumps({"storage_uuid": "11111111-1111-1111-1111-111111111111"}))
    shutil.rmtree(storage.full_path / "photos/2024")
    with pytest.raises(StorageUnavailable):
        scan_storage(storage)
    assert set(ImageFile.objects.values_list("status", flat=True)) == {"present"}


@pytest.mark.django_db
def test_a_second_scan_finds_nothing_and_reads_no_bytes(storage, imported):
    reorganise(storage.full_path)
    first = scan_storage(storage)
    assert first.changes_detected and first.bytes_read > 0
    second = scan_storage(storage)
    assert second.changes_detected is False
    assert second.bytes_read == 0 and second.unchanged_count == 5


@pytest.mark.django_db
def test_os_junk_is_ignored(storage, imported):
    photos = storage.full_path / "photos"
    (photos / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (photos / "2024/Thumbs.db").write_bytes(b"junk")
    (photos / "2024/italy/._IMG_001.jpg").write_bytes(b"AppleDouble")
    (photos / "2024/@eaDir").mkdir()
    (photos / "2024/@eaDir/SYNOPHOTO_THUMB_XL.jpg").write_bytes(b"thumb")
    report = scan_storage(storage)
    assert report.changes_detected is False and report.new_files == []


@pytest.mark.django_db
def test_a_dry_run_reports_and_writes_nothing(storage, imported):
    root = storage.full_path
    reorganise(root)
    index_before = (root / "index.json").read_bytes()
    report = scan_storage(storage, dry_run=True)
    assert len(report.moved_files) == 5
    assert set(ImageFile.objects.values_list("relative_path", flat=True)) == set(AFTER)
    assert (root / "index.json").read_bytes() == index_before
    storage.refresh_from_db()
    assert storage.last_scan_at is None


@pytest.mark.django_db
def test_the_scan_command_reports_changes(storage, imported, capsys):
    from django.core.management import call_command

    reorganise(storage.full_path)
    call_command("scan_storage", str(storage.storage_uuid), "--dry-run")
    out = capsys.readouterr().out
    assert "moved: photos/2024/italy/IMG_001.jpg -> photos/Vacations/Italy_2024/Rome/IMG_001.jpg" in out
    assert "(dry run: nothing written)" in out
    call_command("scan_storage", str(storage.storage_uuid))
    assert "5 moved, 0 missing" in capsys.readouterr().out
    assert row("photos/Vacations/Italy_2024/Rome/IMG_001.jpg")


@pytest.mark.django_db
def test_a_read_only_drive_can_be_scanned_and_validated(allowed_root, corpus, api):
    import subprocess

    from indexing.validation import validate_storage
    from tests.conftest import require

    drive = allowed_root / "ro-drive"
    drive.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(drive)]).returncode == 0
    )
    require(mounted, "a tmpfs mount (as root)")
    try:
        response = api.post("/api/v1/file-storage/create", {"base_path": str(drive), "display_name": "RO"})
        storage = FileStorage.objects.get(storage_uuid=response.json()["data"]["uuid"])
        card = allowed_root / "card"
        card.mkdir()
        shutil.copy(corpus / "jpeg/camera/DSCN0010.jpg", card)
        session = ImportSession.objects.create(title="RO", file_storage=storage)
        import_folder(session_id=session.pk, source_path=str(card))
        subprocess.run(["mount", "-o", "remount,ro", str(drive)], check=True)
        report = scan_storage(storage, dry_run=True)
        assert report.changes_detected is False and report.unchanged_count == 1
        assert validate_storage(storage, mode="full").validated_files == 1
    finally:
        subprocess.run(["umount", str(drive)], check=True)
