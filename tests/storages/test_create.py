"""POST /api/v1/file-storage/create: the folder tree, its marker and index, and refusals that touch nothing.

Every refusal is checked on disk and in the database, because a half-made storage is worse than none.
"""

import json
import os
import re
import subprocess
import uuid
from datetime import datetime

import pytest

from storages.layout import FORMAT_VERSION
from storages.models import FileStorage
from tests.conftest import assert_error, require

pytestmark = pytest.mark.django_db

URL = "/api/v1/file-storage/create"


def tree(*roots):
    """Every folder and file under the roots, so a test can prove nothing was added or removed."""
    listing = []
    for root in roots:
        for folder, dirs, files in os.walk(root):
            listing.append((folder, sorted(dirs), sorted(files)))
    return sorted(listing)


def assert_refused(api, body, status, code=None, *, roots, raw=None):
    before, count = tree(*roots), FileStorage.objects.count()
    response = api.post(URL, raw=raw) if raw is not None else api.post(URL, body)
    error = assert_error(response, status, code)
    assert tree(*roots) == before
    assert FileStorage.objects.count() == count
    return error


@pytest.fixture
def read_only_folder(allowed_root):
    """A folder inside the allowed root that refuses writes, even to root (who ignores chmod)."""
    folder = allowed_root / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m,ro", "tmpfs", str(folder)], capture_output=True
        ).returncode
        == 0
    )
    require(mounted, "a read-only mount")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_it_creates_the_folder_tree(api, allowed_root):
    response = api.post(
        URL, {"base_path": str(allowed_root), "display_name": "Main Photo Archive", "description": "Family photos"}
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    storage_uuid = uuid.UUID(data["storage_uuid"])
    assert data["uuid"] == data["storage_uuid"]
    assert data["display_name"] == "Main Photo Archive"
    assert data["description"] == "Family photos"
    assert data["base_path"] == str(allowed_root)
    match = re.fullmatch(r"imalink_(\d{8}_\d{6})_([0-9a-f]{8})", data["directory_name"])
    assert match, data["directory_name"]
    assert match.group(2) == storage_uuid.hex[:8]
    datetime.strptime(match.group(1), "%Y%m%d_%H%M%S")

    root = allowed_root / data["directory_name"]
    assert data["full_path"] == str(root)
    assert os.listdir(allowed_root) == [data["directory_name"]]
    for sub in ("photos", "imports", ".imalink", ".imalink/hotpreviews", ".imalink/index-backups", ".imalink/tmp"):
        assert (root / sub).is_dir(), sub
    assert os.listdir(root / ".imalink" / "tmp") == []


def test_it_writes_the_identity_marker(api, allowed_root, make_storage):
    data = make_storage("Marked")
    root = allowed_root / data["directory_name"]

    marker = json.loads((root / ".imalink" / "storage.json").read_text())

    assert marker["storage_uuid"] == data["storage_uuid"]
    assert marker["format_version"] == FORMAT_VERSION
    assert datetime.fromisoformat(marker["created_at"])


def test_it_writes_the_master_index(api, allowed_root, make_storage):
    data = make_storage("Indexed")

    index = json.loads((allowed_root / data["directory_name"] / "index.json").read_text())

    assert index["storage_info"]["uuid"] == data["storage_uuid"]
    assert index["storage_info"]["directory_name"] == data["directory_name"]
    assert index["format_version"] == FORMAT_VERSION
    assert index["import_sessions"] == []


def test_it_stores_the_row_with_its_accessibility(api, allowed_root, make_storage):
    data = make_storage("In the database")

    storage = FileStorage.objects.get(storage_uuid=data["storage_uuid"])

    assert storage.id == data["id"]
    assert storage.directory_name == data["directory_name"]
    assert storage.base_path == str(allowed_root)
    assert storage.display_name == "In the database"
    assert storage.is_active is True
    assert storage.is_accessible is True
    assert storage.is_writable is True
    assert storage.total_bytes > 0
    assert storage.accessibility_checked_at is not None
    assert storage.accessibility_reason == ""
    assert data["is_accessible"] is True


def test_two_storages_get_two_folders(api, allowed_root, make_storage):
    first, second = make_storage("One"), make_storage("Two")

    assert first["storage_uuid"] != second["storage_uuid"]
    assert sorted(os.listdir(allowed_root)) == sorted([first["directory_name"], second["directory_name"]])


def test_it_refuses_a_relative_path(api, allowed_root):
    error = assert_refused(
        api, {"base_path": "allowed", "display_name": "X"}, 400, "path_rejected", roots=[allowed_root]
    )
    assert error["details"]["field"] == "base_path"


def test_it_refuses_a_missing_path(api, allowed_root):
    assert_refused(
        api,
        {"base_path": str(allowed_root / "not-there"), "display_name": "X"},
        400,
        "path_not_found",
        roots=[allowed_root],
    )


def test_it_refuses_a_path_outside_the_allowed_roots(api, allowed_root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    assert_refused(
        api,
        {"base_path": str(elsewhere), "display_name": "X"},
        400,
        "path_not_allowed",
        roots=[allowed_root, elsewhere],
    )


def test_it_refuses_a_dot_dot_escape(api, allowed_root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    assert_refused(
        api,
        {"base_path": f"{allowed_root}/../elsewhere", "display_name": "X"},
        400,
        "path_rejected",
        roots=[allowed_root, elsewhere],
    )


def test_it_refuses_a_symlink_that_leads_out(api, allowed_root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (allowed_root / "link").symlink_to(elsewhere, target_is_directory=True)

    assert_refused(
        api,
        {"base_path": str(allowed_root / "link"), "display_name": "X"},
        400,
        "path_not_allowed",
        roots=[allowed_root, elsewhere],
    )


def test_it_refuses_a_path_under_a_symlinked_parent(api, allowed_root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "photos").mkdir(parents=True)
    (allowed_root / "drive").symlink_to(elsewhere, target_is_directory=True)

    assert_refused(
        api,
        {"base_path": str(allowed_root / "drive" / "photos"), "display_name": "X"},
        400,
        "path_not_allowed",
        roots=[allowed_root, elsewhere],
    )


def test_it_refuses_a_nul_byte(api, allowed_root):
    assert_refused(
        api, {"base_path": f"{allowed_root}\x00/evil", "display_name": "X"}, 400, "path_rejected", roots=[allowed_root]
    )


def test_it_refuses_a_file(api, allowed_root):
    (allowed_root / "a-file").write_text("not a folder")

    assert_refused(
        api,
        {"base_path": str(allowed_root / "a-file"), "display_name": "X"},
        400,
        "not_a_directory",
        roots=[allowed_root],
    )


def test_it_refuses_malformed_json(api, allowed_root):
    status = api.post(URL, raw="{bad").status_code
    assert 400 <= status < 500
    assert_refused(api, None, status, raw="{bad", roots=[allowed_root])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"base_path": 5, "display_name": "X"}, id="base_path-not-a-string"),
        pytest.param({"base_path": "ALLOWED", "display_name": []}, id="display_name-a-list"),
        pytest.param({"base_path": "ALLOWED"}, id="display_name-missing"),
        pytest.param({"base_path": "ALLOWED", "display_name": ""}, id="display_name-empty"),
        pytest.param({"base_path": "ALLOWED", "display_name": "   "}, id="display_name-blank"),
        pytest.param(
            {"base_path": "ALLOWED", "display_name": "X", "storage_uuid": str(uuid.uuid4())}, id="unknown-field"
        ),
        pytest.param({"display_name": "X"}, id="base_path-missing"),
    ],
)
def test_it_refuses_a_body_that_does_not_validate(api, allowed_root, body):
    body = {key: (str(allowed_root) if value == "ALLOWED" else value) for key, value in body.items()}

    error = assert_refused(api, body, 422, "validation_error", roots=[allowed_root])

    assert error["details"]


def test_it_refuses_a_read_only_folder(api, allowed_root, read_only_folder):
    error = assert_refused(
        api, {"base_path": str(read_only_folder), "display_name": "X"}, 400, "path_not_writable", roots=[allowed_root]
    )

    assert error["details"]["field"] == "base_path"
    assert os.listdir(read_only_folder) == []


def test_storages_alone_writes_no_index_and_a_failing_hook_keeps_nothing(allowed_root, db):
    """storages makes the folder and the row; the master index is the indexing app's hook (indexing/rewrite.py)."""
    from storages.services import storage_create

    storage = storage_create(base_path=str(allowed_root), display_name="Bare")
    assert (storage.full_path / ".imalink" / "storage.json").is_file()
    assert not (storage.full_path / "index.json").exists()

    def index_fails(storage):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        storage_create(base_path=str(allowed_root), display_name="Doomed", on_created=index_fails)
    assert not FileStorage.objects.filter(display_name="Doomed").exists()
    assert os.listdir(allowed_root) == [storage.directory_name]  # the half-made folder was taken away again
