"""Recovery and adopt treat index files as hostile input: each bad entry is reported and skipped, never
obeyed, nothing outside the storage is touched, and the rest of the storage is still recovered.
"""

import copy
import json
import os
import shutil

import pytest
from django.core.management import call_command

from imports.models import ImageFile, ImportSession, Photo
from indexing import recovery
from indexing.recovery import recover_from_indexes
from storages.models import FileStorage
from tests.conftest import assert_error, imported_storage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def archive(allowed_root, corpus):
    """One storage with three photos and written indexes; the database is then wiped."""
    storage, session = imported_storage(allowed_root, corpus)
    base, root, session_id = allowed_root / "drive", storage.full_path, session.pk
    call_command("flush", interactive=False, verbosity=0)
    return base, root, session_id


def outside_state(folder):
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


def edit_session_index(root, session_id, change):
    path = root / f"imports/session_{session_id}.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    # No backup may rescue the hostile file in these tests: the entry itself must be judged.
    shutil.rmtree(root / ".imalink/index-backups", ignore_errors=True)


def problems(report):
    return [p["problem"] for s in report.storages for p in s["problems"]]


@pytest.mark.parametrize(
    ("name", "mutate", "expected"),
    [
        ("dot-dot path", lambda e: e.update(path="photos/../../../../etc/passwd"), "not a path inside the storage"),
        ("absolute path", lambda e: e.update(path="/etc/passwd"), "not a path inside the storage"),
        ("outside photos/", lambda e: e.update(path=".imalink/storage.json"), "not a path inside the storage"),
        ("NUL in path", lambda e: e.update(path="photos/a\x00b.jpg"), "NUL"),
        ("checksum of the wrong kind", lambda e: e.update(checksum="md5:abc"), "not an xxh3_128 checksum"),
        ("size as text", lambda e: e.update(file_size="big"), "file_size is not a whole number"),
        ("companions not a list", lambda e: e.update(companions={"x": 1}), "companions is not a list"),
    ],
)
def test_a_bad_file_entry_is_reported_and_the_rest_is_recovered(archive, tmp_path, name, mutate, expected):
    base, root, session_id = archive
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("do not touch")
    before_outside = outside_state(outside)
    victim = {}

    def change(data):
        key = sorted(data["files"])[0]
        victim["key"] = key
        mutate(data["files"][key])

    edit_session_index(root, session_id, change)
    report = recover_from_indexes([base])
    assert any(expected in p for p in problems(report)), problems(report)
    # The other files are back (with a bad companion list, the entry's own valid file is kept too).
    assert ImageFile.objects.count() == (3 if name == "companions not a list" else 2)
    assert not ImageFile.objects.filter(relative_path__contains="..").exists()
    assert outside_state(outside) == before_outside
    assert os.path.exists("/etc/passwd")


def test_a_path_through_a_symlink_out_of_the_storage_is_refused(archive, tmp_path):
    base, root, session_id = archive
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    os.symlink(outside, root / "photos" / "link")

    def change(data):
        data["files"][sorted(data["files"])[0]]["path"] = "photos/link/secret.jpg"

    edit_session_index(root, session_id, change)
    report = recover_from_indexes([base])
    assert any("symbolic link" in p for p in problems(report))
    assert not ImageFile.objects.filter(relative_path="photos/link/secret.jpg").exists()
    assert (outside / "secret.jpg").read_bytes() == b"secret"


def test_wrong_types_in_photo_metadata_are_reported_and_the_photo_kept(archive):
    base, root, session_id = archive

    def change(data):
        entry = data["files"][sorted(data["files"])[0]]
        entry["photo"] = {"title": ["not", "a", "string"], "rating": "five", "tags": "notalist", "author": 42}
        entry["width"] = -3
        entry["taken_at"] = "yesterday"

    edit_session_index(root, session_id, change)
    report = recover_from_indexes([base])
    found = problems(report)
    for expected in (
        "photo.title is a list",
        "photo.rating is not a whole number",
        "photo.tags is not a list",
        "author is not an object",
        "width=-3 is out of range",
        "is not a date and time",
    ):
        assert any(expected in p for p in found), (expected, found)
    assert Photo.objects.count() == 3 and ImageFile.objects.count() == 3


def test_a_hotpreview_that_does_not_match_its_hothash_is_not_used(archive):
    base, root, session_id = archive

    def change(data):
        key = next(k for k, e in sorted(data["files"].items()) if e["has_hotpreview"])
        data["files"][key]["hotpreview"] = "../../../etc/passwd"

    edit_session_index(root, session_id, change)
    report = recover_from_indexes([base])
    assert any("does not match its hothash" in p for p in problems(report))
    assert Photo.objects.filter(has_hotpreview=True, hotpreview__isnull=True).count() == 1
    assert Photo.objects.count() == 3


def test_a_key_that_is_not_a_hothash_is_skipped(archive):
    base, root, session_id = archive

    def change(data):
        key = sorted(data["files"])[0]
        data["files"]["../../evil"] = data["files"].pop(key)

    edit_session_index(root, session_id, change)
    report = recover_from_indexes([base])
    assert any("not a hothash" in p for p in problems(report))
    assert ImageFile.objects.count() == 2


def test_duplicate_session_ids_are_reported_and_the_second_skipped(archive):
    base, root, session_id = archive
    original = json.loads((root / f"imports/session_{session_id}.json").read_text())
    twin = copy.deepcopy(original)
    twin["import_session"]["title"] = "An impostor"
    (root / "imports/session_999999.json").write_text(json.dumps(twin))
    report = recover_from_indexes([base])
    assert any(f"session id {session_id} appears in two index files" in p for p in problems(report))
    assert list(ImportSession.objects.values_list("title", flat=True)) == ["Card"]


@pytest.mark.parametrize("content", ['{"import_session": {"id": 3', "[]", '{"import_session": "x", "files": 5}', ""])
def test_a_truncated_or_mistyped_session_index_is_reported_and_the_storage_still_recovered(archive, content):
    base, root, session_id = archive
    shutil.rmtree(root / ".imalink/index-backups", ignore_errors=True)
    (root / f"imports/session_{session_id}.json").write_text(content)
    report = recover_from_indexes([base])
    (storage,) = report.storages
    assert storage["outcome"] == "restored" and storage["problems"]
    assert storage["index_sources"][f"imports/session_{session_id}.json"] == "unusable"
    assert FileStorage.objects.count() == 1


def test_fifty_megabytes_of_nesting_do_not_crash_recovery(archive):
    base, root, session_id = archive
    shutil.rmtree(root / ".imalink/index-backups", ignore_errors=True)
    with open(root / f"imports/session_{session_id}.json", "w") as handle:
        for _ in range(50):
            handle.write("[" * (1024 * 1024))
    report = recover_from_indexes([base])
    assert any("nested too deeply" in p or "corrupt" in p for p in problems(report))
    assert FileStorage.objects.count() == 1


def test_a_giant_index_is_refused_by_its_size(archive, monkeypatch):
    base, root, session_id = archive
    shutil.rmtree(root / ".imalink/index-backups", ignore_errors=True)
    monkeypatch.setattr(recovery, "RECOVERY_MAX_INDEX_BYTES", 1000)
    report = recover_from_indexes([base])
    assert any("too large" in p for p in problems(report))


def test_a_master_index_with_a_hostile_session_list_is_reported(archive):
    base, root, session_id = archive
    master = json.loads((root / "index.json").read_text())
    master["import_sessions"].append({"index_file": "../../etc/passwd"})
    master["import_sessions"].append("not an object")
    (root / "index.json").write_text(json.dumps(master))
    report = recover_from_indexes([base])
    found = problems(report)
    assert any("is not imports/session_<id>.json" in p for p in found) and any("not an object" in p for p in found)
    assert ImageFile.objects.count() == 3


def test_adopt_registers_one_storage_folder(api, archive, celery_worker):
    base, root, session_id = archive
    from django.contrib.auth import get_user_model

    from imalink.models import ApiToken

    user = get_user_model().objects.create_superuser("admin2", "", "pw-for-tests-123")
    api.headers["Authorization"] = f"Bearer {ApiToken.issue(user=user)[1]}"
    response = api.post("/api/v1/file-storage/adopt", {"path": str(root)})
    assert response.status_code == 200, response.content
    (storage,) = response.json()["data"]["storages"]
    assert storage["outcome"] == "restored" and storage["files_restored"] == 3
    assert ImportSession.objects.get(pk=session_id).title == "Card"
    assert (
        api.post("/api/v1/file-storage/adopt", {"path": str(root)}).json()["data"]["storages"][0]["outcome"]
        == "unchanged"
    )
    assert_error(api.post("/api/v1/file-storage/adopt", {"path": str(base)}), 400, "not_a_storage")
    assert_error(api.post("/api/v1/file-storage/adopt", {"path": "/etc"}), 400, "path_not_allowed")
    assert_error(api.post("/api/v1/file-storage/adopt", {"path": str(root) + "/../x"}), 400, "path_rejected")
