"""Replication (issue 17 point 1): three real storages on tmp_path, a session with a RAW+JPEG pair copied from the
main drive to the backup and on to the archive, verified, mirrored, resumable, and rebuilt from the backup alone."""

import errno
import json
import os
import shutil

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from copies.replication import replicate_storage
from copies.tasks import SCHEDULE_NAME, start_scheduled_replications
from imports.checksums import file_checksum
from imports.models import Author, ImageFile, ImportSession, Photo
from indexing.recovery import recover_from_indexes
from indexing.rewrite import import_folder, storage_create
from indexing.writer import index_status
from jobs import services as jobs
from jobs.models import Job
from storages.models import FileStorage
from tests.conftest import assert_error

PAIR_SESSION = ["raw/pair/canon_eos_6d.JPG", "raw/pair/canon_eos_6d.dng", "jpeg/camera/DSCN0010.jpg"]
SECOND_SESSION = ["jpeg/camera/jolla.jpg", "png/hopper.png"]


def _import(storage, allowed_root, corpus, name, files, **session_fields):
    card = allowed_root / f"card-{name}"
    card.mkdir()
    for f in files:
        shutil.copy(corpus / f, card)
    session = ImportSession.objects.create(file_storage=storage, **session_fields)
    report = import_folder(session_id=session.pk, source_path=str(card), target_subdirectory=f"2024/{name}")
    assert report.failed == 0, report.failures
    return session


def three_storages(allowed_root, corpus):
    """Main SSD with two sessions (one a RAW+JPEG pair), and an empty Backup Drive and NAS Archive."""
    storages = []
    for name in ("Main SSD", "Backup Drive", "NAS Archive"):
        base = allowed_root / name.split()[0].lower()
        base.mkdir()
        storages.append(storage_create(base_path=str(base), display_name=name))
    main = storages[0]
    kari = Author.objects.create(name="Kari Nordmann", email="kari@example.org")
    pair = _import(
        main, allowed_root, corpus, "pair", PAIR_SESSION, title="Italy", description="Rome, May", default_author=kari
    )
    other = _import(main, allowed_root, corpus, "other", SECOND_SESSION, title="Garden")
    return (*storages, pair, other)


def _tree(storage):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in storage.full_path.rglob("*") if p.is_file()}


def _files(storage):
    return list(ImageFile.objects.filter(file_storage=storage).order_by("relative_path"))


@pytest.mark.django_db
def test_a_raw_jpeg_pair_is_replicated_into_a_mirror_session_and_a_rerun_copies_nothing(allowed_root, corpus):
    main, backup, _archive, pair, _other = three_storages(allowed_root, corpus)
    main_before = _tree(main)

    report = replicate_storage(source=main, target=backup, session_ids=[pair.pk])

    originals = list(ImageFile.objects.filter(import_session=pair).order_by("relative_path"))
    assert len(originals) == 3
    assert report.copied_files == 3 and report.already_present == 0 and report.failed == []
    assert report.bytes_copied == sum(f.file_size for f in originals)
    mirror = ImportSession.objects.get(file_storage=backup)
    assert report.mirror_sessions == {str(pair.pk): mirror.pk}
    assert (mirror.mirror_of, mirror.title, mirror.description, mirror.default_author) == (
        pair,
        "Italy",
        "Rome, May",
        pair.default_author,
    )
    copies = {f.relative_path: f for f in _files(backup)}
    assert set(copies) == {f.relative_path for f in originals}  # the same relative paths
    for original in originals:
        copy = copies[original.relative_path]
        assert file_checksum(backup.full_path / copy.relative_path) == original.checksum
        assert (copy.photo_id, copy.is_primary, copy.role, copy.import_session_id) == (
            original.photo_id,
            original.is_primary,
            original.role,
            mirror.pk,
        )
        assert copy.verified_at is not None and copy.status == "present"
    # The pair is one photo with its JPEG primary on both drives.
    dng = copies["photos/2024/pair/canon_eos_6d.dng"]
    assert dng.photo == copies["photos/2024/pair/canon_eos_6d.JPG"].photo and not dng.is_primary

    index = json.loads((backup.full_path / f"imports/session_{mirror.pk}.json").read_text())
    assert index["import_session"]["mirror_of"] == {"storage_uuid": str(main.storage_uuid), "session_id": pair.pk}
    pair_entry = next(e for e in index["files"].values() if e["original_filename"] == "canon_eos_6d.JPG")
    assert [c["original_filename"] for c in pair_entry["companions"]] == ["canon_eos_6d.dng"]
    assert (backup.full_path / pair_entry["hotpreview"]).read_bytes() == bytes(dng.photo.hotpreview)
    master = json.loads((backup.full_path / "index.json").read_text())
    assert [s["id"] for s in master["import_sessions"]] == [mirror.pk]
    assert index_status(backup)["healthy"]
    # A session index that mirrors nothing has no mirror_of key: format 2 as it always was.
    main_index = json.loads((main.full_path / f"imports/session_{pair.pk}.json").read_text())
    assert "mirror_of" not in main_index["import_session"]

    again = replicate_storage(source=main, target=backup, session_ids=[pair.pk])
    assert (again.copied_files, again.bytes_copied, again.found_in_place, again.already_present) == (0, 0, 0, 3)
    assert ImportSession.objects.filter(file_storage=backup).count() == 1
    assert len(_files(backup)) == 3
    # Nothing of the source was touched.
    assert _tree(main) == main_before


@pytest.mark.django_db
def test_all_sessions_by_default_and_bytes_the_target_holds_are_counted_not_copied(allowed_root, corpus):
    main, backup, archive, pair, other = three_storages(allowed_root, corpus)
    # The backup already holds one of the files, imported there by hand under another path.
    held = _import(backup, allowed_root, corpus, "own", ["jpeg/camera/jolla.jpg"], title="Own")

    report = replicate_storage(source=main, target=backup)

    assert report.session_ids == [pair.pk, other.pk]
    assert (report.copied_files, report.already_present) == (4, 1)
    mirrors = ImportSession.objects.filter(file_storage=backup, mirror_of__isnull=False)
    assert {m.mirror_of_id for m in mirrors} == {pair.pk, other.pk}
    jolla = ImageFile.objects.filter(file_storage=backup, original_filename="jolla.jpg")
    assert [f.import_session_id for f in jolla] == [held.pk]  # not copied a second time

    # On to the third storage: the archive mirrors the backup's sessions, and copying back to main adds nothing.
    onward = replicate_storage(source=backup, target=archive)
    assert onward.copied_files == 5 and onward.failed == []
    archive_mirrors = ImportSession.objects.filter(file_storage=archive).select_related("mirror_of")
    assert {m.mirror_of.file_storage_id for m in archive_mirrors} == {backup.pk}
    sessions_on_main = ImportSession.objects.filter(file_storage=main).count()
    back = replicate_storage(source=backup, target=main)
    assert (back.copied_files, back.already_present) == (0, 5)
    assert ImportSession.objects.filter(file_storage=main).count() == sessions_on_main


@pytest.mark.django_db
def test_a_target_unplugged_mid_run_stops_the_job_marks_nothing_missing_and_a_rerun_completes(
    allowed_root, corpus, monkeypatch, settings
):
    main, backup, _archive, pair, other = three_storages(allowed_root, corpus)
    # One copying thread, so that the drive goes before most files are copied (with 16, all five may be done by then).
    settings.IMALINK_COPY_THREADS = 1
    base = backup.full_path.parent
    unplugged = base.with_name("backup-unplugged")

    def unplug_after_the_first_file(progress):
        if progress.get("files_done") == 1 and base.exists():
            base.rename(unplugged)  # the drive goes away under the running job

    job = jobs.job_start(
        kind="replicate", storage=main, params={"target_storage_uuid": str(backup.storage_uuid)}, enqueue=False
    )
    finished = jobs.job_run(job.pk, on_progress=unplug_after_the_first_file)

    assert finished.status == Job.Status.FAILED
    assert finished.errors[-1]["code"] == "replication_aborted" and finished.errors[-1]["status"] == 409
    assert "nothing was marked missing" in finished.errors[-1]["error"]
    assert not ImageFile.objects.exclude(status="present").exists()
    # The copies placed before the drive went are recorded: the first, and perhaps the one the copying thread had
    # started on when the first was reported (a thread takes its next file before the job hears of the last); one
    # placed while the drive went may have no row yet, and the re-run finds it in place.
    recorded = ImageFile.objects.filter(file_storage=backup).count()
    placed = [p for p in (unplugged / backup.directory_name / "photos").rglob("*") if p.is_file()]
    assert 1 <= recorded <= len(placed) < 5
    assert not base.exists()  # nothing re-created the storage on the empty mount point

    unplugged.rename(base)
    rerun = jobs.job_run(
        jobs.job_start(
            kind="replicate", storage=main, params={"target_storage_uuid": str(backup.storage_uuid)}, enqueue=False
        ).pk
    )
    assert rerun.status == Job.Status.SUCCEEDED, rerun.errors
    assert rerun.result["copied_files"] + rerun.result["found_in_place"] == 5 - recorded
    assert rerun.result["already_present"] == recorded and rerun.result["failed"] == []
    copies = _files(backup)
    assert len(copies) == 5 and len({f.checksum for f in copies}) == 5
    assert all(file_checksum(backup.full_path / f.relative_path) == f.checksum for f in copies)
    assert not list((backup.full_path / ".imalink/tmp").iterdir())
    assert index_status(backup)["healthy"]


@pytest.mark.django_db
def test_a_copy_placed_before_a_crash_is_found_in_place_and_recorded(allowed_root, corpus):
    main, backup, _archive, pair, _other = three_storages(allowed_root, corpus)
    first = ImageFile.objects.filter(import_session=pair).order_by("relative_path").first()
    placed = backup.full_path / first.relative_path
    placed.parent.mkdir(parents=True)
    shutil.copy2(main.full_path / first.relative_path, placed)  # a killed run had linked it, but wrote no row

    report = replicate_storage(source=main, target=backup, session_ids=[pair.pk])

    assert (report.copied_files, report.found_in_place) == (2, 1)
    assert ImageFile.objects.get(file_storage=backup, checksum=first.checksum).relative_path == first.relative_path
    assert not (placed.parent / f"{placed.stem} (2){placed.suffix}").exists()


@pytest.mark.django_db(transaction=True)
def test_the_backups_indexes_alone_bring_every_photo_back_with_the_mirror_link(allowed_root, corpus):
    main, backup, _archive, pair, other = three_storages(allowed_root, corpus)
    replicate_storage(source=main, target=backup)
    photos = {p.hothash: (p.width, p.height, p.taken_at, bytes(p.hotpreview)) for p in Photo.objects.all()}
    files = {(f.relative_path, f.checksum, f.is_primary, f.role) for f in _files(backup)}
    mirrors = {m.pk: m.mirror_of_id for m in ImportSession.objects.filter(file_storage=backup)}

    call_command("flush", interactive=False, verbosity=0)
    report = recover_from_indexes([backup.full_path.parent])  # the main drive is lost

    (storage_report,) = report.storages
    assert storage_report["outcome"] == "restored" and storage_report["problems"] == [], storage_report
    assert {p.hothash: (p.width, p.height, p.taken_at, bytes(p.hotpreview)) for p in Photo.objects.all()} == photos
    recovered = FileStorage.objects.get()
    assert {(f.relative_path, f.checksum, f.is_primary, f.role) for f in _files(recovered)} == files
    assert not ImageFile.objects.exclude(status="present").exists()
    # The sessions keep their ids; the sessions they mirror are not known yet, so the link waits for them.
    assert set(ImportSession.objects.values_list("id", flat=True)) == set(mirrors)
    assert {(m["session_id"], m["linked"]) for m in storage_report["mirrors"]} == {(i, False) for i in mirrors}

    both = recover_from_indexes([main.full_path.parent, backup.full_path.parent])
    assert all(s["problems"] == [] for s in both.storages)
    assert {m.pk: m.mirror_of_id for m in ImportSession.objects.filter(mirror_of__isnull=False)} == mirrors


@pytest.mark.django_db
def test_a_malformed_mirror_of_is_reported_and_the_session_still_recovered(allowed_root, corpus):
    main, backup, _archive, pair, _other = three_storages(allowed_root, corpus)
    replicate_storage(source=main, target=backup, session_ids=[pair.pk])
    mirror = ImportSession.objects.get(file_storage=backup)
    path = backup.full_path / f"imports/session_{mirror.pk}.json"
    data = json.loads(path.read_text())
    data["import_session"]["mirror_of"] = {"storage_uuid": "../../etc", "session_id": "1"}
    path.write_text(json.dumps(data))
    ImageFile.objects.filter(file_storage=backup).delete()
    ImportSession.objects.filter(pk=mirror.pk).delete()

    report = recover_from_indexes([backup.full_path.parent])

    (storage_report,) = report.storages
    assert any("mirror_of" in p["problem"] for p in storage_report["problems"])
    restored = ImportSession.objects.get(pk=mirror.pk)
    assert restored.mirror_of is None and restored.image_files.count() == 3


# --- the route ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_unplugged_source_or_target_a_read_only_target_and_bad_requests_are_refused(
    api, allowed_root, corpus, write_protectable_drive
):
    main, backup, archive, pair, _other = three_storages(allowed_root, corpus)
    url = f"/api/v1/file-storage/{main.storage_uuid}/replicate"
    base = backup.full_path.parent
    base.rename(base.with_name("away"))
    error = assert_error(api.post(url, {"target_storage_uuid": str(backup.storage_uuid)}), 409, "storage_unavailable")
    assert error["details"]["storage_uuid"] == str(backup.storage_uuid)
    base.with_name("away").rename(base)

    main_base = main.full_path.parent
    main_base.rename(main_base.with_name("main-away"))
    assert_error(api.post(url, {"target_storage_uuid": str(backup.storage_uuid)}), 409, "storage_unavailable")
    main_base.with_name("main-away").rename(main_base)

    drive, protect = write_protectable_drive
    read_only = storage_create(base_path=str(drive), display_name="Read-only")
    protect()
    error = assert_error(api.post(url, {"target_storage_uuid": str(read_only.storage_uuid)}), 409)
    assert error["details"]["reason_code"] == "read_only"

    FileStorage.objects.filter(pk=archive.pk).update(is_active=False)
    assert_error(api.post(url, {"target_storage_uuid": str(archive.storage_uuid)}), 409, "storage_inactive")
    assert_error(api.post(url, {"target_storage_uuid": str(main.storage_uuid)}), 400, "same_storage")
    assert_error(
        api.post(url, {"target_storage_uuid": str(backup.storage_uuid), "session_ids": [pair.pk, 999_999]}), 404
    )
    assert_error(api.post(url, {"target_storage_uuid": "9b2e4a52-0000-4000-8000-000000000000"}), 404)
    assert_error(api.post(url, {"target_storage_uuid": str(backup.storage_uuid), "delete": True}), 422)
    assert not Job.objects.exists()  # each was refused before a job was made
    assert not ImageFile.objects.filter(file_storage=backup).exists()


def test_the_route_runs_the_job_in_a_worker_and_answers_with_the_result(celery_worker, api, allowed_root, corpus):
    main, backup, _archive, pair, _other = three_storages(allowed_root, corpus)
    url = f"/api/v1/file-storage/{main.storage_uuid}/replicate"

    response = api.post(url, {"target_storage_uuid": str(backup.storage_uuid), "session_ids": [pair.pk]})

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["status"] == "succeeded" and data["copied_files"] == 3 and data["failed"] == []
    assert set(data) >= {"copied_files", "already_present", "bytes_copied", "failed", "duration_s", "job_id"}
    accepted = api.post(url + "?wait=0", {"target_storage_uuid": str(backup.storage_uuid)})
    assert accepted.status_code == 202
    job = jobs.job_wait(Job.objects.get(pk=accepted.json()["data"]["job_id"]), 120)
    assert job.status == "succeeded" and job.result["copied_files"] == 2 and job.result["already_present"] == 3
    assert os.path.exists(backup.full_path / "photos/2024/other/jolla.jpg")


# --- the schedule ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_schedule_is_installed_off_and_replicates_each_primary_to_its_connected_backups(allowed_root, corpus):
    schedule = PeriodicTask.objects.get(name=SCHEDULE_NAME)
    assert schedule.task == "copies.replicate_primaries" and schedule.enabled is False and schedule.expire_seconds
    main, backup, archive, _pair, _other = three_storages(allowed_root, corpus)
    unplugged = storage_create(base_path=str(allowed_root / "nas"), display_name="Unplugged backup")
    FileStorage.objects.filter(pk__in=[backup.pk, unplugged.pk]).update(role=FileStorage.Role.BACKUP)
    FileStorage.objects.filter(pk=archive.pk).update(role=FileStorage.Role.ARCHIVE)
    shutil.rmtree(unplugged.full_path)

    started = start_scheduled_replications()

    (job,) = Job.objects.filter(pk__in=started)
    assert (job.kind, job.storage_id) == ("replicate", main.pk)
    assert job.params["target_storage_uuid"] == str(backup.storage_uuid)
    assert start_scheduled_replications() == []  # one is already queued for that pair
    finished = jobs.job_run(job.pk)
    assert finished.status == "succeeded" and finished.result["copied_files"] == 5
    assert not ImageFile.objects.filter(file_storage=archive).exists()


@pytest.mark.django_db
def test_between_filesystems_without_copy_file_range_the_copy_goes_through_a_buffer(allowed_root, corpus, monkeypatch):
    main, backup, _archive, pair, _other = three_storages(allowed_root, corpus)

    def cross_device(*args):
        raise OSError(errno.EXDEV, "Invalid cross-device link")  # an old kernel, or two kinds of filesystem

    monkeypatch.setattr(os, "copy_file_range", cross_device)
    report = replicate_storage(source=main, target=backup, session_ids=[pair.pk])

    assert report.copied_files == 3 and report.failed == []
    assert all(file_checksum(backup.full_path / f.relative_path) == f.checksum for f in _files(backup))
