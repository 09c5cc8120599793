"""Disaster recovery (Workflow 6): the database is lost, the drives are not; everything comes back.

Also: adopt one storage folder, the recovery drill, idempotence, and hostile index files.
"""

import json
import os
import shutil

import pytest
from django.core.management import call_command

from imports.models import Author, ImageFile, ImportSession, Photo
from indexing.drill import recovery_drill, snapshot
from indexing.recovery import recover_from_indexes
from indexing.rewrite import import_folder, storage_create
from indexing.writer import write_storage_indexes
from storages.models import FileStorage

CARDS = {
    "A": [
        (
            "trip",
            [
                "jpeg/camera/DSCN0010.jpg",
                "jpeg/camera/jolla.jpg",
                "raw/pair/canon_eos_6d.dng",
                "raw/pair/canon_eos_6d.JPG",
            ],
        ),
        ("party", ["jpeg/camera/canon_hdr_NO.jpg", "raw/metadata_only/Nikon.nef"]),
    ],
    "B": [
        ("heic", ["heic/IMG_2682.heic", "png/hopper.png"]),
        ("old", ["jpeg/camera/img_1771.jpg", "tiff/casio_01.tif"]),
    ],
}


def build_archive(allowed_root, corpus):
    """Two storages on two 'drives', two sessions each, with user metadata on some photos."""
    kari = Author.objects.create(name="Kari Nordmann", email="kari@example.org")
    ola = Author.objects.create(name="Ola")
    for drive, sessions in CARDS.items():
        base = allowed_root / f"drive{drive}"
        base.mkdir()
        storage = storage_create(
            base_path=str(base), display_name=f"Drive {drive}", description=f"Photos on drive {drive}"
        )
        for title, files in sessions:
            card = allowed_root / f"card-{drive}-{title}"
            card.mkdir()
            for f in files:
                shutil.copy(corpus / f, card)
            session = ImportSession.objects.create(
                title=title.title(), description=f"{title} pictures", file_storage=storage, default_author=kari
            )
            report = import_folder(session_id=session.pk, source_path=str(card), target_subdirectory=f"2024/{title}")
            assert report.failed == 0, report.failures
    for i, photo in enumerate(Photo.objects.order_by("id")):
        if i % 2 == 0:
            photo.title, photo.rating, photo.tags = f"Photo {i}", (i % 5) + 1, ["family", f"t{i}"]
            photo.description = "a description"
            photo.author = ola if i % 4 == 0 else kari
            photo.save()
    for storage in FileStorage.objects.all():
        write_storage_indexes(storage)
    return [allowed_root / "driveA", allowed_root / "driveB"]


def wipe_database():
    call_command("flush", interactive=False, verbosity=0)
    assert not FileStorage.objects.exists() and not Photo.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_workflow_6_everything_comes_back_with_the_same_ids(allowed_root, corpus):
    roots = build_archive(allowed_root, corpus)
    before = snapshot()
    session_ids = sorted(ImportSession.objects.values_list("id", flat=True))
    assert len(before["photos"]) >= 8 and len(before["sessions"]) == 4

    wipe_database()
    report = recover_from_indexes(roots)
    assert report.found == 2
    assert all(s["outcome"] == "restored" and s["problems"] == [] and s["conflicts"] == [] for s in report.storages), (
        report.storages
    )

    assert snapshot() == before
    assert sorted(ImportSession.objects.values_list("id", flat=True)) == session_ids
    assert all(p.hotpreview for p in Photo.objects.filter(has_hotpreview=True))
    # New rows after recovery do not collide with the restored ids (PostgreSQL's sequences were moved on).
    probe = ImportSession.objects.create(title="After", file_storage=FileStorage.objects.first())
    assert probe.pk > max(session_ids)
    probe.delete()

    drill = recovery_drill(roots)
    assert drill.passed and drill.difference_count == 0, drill.differences

    again = recover_from_indexes(roots)
    assert [s["outcome"] for s in again.storages] == ["unchanged", "unchanged"]
    assert snapshot(before["storages"].keys())["files"] == before["files"]


@pytest.mark.django_db(transaction=True)
def test_the_drill_reports_a_difference_when_the_indexes_are_behind(allowed_root, corpus):
    roots = build_archive(allowed_root, corpus)
    photo = Photo.objects.filter(rating=0).first()
    photo.rating = 4
    photo.save()  # not yet in any index
    drill = recovery_drill(roots)
    assert not drill.passed
    assert {"kind": "photos", "key": photo.hothash, "field": "rating", "live": 4, "recovered": 0} in drill.differences
    for storage in FileStorage.objects.all():
        write_storage_indexes(storage)
    assert recovery_drill(roots).passed


@pytest.mark.django_db(transaction=True)
def test_missing_files_are_reported_and_kept_as_missing(allowed_root, corpus):
    roots = build_archive(allowed_root, corpus)
    gone = ImageFile.objects.select_related("file_storage").first()
    os.unlink(gone.file_storage.full_path / gone.relative_path)
    wipe_database()
    report = recover_from_indexes(roots)
    assert [p for s in report.storages for p in s["missing_files"]] == [gone.relative_path]
    assert ImageFile.objects.get(relative_path=gone.relative_path).status == "missing"


@pytest.mark.django_db(transaction=True)
def test_a_session_id_that_is_taken_gets_a_new_id_and_a_renamed_index(allowed_root, corpus):
    roots = build_archive(allowed_root, corpus)
    before = snapshot()
    taken = ImportSession.objects.filter(file_storage__display_name="Drive A").order_by("id").first().pk
    wipe_database()
    # Before recovery, a new storage takes the id of drive A's first session.
    base = allowed_root / "driveC"
    base.mkdir()
    other = storage_create(base_path=str(base), display_name="Drive C")
    ImportSession.objects.create(pk=taken, title="Someone else's", file_storage=other)
    report = recover_from_indexes(roots)
    changes = [c for s in report.storages for c in s["session_id_changes"]]
    assert [c["old_id"] for c in changes] == [taken]
    new_id = changes[0]["new_id"]
    root = FileStorage.objects.get(display_name="Drive A").full_path
    assert not (root / f"imports/session_{taken}.json").exists()
    renamed = json.loads((root / f"imports/session_{new_id}.json").read_text())
    assert renamed["import_session"]["id"] == new_id
    master = json.loads((root / "index.json").read_text())
    assert f"imports/session_{new_id}.json" in [s["index_file"] for s in master["import_sessions"]]
    assert ImportSession.objects.get(pk=taken).title == "Someone else's"
    assert ImageFile.objects.filter(import_session_id=new_id).count() == sum(
        1 for f in before["files"].values() if f["session"] == taken
    )
    again = recover_from_indexes(roots + [base])
    assert all(s["outcome"] == "unchanged" for s in again.storages), again.storages


@pytest.mark.django_db(transaction=True)
def test_a_corrupt_index_falls_back_to_its_newest_good_backup(allowed_root, corpus):
    roots = build_archive(allowed_root, corpus)
    before = snapshot()
    storage = FileStorage.objects.get(display_name="Drive B")
    session = storage.import_sessions.order_by("id").first()
    photo = ImageFile.objects.filter(import_session=session).first().photo
    photo.title = "Changed later"
    photo.save()
    write_storage_indexes(storage)  # the old session index goes to the backups
    (storage.full_path / f"imports/session_{session.pk}.json").write_text('{"import_session": {"id": ')  # torn
    wipe_database()
    report = recover_from_indexes(roots)
    drive_b = next(s for s in report.storages if s["display_name"] == "Drive B")
    assert drive_b["index_sources"][f"imports/session_{session.pk}.json"].startswith("backup:")
    assert any("used the backup" in p["problem"] for p in drive_b["problems"])
    assert snapshot()["files"] == before["files"]  # every file is back, from the backup


@pytest.mark.django_db(transaction=True)
def test_the_recover_command_and_a_dry_run(allowed_root, corpus, capsys):
    roots = build_archive(allowed_root, corpus)
    wipe_database()
    call_command("recover_from_indexes", *map(str, roots), "--dry-run")
    assert "Found 2 storages (dry run: nothing kept)." in capsys.readouterr().out
    assert not FileStorage.objects.exists()
    call_command("recover_from_indexes", *map(str, roots))
    out = capsys.readouterr().out
    assert "restored; 2 sessions" in out and FileStorage.objects.count() == 2
    call_command("recovery_drill", *map(str, roots))
    assert "0 differences" in capsys.readouterr().out


def test_recover_and_drill_through_the_api(celery_worker, api, allowed_root, corpus, settings):
    from django.contrib.auth import get_user_model

    # The answers asserted are the synchronous ones: the drill's scratch rebuild is a process of its own, which on
    # two cores shared by make test's four test processes has taken longer than the default 30 s to answer; the
    # suite's autouse fixture (tests/conftest.py) lets every synchronous answer wait 180 s.
    from imalink.models import ApiToken
    from tests.conftest import assert_error

    roots = build_archive(allowed_root, corpus)
    before = snapshot()
    drill = api.post("/api/v1/storage-index/recovery-drill", {"search_roots": [str(r) for r in roots]})
    assert drill.status_code == 200, drill.content
    assert drill.json()["data"]["passed"] is True and drill.json()["data"]["difference_count"] == 0
    wipe_database()
    user = get_user_model().objects.create_superuser("admin", "", "pw-for-tests-123")
    api.headers["Authorization"] = f"Bearer {ApiToken.issue(user=user)[1]}"
    dry = api.post("/api/v1/storage-index/recover", {"search_roots": [str(r) for r in roots], "dry_run": True}).json()[
        "data"
    ]
    assert dry["found"] == 2 and not FileStorage.objects.exists()
    response = api.post("/api/v1/storage-index/recover", {"search_roots": [str(r) for r in roots]})
    assert response.status_code == 200, response.content
    assert [s["outcome"] for s in response.json()["data"]["storages"]] == ["restored", "restored"]
    assert snapshot() == before
    assert_error(api.post("/api/v1/storage-index/recover", {"search_roots": ["relative/path"]}), 400, "path_rejected")
    assert_error(api.post("/api/v1/storage-index/recover", {"search_roots": ["/etc"]}), 400, "path_not_allowed")
    assert_error(api.post("/api/v1/storage-index/recover", {"search_roots": []}), 422, "validation_error")
