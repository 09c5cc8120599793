"""POST /api/v1/file-storage/{uuid}/accessibility: each way a drive can be gone, and the result kept on the row.

The check only looks: a storage, present or not, must be left exactly as it was.
"""

import json
import os
import uuid
from datetime import datetime, timedelta

import pytest

from storages.models import FileStorage

pytestmark = pytest.mark.django_db


def check(api, storage):
    response = api.post(f"/api/v1/file-storage/{storage['storage_uuid']}/accessibility")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    return body["data"]


def contents(root):
    """Every file under root with its bytes and mtime, and every folder: what a read-only check must not change."""
    listing = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            listing[os.path.join(folder, name)] = "dir"
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                listing[path] = (handle.read(), os.stat(path).st_mtime_ns)
    return listing


def assert_unavailable(api, storage, reason_code, *, roots):
    before = {root: contents(root) for root in roots}

    data = check(api, storage)

    assert data["is_accessible"] is False
    assert data["is_writable"] is False
    assert data["reason_code"] == reason_code, data
    assert data["reason"]
    row = FileStorage.objects.get(storage_uuid=storage["storage_uuid"])
    assert row.is_accessible is False
    assert row.is_writable is False
    assert row.accessibility_reason == data["reason"]
    assert row.accessibility_checked_at is not None
    assert {root: contents(root) for root in roots} == before
    listed = api.get(f"/api/v1/file-storage/{storage['storage_uuid']}").json()["data"]
    assert (listed["is_accessible"], listed["accessibility_reason"]) == (False, data["reason"])
    return data


def test_it_reports_a_healthy_storage(api, allowed_root, make_storage):
    storage = make_storage("Healthy")
    root = allowed_root / storage["directory_name"]
    before = contents(root)

    data = check(api, storage)

    assert data["storage_uuid"] == storage["storage_uuid"]
    assert data["full_path"] == str(root)
    assert data["is_accessible"] is True
    assert data["is_writable"] is True
    assert data["reason"] is None
    assert data["reason_code"] is None
    assert isinstance(data["free_space_gb"], float) and isinstance(data["total_space_gb"], float)
    assert 0 <= data["free_space_gb"] <= data["total_space_gb"]
    assert data["total_bytes"] > 0
    assert data["checked_at"]
    assert contents(root) == before
    row = FileStorage.objects.get(storage_uuid=storage["storage_uuid"])
    assert (row.is_accessible, row.is_writable, row.accessibility_reason) == (True, True, "")
    assert row.total_bytes == data["total_bytes"]


def test_it_records_a_newer_check_each_time(api, make_storage):
    storage = make_storage("Checked twice")
    first = datetime.fromisoformat(check(api, storage)["checked_at"])

    second = datetime.fromisoformat(check(api, storage)["checked_at"])

    assert second >= first
    stored = FileStorage.objects.get(storage_uuid=storage["storage_uuid"]).accessibility_checked_at
    assert abs(stored - second) < timedelta(milliseconds=1)


def test_it_reports_a_missing_base_path(api, allowed_root, make_storage):
    drive = allowed_root / "drive"
    drive.mkdir()
    storage = make_storage("Unplugged", base=drive)
    drive.rename(allowed_root / "drive-elsewhere")

    assert_unavailable(api, storage, "path_missing", roots=[allowed_root])
    assert not drive.exists()


def test_it_reports_an_unmounted_drive(api, allowed_root, make_storage):
    drive = allowed_root / "drive"
    drive.mkdir()
    storage = make_storage("Not mounted", base=drive)
    (drive / storage["directory_name"]).rename(allowed_root / "moved-away")

    assert_unavailable(api, storage, "not_mounted", roots=[allowed_root])
    assert os.listdir(drive) == []


def test_it_reports_a_missing_storage_folder(api, allowed_root, make_storage):
    drive = allowed_root / "drive"
    drive.mkdir()
    storage = make_storage("Swapped drive", base=drive)
    (drive / storage["directory_name"]).rename(allowed_root / "moved-away")
    (drive / "someone-elses-files").mkdir()

    assert_unavailable(api, storage, "storage_folder_missing", roots=[allowed_root])


def test_it_reports_a_deleted_marker(api, allowed_root, make_storage):
    storage = make_storage("No marker")
    root = allowed_root / storage["directory_name"]
    (root / ".imalink" / "storage.json").unlink()

    assert_unavailable(api, storage, "marker_missing", roots=[allowed_root])
    assert not (root / ".imalink" / "storage.json").exists()


def test_it_reports_a_marker_of_another_storage(api, allowed_root, make_storage):
    storage = make_storage("Impostor")
    marker = allowed_root / storage["directory_name"] / ".imalink" / "storage.json"
    other = str(uuid.uuid4())
    marker.write_text(
        json.dumps({"storage_uuid": other, "created_at": "2024-10-18T14:30:52+00:00", "format_version": 1})
    )

    data = assert_unavailable(api, storage, "marker_mismatch", roots=[allowed_root])

    assert other in data["reason"]
    assert json.loads(marker.read_text())["storage_uuid"] == other


@pytest.mark.parametrize(
    "garbage",
    [
        b"{not json",
        b"",
        b"[]",
        b'{"storage_uuid": 7}',
        b'{"storage_uuid": "not-a-uuid"}',
        b"\xff\xfe\x00",
        b"[" * 100_000,
    ],
    ids=["truncated", "empty", "a-list", "a-number", "not-a-uuid", "binary", "huge"],
)
def test_it_reports_a_garbage_marker(api, allowed_root, make_storage, garbage):
    storage = make_storage("Garbled")
    marker = allowed_root / storage["directory_name"] / ".imalink" / "storage.json"
    marker.write_bytes(garbage)

    assert_unavailable(api, storage, "marker_missing", roots=[allowed_root])
    assert marker.read_bytes() == garbage


def test_it_reports_a_read_only_drive(api, make_storage, write_protectable_drive):
    drive, protect = write_protectable_drive
    storage = make_storage("Write-protected", base=drive)
    root = drive / storage["directory_name"]
    protect()
    before = contents(root)

    data = check(api, storage)

    assert data["is_accessible"] is True
    assert data["is_writable"] is False
    assert data["reason_code"] == "read_only"
    assert data["reason"]
    assert data["total_space_gb"] is not None
    row = FileStorage.objects.get(storage_uuid=storage["storage_uuid"])
    assert (row.is_accessible, row.is_writable) == (True, False)
    assert row.accessibility_reason == data["reason"]
    assert contents(root) == before


def test_it_finds_the_storage_again_when_the_drive_returns(api, allowed_root, make_storage):
    drive = allowed_root / "drive"
    drive.mkdir()
    storage = make_storage("Comes and goes", base=drive)
    drive.rename(allowed_root / "away")
    assert check(api, storage)["is_accessible"] is False

    (allowed_root / "away").rename(drive)
    data = check(api, storage)

    assert (data["is_accessible"], data["is_writable"], data["reason_code"]) == (True, True, None)
    row = FileStorage.objects.get(storage_uuid=storage["storage_uuid"])
    assert (row.is_accessible, row.accessibility_reason) == (True, "")
