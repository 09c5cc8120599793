"""Drive migration (seed Workflow 5, DESIGN §6): a storage's base_path moves only to a verified copy of it,
through PUT /api/v1/file-storage/{uuid} and through the admin form alike, and the old drive is never written.
"""

import json
import os
import shutil
import subprocess
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from imports.models import Author, ImportSession
from indexing.rewrite import import_folder
from indexing.writer import write_storage_indexes
from storages.models import FileStorage
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

BASE = "/api/v1/file-storage"
CARD_FILES = ["jpeg/camera/DSCN0010.jpg", "jpeg/camera/jolla.jpg"]


def copy_storage(src, dst):
    """What the user does in Workflow 5 step 2. rsync when it is installed; copytree keeps the same tree otherwise."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if shutil.which("rsync"):
        subprocess.run(["rsync", "-a", f"{src}/", f"{dst}/"], check=True)
    else:
        shutil.copytree(src, dst, symlinks=True)


def snapshot(folder):
    """Every path under folder with its size and mtime: equal snapshots mean nothing was written there."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            state[os.path.relpath(path, folder)] = (st.st_size, st.st_mtime_ns)
    return state


@pytest.fixture
def drive_a(allowed_root):
    folder = allowed_root / "old"
    folder.mkdir()
    return folder


@pytest.fixture
def drive_b(allowed_root):
    folder = allowed_root / "new"
    folder.mkdir()
    return folder


@pytest.fixture
def made(make_storage, drive_a):
    return make_storage("Old 1TB drive", base=drive_a)


@pytest.fixture
def imported(made, allowed_root, corpus):
    """The storage on drive A with two imported photos and every index written."""
    storage = FileStorage.objects.get(storage_uuid=made["uuid"])
    card = allowed_root / "card"
    card.mkdir()
    for relative in CARD_FILES:
        shutil.copy(corpus / relative, card)
    session = ImportSession.objects.create(
        title="Card", file_storage=storage, default_author=Author.objects.create(name="Kari")
    )
    report = import_folder(session_id=session.pk, source_path=str(card))
    assert (report.imported, report.failed) == (2, 0)
    write_storage_indexes(storage)
    return made


def read_json(path):
    return json.loads(path.read_bytes())


# --- through the API ---------------------------------------------------------------------------------


def test_workflow_5_moves_a_storage_to_a_copy_on_a_new_drive(api, imported, drive_a, drive_b):
    uuid_, name = imported["uuid"], imported["directory_name"]
    old_root, new_root = drive_a / name, drive_b / name
    old_index = (old_root / "index.json").read_bytes()
    assert read_json(old_root / "index.json")["storage_info"]["base_path"] == str(drive_a)

    copy_storage(old_root, new_root)  # step 2
    before_on_a = snapshot(drive_a)
    response = api.put(f"{BASE}/{uuid_}", {"base_path": str(drive_b)})  # step 3

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert (data["base_path"], data["full_path"]) == (str(drive_b), str(new_root))
    assert data["is_accessible"] is True
    migration = data["migration"]
    assert (migration["old_base_path"], migration["new_base_path"], migration["changed"]) == (
        str(drive_a),
        str(drive_b),
        True,
    )
    assert migration["master_index_rewritten"] is True
    assert migration["accessibility"]["is_accessible"] is True
    assert migration["index_status"] == {
        "healthy": True,
        "master_index_exists": True,
        "master_index_status": "current",
        "stale_session_ids": [],
        "missing_session_ids": [],
        "corrupt_session_ids": [],
    }
    assert FileStorage.objects.get(storage_uuid=uuid_).base_path == str(drive_b)

    # Step 4: verify.
    checked = api.post(f"{BASE}/{uuid_}/accessibility")
    assert checked.status_code == 200, checked.content
    assert checked.json()["data"]["is_accessible"] is True
    assert checked.json()["data"]["full_path"] == str(new_root)
    status = api.get(f"/api/v1/storage-index/status/{uuid_}")
    assert status.status_code == 200, status.content
    assert status.json()["data"]["master_index_exists"] is True
    assert status.json()["data"]["healthy"] is True
    assert all(s["status"] == "current" for s in status.json()["data"]["sessions"])

    info = read_json(new_root / "index.json")["storage_info"]
    assert (info["base_path"], info["full_path"]) == (str(drive_b), str(new_root))
    # The old drive is left exactly as it was.
    assert (old_root / "index.json").read_bytes() == old_index
    assert snapshot(drive_a) == before_on_a

    # Step 5: retire the old entry (here the same storage, since it moved rather than being recreated).
    response = api.post(f"{BASE}/{uuid_}/deactivate")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["is_active"] is False


def test_it_renames_and_migrates_in_one_request(api, made, drive_a, drive_b):
    copy_storage(drive_a / made["directory_name"], drive_b / made["directory_name"])

    response = api.put(f"{BASE}/{made['uuid']}", {"display_name": "New 4TB drive", "base_path": str(drive_b)})

    assert response.status_code == 200, response.content
    storage = FileStorage.objects.get(storage_uuid=made["uuid"])
    assert (storage.display_name, storage.base_path) == ("New 4TB drive", str(drive_b))
    assert read_json(storage.full_path / "index.json")["storage_info"]["display_name"] == "New 4TB drive"


def test_the_same_base_path_is_a_no_op(api, made, drive_a):
    index = drive_a / made["directory_name"] / "index.json"
    before = index.read_bytes()

    response = api.put(f"{BASE}/{made['uuid']}", {"base_path": str(drive_a)})

    assert response.status_code == 200, response.content
    migration = response.json()["data"]["migration"]
    assert (migration["changed"], migration["master_index_rewritten"]) == (False, False)
    assert FileStorage.objects.get(storage_uuid=made["uuid"]).base_path == str(drive_a)
    assert index.read_bytes() == before


def test_a_put_without_base_path_has_no_migration(api, made):
    response = api.put(f"{BASE}/{made['uuid']}", {"description": "Just a note"})

    assert response.status_code == 200, response.content
    assert response.json()["data"]["migration"] is None


def test_it_accepts_a_base_path_reached_through_a_symlink_and_stores_the_real_one(
    api, made, drive_a, drive_b, allowed_root
):
    copy_storage(drive_a / made["directory_name"], drive_b / made["directory_name"])
    link = allowed_root / "mnt-new"
    link.symlink_to(drive_b)

    response = api.put(f"{BASE}/{made['uuid']}", {"base_path": str(link)})

    assert response.status_code == 200, response.content
    assert FileStorage.objects.get(storage_uuid=made["uuid"]).base_path == str(drive_b)


# --- refusals: 400 with the reason, and nothing changed anywhere --------------------------------------


def refused(api, made, tmp_path, new_base_path, status, code, *words):
    before = snapshot(tmp_path)
    response = api.put(f"{BASE}/{made['uuid']}", {"display_name": "Should not stick", "base_path": new_base_path})
    error = assert_error(response, status, code)
    for word in words:
        assert word in error["message"], error
    storage = FileStorage.objects.get(storage_uuid=made["uuid"])
    assert (storage.base_path, storage.display_name) == (made["base_path"], made["display_name"])
    assert snapshot(tmp_path) == before
    return error


def test_it_refuses_a_new_base_without_the_storage_folder(api, made, drive_b, tmp_path):
    error = refused(
        api,
        made,
        tmp_path,
        str(drive_b),
        400,
        "migration_refused",
        f"has no folder {made['directory_name']}",
        "rsync -a",
    )
    assert error["details"]["reason_code"] == "storage_folder_missing"


def test_it_refuses_a_copy_without_its_marker(api, made, drive_a, drive_b, tmp_path):
    copy = drive_b / made["directory_name"]
    copy_storage(drive_a / made["directory_name"], copy)
    (copy / ".imalink" / "storage.json").unlink()

    error = refused(api, made, tmp_path, str(drive_b), 400, "migration_refused", "storage.json", "incomplete")
    assert error["details"]["reason_code"] == "marker_missing"


def test_it_refuses_a_copy_whose_marker_is_garbage(api, made, drive_a, drive_b, tmp_path):
    copy = drive_b / made["directory_name"]
    copy_storage(drive_a / made["directory_name"], copy)
    (copy / ".imalink" / "storage.json").write_text("{not json")

    error = refused(api, made, tmp_path, str(drive_b), 400, "migration_refused", "not a valid storage marker")
    assert error["details"]["reason_code"] == "marker_unreadable"


def test_it_refuses_a_folder_whose_marker_holds_another_uuid(api, made, drive_a, drive_b, tmp_path):
    copy = drive_b / made["directory_name"]
    copy_storage(drive_a / made["directory_name"], copy)
    other = str(uuid.uuid4())
    (copy / ".imalink" / "storage.json").write_text(json.dumps({"storage_uuid": other}))

    error = refused(api, made, tmp_path, str(drive_b), 400, "migration_refused", "another storage", other)
    assert error["details"]["reason_code"] == "marker_mismatch"


def test_it_refuses_a_relative_path(api, made, tmp_path):
    refused(api, made, tmp_path, "new", 400, "path_rejected", "absolute")


@pytest.mark.parametrize("path", ["/{root}/new/../old", "/{root}/./new"])
def test_it_refuses_a_path_that_is_not_normalised(api, made, drive_b, allowed_root, tmp_path, path):
    refused(api, made, tmp_path, path.format(root=str(allowed_root).lstrip("/")), 400, "path_rejected", "normalised")


def test_it_refuses_a_path_outside_the_allowed_roots(api, made, drive_a, tmp_path):
    outside = tmp_path / "outside"
    copy_storage(
        drive_a / made["directory_name"], outside / made["directory_name"]
    )  # a perfect copy, in the wrong place

    refused(api, made, tmp_path, str(outside), 400, "path_not_allowed", "outside")


def test_it_refuses_a_storage_folder_that_links_outside_the_allowed_roots(api, made, drive_a, drive_b, tmp_path):
    outside = tmp_path / "outside"
    copy_storage(drive_a / made["directory_name"], outside / made["directory_name"])
    (drive_b / made["directory_name"]).symlink_to(outside / made["directory_name"])

    error = refused(api, made, tmp_path, str(drive_b), 400, "migration_refused", "outside")
    assert error["details"]["reason_code"] == "storage_folder_not_allowed"


def test_it_refuses_a_path_that_does_not_exist(api, made, allowed_root, tmp_path):
    refused(api, made, tmp_path, str(allowed_root / "not-mounted"), 400, "path_not_found", "does not exist")


def test_it_refuses_an_empty_base_path(api, made, tmp_path):
    refused(api, made, tmp_path, "", 400, "path_rejected")


# --- through the admin --------------------------------------------------------------------------------


@pytest.fixture
def browser(admin_user):
    c = Client()
    c.force_login(admin_user)
    return c


def change_form(browser, storage, base_path):
    url = reverse("admin:storages_filestorage_change", args=[storage.pk])
    return browser.post(
        url,
        {
            "display_name": storage.display_name,
            "description": storage.description,
            "is_active": "on" if storage.is_active else "",
            "base_path": base_path,
            "_save": "Save",
        },
    )


def test_the_admin_form_refuses_a_base_path_without_a_copy(browser, made, drive_b, tmp_path):
    storage = FileStorage.objects.get(storage_uuid=made["uuid"])
    before = snapshot(tmp_path)

    response = change_form(browser, storage, str(drive_b))

    assert response.status_code == 200
    assert f"has no folder {made['directory_name']}: copy the storage there first" in response.content.decode()
    assert "base_path" in response.context["adminform"].form.errors
    assert FileStorage.objects.get(pk=storage.pk).base_path == made["base_path"]
    assert snapshot(tmp_path) == before


def test_the_admin_form_refuses_another_storages_folder(browser, made, drive_a, drive_b):
    copy = drive_b / made["directory_name"]
    copy_storage(drive_a / made["directory_name"], copy)
    (copy / ".imalink" / "storage.json").write_text(json.dumps({"storage_uuid": str(uuid.uuid4())}))
    storage = FileStorage.objects.get(storage_uuid=made["uuid"])

    response = change_form(browser, storage, str(drive_b))

    assert response.status_code == 200
    assert "belongs to another storage" in response.content.decode()
    assert FileStorage.objects.get(pk=storage.pk).base_path == made["base_path"]


def test_the_admin_form_migrates_to_a_verified_copy(browser, imported, drive_a, drive_b):
    name = imported["directory_name"]
    copy_storage(drive_a / name, drive_b / name)
    old_index = (drive_a / name / "index.json").read_bytes()
    storage = FileStorage.objects.get(storage_uuid=imported["uuid"])

    response = change_form(browser, storage, str(drive_b))

    assert response.status_code == 302, response.content.decode()[-3000:]
    storage.refresh_from_db()
    assert storage.base_path == str(drive_b)
    assert storage.is_accessible is True
    assert read_json(drive_b / name / "index.json")["storage_info"]["base_path"] == str(drive_b)
    assert (drive_a / name / "index.json").read_bytes() == old_index


def test_the_admin_keeps_identity_fields_read_only_and_adds_nothing(browser, made):
    storage = FileStorage.objects.get(storage_uuid=made["uuid"])
    form = browser.get(reverse("admin:storages_filestorage_change", args=[storage.pk])).context["adminform"].form
    assert set(form.fields) == {"display_name", "description", "is_active", "base_path"}

    response = browser.post(
        reverse("admin:storages_filestorage_change", args=[storage.pk]),
        {
            "display_name": "Renamed in the admin",
            "description": "",
            "is_active": "on",
            "base_path": storage.base_path,
            "directory_name": "imalink_hijacked",
            "storage_uuid": str(uuid.uuid4()),
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    after = FileStorage.objects.get(pk=storage.pk)
    assert (after.display_name, after.directory_name, after.storage_uuid) == (
        "Renamed in the admin",
        made["directory_name"],
        storage.storage_uuid,
    )
    assert browser.get(reverse("admin:storages_filestorage_add")).status_code == 403


# --- Workflow 5 step 5 ---------------------------------------------------------------------------------


def test_it_deactivates_a_storage_whose_drive_is_unplugged(api, made, drive_a, allowed_root):
    drive_a.rename(allowed_root / "unplugged")

    response = api.post(f"{BASE}/{made['uuid']}/deactivate")

    assert response.status_code == 200, response.content
    assert response.json()["data"]["is_active"] is False
    assert FileStorage.objects.get(storage_uuid=made["uuid"]).is_active is False
