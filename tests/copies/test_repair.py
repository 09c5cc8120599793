"""Repair from a copy (issue 17 point 6): a corrupt or missing file gets its bytes back from a good copy on another
available storage; the damaged file is kept in .imalink/quarantine/, never deleted. Real storages on tmp_path.
"""

import json

import pytest

from copies.repair import repair_storage
from imalink.errors import StorageUnavailable
from imports.models import ImageFile
from indexing.scanner import scan_storage
from indexing.validation import validate_storage
from storages.layout import QUARANTINE_DIR, session_index_file
from tests.conftest import assert_error
from tests.copies.test_copies import import_card, make_card, new_storage, plug_back, unplug


def two_copies(allowed_root, corpus):
    main, backup = new_storage(allowed_root, "Main"), new_storage(allowed_root, "Backup")
    card = make_card(allowed_root, corpus)
    session = import_card(main, card)
    import_card(backup, card)
    return main, backup, session


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def quarantined_files(storage) -> dict[str, bytes]:
    root = storage.full_path / QUARANTINE_DIR
    return (
        {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        if root.exists()
        else {}
    )


def session_entry_status(storage, session, relative_path) -> str:
    index = json.loads((storage.full_path / session_index_file(session.pk)).read_text())
    for entry in index["files"].values():
        if entry["path"] == relative_path:
            return entry["status"]
        for companion in entry.get("companions", []):
            if companion["path"] == relative_path:
                return companion["status"]
    raise AssertionError(f"{relative_path} is not in the index")


@pytest.mark.django_db(transaction=True)
def test_a_corrupted_byte_is_repaired_from_the_copy_and_the_damaged_file_kept_in_quarantine(allowed_root, corpus):
    main, backup, session = two_copies(allowed_root, corpus)
    row = ImageFile.objects.filter(file_storage=main).order_by("id").first()
    path = main.full_path / row.relative_path
    good = path.read_bytes()
    flip_a_byte(path)
    damaged = path.read_bytes()
    assert len(validate_storage(main, mode="full").corrupted_files) == 1
    row.refresh_from_db()
    assert row.status == ImageFile.Status.MODIFIED
    ImageFile.objects.filter(pk=row.pk).update(verified_at=None)

    report = repair_storage(main)

    assert [r["file_id"] for r in report.repaired] == [row.pk] and report.no_good_copy == []
    entry = report.repaired[0]
    assert entry["status"] == "modified" and entry["source_storage_uuid"] == str(backup.storage_uuid)
    assert path.read_bytes() == good
    kept = quarantined_files(main)
    assert list(kept.values()) == [damaged]
    (name,) = kept
    assert name.endswith("/" + row.relative_path) and entry["quarantined"] == f"{QUARANTINE_DIR}/{name}"
    row.refresh_from_db()
    assert row.status == ImageFile.Status.PRESENT and row.verified_at is not None
    assert row.relative_path == entry["path"] == entry["old_path"]
    assert session_entry_status(main, session, row.relative_path) == "present"
    assert validate_storage(main, mode="full").is_clean


@pytest.mark.django_db(transaction=True)
def test_a_deleted_file_is_copied_back_from_the_copy(allowed_root, corpus):
    main, backup, session = two_copies(allowed_root, corpus)
    row = ImageFile.objects.filter(file_storage=main).order_by("id").first()
    path = main.full_path / row.relative_path
    good = path.read_bytes()
    path.unlink()
    assert len(scan_storage(main).missing_files) == 1
    assert session_entry_status(main, session, row.relative_path) == "missing"

    report = repair_storage(main)

    assert [(r["file_id"], r["status"], r["quarantined"]) for r in report.repaired] == [(row.pk, "missing", None)]
    assert path.read_bytes() == good
    assert report.bytes_copied == len(good)
    row.refresh_from_db()
    assert row.status == ImageFile.Status.PRESENT
    assert session_entry_status(main, session, row.relative_path) == "present"
    assert quarantined_files(main) == {}
    assert scan_storage(main).changes_detected is False


@pytest.mark.django_db(transaction=True)
def test_a_file_with_no_copy_elsewhere_is_reported_and_left_as_it_is(allowed_root, corpus):
    main = new_storage(allowed_root, "Main")
    import_card(main, make_card(allowed_root, corpus))
    row = ImageFile.objects.filter(file_storage=main).order_by("id").first()
    path = main.full_path / row.relative_path
    flip_a_byte(path)
    damaged = path.read_bytes()
    validate_storage(main, mode="full")

    report = repair_storage(main)

    assert report.repaired == [] and [e["file_id"] for e in report.no_good_copy] == [row.pk]
    assert path.read_bytes() == damaged and quarantined_files(main) == {}
    row.refresh_from_db()
    assert row.status == ImageFile.Status.MODIFIED


@pytest.mark.django_db(transaction=True)
def test_a_copy_that_is_itself_damaged_is_not_used_and_the_file_goes_back(allowed_root, corpus):
    main, backup, _ = two_copies(allowed_root, corpus)
    row = ImageFile.objects.filter(file_storage=main).order_by("id").first()
    copy = ImageFile.objects.get(file_storage=backup, checksum=row.checksum)
    flip_a_byte(main.full_path / row.relative_path)
    flip_a_byte(backup.full_path / copy.relative_path)  # rotten too, and nobody has noticed yet
    damaged = (main.full_path / row.relative_path).read_bytes()
    validate_storage(main, mode="full")

    report = repair_storage(main)

    assert report.repaired == [] and [e["file_id"] for e in report.no_good_copy] == [row.pk]
    assert "failed verification" in report.no_good_copy[0]["reason"]
    assert (main.full_path / row.relative_path).read_bytes() == damaged
    assert quarantined_files(main) == {}


@pytest.mark.django_db(transaction=True)
def test_a_copy_on_an_unplugged_storage_is_no_good_copy(allowed_root, corpus):
    main, backup, _ = two_copies(allowed_root, corpus)
    row = ImageFile.objects.filter(file_storage=main).order_by("id").first()
    (main.full_path / row.relative_path).unlink()
    scan_storage(main)
    away = unplug(backup)

    report = repair_storage(main)
    assert report.repaired == [] and [e["file_id"] for e in report.no_good_copy] == [row.pk]

    plug_back(backup, away)
    assert [r["file_id"] for r in repair_storage(main).repaired] == [row.pk]


@pytest.mark.django_db(transaction=True)
def test_repair_of_an_unplugged_storage_is_refused_and_nothing_changes(api, allowed_root, corpus):
    main, _backup, _ = two_copies(allowed_root, corpus)
    ImageFile.objects.filter(file_storage=main).update(status=ImageFile.Status.MISSING)
    unplug(main)

    assert_error(api.post(f"/api/v1/storage-index/repair/{main.storage_uuid}"), 409, "storage_unavailable")
    with pytest.raises(StorageUnavailable):
        repair_storage(main)
    assert set(ImageFile.objects.filter(file_storage=main).values_list("status", flat=True)) == {"missing"}


def test_the_route_repairs_through_a_job(celery_worker, api, allowed_root, corpus):
    main, backup, _ = two_copies(allowed_root, corpus)
    row = ImageFile.objects.filter(file_storage=main).order_by("id").first()
    path = main.full_path / row.relative_path
    good = path.read_bytes()
    flip_a_byte(path)
    validate_storage(main, mode="full")

    response = api.post(f"/api/v1/storage-index/repair/{main.storage_uuid}")

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["status"] == "succeeded" and data["job_id"]
    assert [r["file_id"] for r in data["repaired"]] == [row.pk]
    assert data["repaired"][0]["source_storage_uuid"] == str(backup.storage_uuid)
    assert path.read_bytes() == good
    assert len(quarantined_files(main)) == 1
