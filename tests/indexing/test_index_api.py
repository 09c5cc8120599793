"""Routes under /api/v1/storage-index/ for the indexes: writing them as jobs on a real worker, their status,
reading them as they are on disk, refusals, and the seed's Workflow 8 validation script.
"""

import json
import os
import shutil
import time

import pytest

from imports.models import Author, ImportSession
from indexing.rewrite import import_folder
from indexing.writer import write_storage_indexes
from jobs.models import Job
from storages.models import FileStorage
from tests.conftest import assert_error
from tests.seed import SEED, SeedRequests, seed_python_block

CARD_FILES = [
    "jpeg/camera/DSCN0010.jpg",
    "jpeg/camera/jolla.jpg",
    "raw/pair/canon_eos_6d.dng",
    "raw/pair/canon_eos_6d.JPG",
]


@pytest.fixture
def storage(make_storage):
    return FileStorage.objects.get(storage_uuid=make_storage("Main")["uuid"])


@pytest.fixture
def imported(storage, allowed_root, corpus):
    """A storage with two import sessions: a card of four files (three photos) and a second card of one."""
    card = allowed_root / "card"
    card.mkdir()
    for relative in CARD_FILES:
        shutil.copy(corpus / relative, card)
    second = allowed_root / "second"
    second.mkdir()
    shutil.copy(corpus / "jpeg/camera/door-knocker.jpg", second)
    author = Author.objects.create(name="Kari")
    sessions = []
    for title, folder in (("Italy", card), ("Door", second)):
        session = ImportSession.objects.create(title=title, file_storage=storage, default_author=author)
        import_folder(session_id=session.pk, source_path=str(folder), target_subdirectory=f"2024/{title.lower()}")
        sessions.append(ImportSession.objects.get(pk=session.pk))
    return sessions


def index_files(storage):
    root = storage.full_path
    return sorted(
        p.relative_to(root).as_posix() for p in [root / "index.json", *(root / "imports").glob("*.json")] if p.exists()
    )


def remove_indexes(storage):
    for relative in index_files(storage):
        (storage.full_path / relative).unlink()
    assert index_files(storage) == []


def tree(folder):
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def wait_for_job(api, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/api/v1/jobs/{job_id}").json()["data"]
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


# --- writing, as jobs on a real worker --------------------------------------------------------------


def test_post_session_writes_its_index_and_answers_with_the_result(celery_worker, api, storage, imported):
    first, second = imported
    remove_indexes(storage)
    response = api.post(f"/api/v1/storage-index/session/{first.pk}")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["index_files"] == [f"imports/session_{first.pk}.json"]
    assert data["session_ids"] == [first.pk] and data["written"] == 1 and data["job_id"]
    assert data["storage_uuid"] == str(storage.storage_uuid)
    assert index_files(storage) == [f"imports/session_{first.pk}.json"]
    index = json.loads((storage.full_path / data["index_files"][0]).read_bytes())
    assert index["import_session"]["id"] == first.pk and len(index["files"]) == 3
    assert Job.objects.get(pk=data["job_id"]).kind == "index_session"


def test_post_session_with_wait_0_answers_202_and_the_job_finishes(celery_worker, api, storage, imported):
    first, _ = imported
    remove_indexes(storage)
    response = api.post(f"/api/v1/storage-index/session/{first.pk}?wait=0")
    assert response.status_code == 202, response.content
    data = response.json()["data"]
    assert data["status_url"] == f"/api/v1/jobs/{data['job_id']}"
    job = wait_for_job(api, data["job_id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["index_files"] == [f"imports/session_{first.pk}.json"]
    assert (storage.full_path / f"imports/session_{first.pk}.json").is_file()


def test_post_generate_writes_every_session_index_and_the_master(celery_worker, api, storage, imported):
    first, second = imported
    remove_indexes(storage)
    response = api.post(f"/api/v1/storage-index/generate/{storage.storage_uuid}")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    expected = [f"imports/session_{first.pk}.json", f"imports/session_{second.pk}.json", "index.json"]
    assert data["index_files"] == expected and data["written"] == 3
    assert data["session_ids"] == [first.pk, second.pk]
    assert index_files(storage) == sorted(expected)
    master = json.loads((storage.full_path / "index.json").read_bytes())
    assert [(s["id"], s["file_count"]) for s in master["import_sessions"]] == [(first.pk, 4), (second.pk, 1)]
    assert len(json.loads((storage.full_path / expected[1]).read_bytes())["files"]) == 1
    # Run again: all current, nothing rewritten.
    again = api.post(f"/api/v1/storage-index/generate/{storage.storage_uuid}").json()["data"]
    assert again["written"] == 0


# --- status -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_status_reports_each_index(api, storage, imported):
    first, second = imported
    write_storage_indexes(storage)
    storage.refresh_from_db()
    data = api.get(f"/api/v1/storage-index/status/{storage.storage_uuid}").json()["data"]
    assert data["master_index_exists"] is True and data["master_index"]["status"] == "current"
    assert [(s["session_id"], s["exists"], s["readable"], s["current"], s["status"]) for s in data["sessions"]] == [
        (first.pk, True, True, True, "current"),
        (second.pk, True, True, True, "current"),
    ]
    assert data["sessions"][0]["index_file"] == f"imports/session_{first.pk}.json"
    assert data["healthy"] is True
    assert data["last_generated"] and data["last_generated"].startswith(storage.last_index_at.isoformat()[:19])
    names = [b["name"] for b in data["backups"]]
    assert names and set(names) == set(os.listdir(storage.full_path / ".imalink/index-backups"))
    assert any(n.startswith("index.") for n in names) and all(b["size"] > 0 for b in data["backups"])

    (storage.full_path / "index.json").unlink()
    (storage.full_path / f"imports/session_{second.pk}.json").write_text("{ not json")
    data = api.get(f"/api/v1/storage-index/status/{storage.storage_uuid}").json()["data"]
    assert data["master_index_exists"] is False and data["master_index"]["status"] == "missing"
    assert [(s["exists"], s["readable"], s["status"]) for s in data["sessions"]] == [
        (True, True, "current"),
        (True, False, "corrupt"),
    ]
    assert data["healthy"] is False


@pytest.mark.django_db
def test_status_survives_a_hand_edited_index_with_an_odd_generated_at(api, storage, imported):
    write_storage_indexes(storage)
    master_path = storage.full_path / "index.json"
    master = json.loads(master_path.read_bytes())
    master["generated_at"] = 20240101
    master_path.write_text(json.dumps(master))
    response = api.get(f"/api/v1/storage-index/status/{storage.storage_uuid}")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["master_index"]["readable"] is True


# --- reading the files on disk ----------------------------------------------------------------------


@pytest.mark.django_db
def test_get_master_and_session_return_the_files_as_they_are_on_disk(api, storage, imported):
    first, _ = imported
    write_storage_indexes(storage)
    master_path = storage.full_path / "index.json"
    master = json.loads(master_path.read_bytes())
    master["storage_info"]["display_name"] = "Edited by hand"
    master["hand_written"] = True
    master_path.write_text(json.dumps(master))
    data = api.get(f"/api/v1/storage-index/master/{storage.storage_uuid}").json()["data"]
    assert data["storage_info"]["display_name"] == "Edited by hand" and data["hand_written"] is True

    session_path = storage.full_path / f"imports/session_{first.pk}.json"
    index = json.loads(session_path.read_bytes())
    index["import_session"]["title"] = "Edited title"
    index["files"] = {k: v for k, v in list(index["files"].items())[:1]}
    session_path.write_text(json.dumps(index))
    data = api.get(f"/api/v1/storage-index/session/{first.pk}").json()["data"]
    assert data["import_session"]["title"] == "Edited title" and len(data["files"]) == 1
    # Reading does not regenerate.
    assert json.loads(master_path.read_bytes())["storage_info"]["display_name"] == "Edited by hand"
    assert json.loads(session_path.read_bytes())["import_session"]["title"] == "Edited title"


@pytest.mark.django_db
def test_a_deleted_index_is_404_index_missing(api, storage, imported):
    first, _ = imported
    (storage.full_path / "index.json").unlink()
    (storage.full_path / f"imports/session_{first.pk}.json").unlink()
    assert_error(api.get(f"/api/v1/storage-index/master/{storage.storage_uuid}"), 404, "index_missing")
    assert_error(api.get(f"/api/v1/storage-index/session/{first.pk}"), 404, "index_missing")
    assert not (storage.full_path / "index.json").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("garbage", [b'{"storage_info": {"uuid": ', b"\xff\xfe\x00garbage", b"[1, 2]", b""])
def test_a_garbage_index_is_409_index_corrupt(api, storage, imported, garbage):
    first, _ = imported
    (storage.full_path / "index.json").write_bytes(garbage)
    (storage.full_path / f"imports/session_{first.pk}.json").write_bytes(garbage)
    error = assert_error(api.get(f"/api/v1/storage-index/master/{storage.storage_uuid}"), 409, "index_corrupt")
    assert error["details"]["problem"].startswith("corrupt")
    assert_error(api.get(f"/api/v1/storage-index/session/{first.pk}"), 409, "index_corrupt")
    assert (storage.full_path / "index.json").read_bytes() == garbage


@pytest.mark.django_db
def test_50_mb_of_nesting_is_409_index_corrupt_without_a_crash(api, storage, imported):
    first, _ = imported
    chunk = b"[" * (1 << 20)
    for path in (storage.full_path / "index.json", storage.full_path / f"imports/session_{first.pk}.json"):
        with open(path, "wb") as handle:
            for _ in range(50):
                handle.write(chunk)
        assert path.stat().st_size == 50 << 20
    assert_error(api.get(f"/api/v1/storage-index/master/{storage.storage_uuid}"), 409, "index_corrupt")
    assert_error(api.get(f"/api/v1/storage-index/session/{first.pk}"), 409, "index_corrupt")
    status = api.get(f"/api/v1/storage-index/status/{storage.storage_uuid}").json()["data"]
    assert status["master_index"]["status"] == "corrupt" and status["sessions"][0]["status"] == "corrupt"


# --- refusals ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_unknown_sessions_and_storages_are_404(api, storage):
    unknown = "3f2b8c1e-0000-4000-8000-000000000000"
    assert_error(api.post("/api/v1/storage-index/session/999999"), 404, "not_found")
    assert_error(api.get("/api/v1/storage-index/session/999999"), 404, "not_found")
    for route in ("status", "master"):
        assert_error(api.get(f"/api/v1/storage-index/{route}/{unknown}"), 404, "not_found")
        assert_error(api.get(f"/api/v1/storage-index/{route}/not-a-uuid"), 404, "not_found")
    assert_error(api.post(f"/api/v1/storage-index/generate/{unknown}"), 404, "not_found")
    assert_error(api.post("/api/v1/storage-index/generate/not-a-uuid"), 404, "not_found")
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_an_unplugged_storage_is_409_on_every_route_and_nothing_is_written(api, storage, imported, allowed_root):
    first, _ = imported
    moved = allowed_root / "unplugged"
    storage.full_path.rename(moved)
    before = tree(allowed_root)
    calls = [
        ("post", f"/api/v1/storage-index/session/{first.pk}"),
        ("post", f"/api/v1/storage-index/session/{first.pk}?wait=0"),
        ("post", f"/api/v1/storage-index/generate/{storage.storage_uuid}"),
        ("post", f"/api/v1/storage-index/generate/{storage.storage_uuid}?wait=0"),
        ("get", f"/api/v1/storage-index/master/{storage.storage_uuid}"),
        ("get", f"/api/v1/storage-index/session/{first.pk}"),
    ]
    for method, path in calls:
        error = assert_error(getattr(api, method)(path), 409, "storage_unavailable")
        assert error["details"]["reason_code"] == "storage_folder_missing", (path, error)
    # Status is a read: it answers 200 and says the storage is unavailable (the seed's health script reads data).
    status = api.get(f"/api/v1/storage-index/status/{storage.storage_uuid}")
    assert status.status_code == 200
    data = status.json()["data"]
    assert data["available"] is False and data["master_index_exists"] is False and data["healthy"] is False
    assert "is unavailable" in data["reason"]
    assert tree(allowed_root) == before
    assert not storage.full_path.exists()
    assert Job.objects.count() == 0


# --- the seed's Workflow 8 --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_seed_validate_storage_integrity_script_finds_missing_files(api, storage, imported):
    if not SEED.exists():
        pytest.skip("seed document not found")
    code = seed_python_block("Workflow 8", "Bulk File Validation")
    assert "def validate_storage_integrity" in code
    namespace = {"requests": SeedRequests(api), "os": os}
    exec(compile(code, "seed-workflow-8", "exec"), namespace)
    validate = namespace["validate_storage_integrity"]

    write_storage_indexes(storage)
    root = storage.full_path
    entries = {}
    for session in imported:
        index = json.loads((root / f"imports/session_{session.pk}.json").read_bytes())
        entries.update({h: (session.pk, e) for h, e in index["files"].items()})
    assert len(entries) == 4

    result = validate(str(storage.storage_uuid))
    assert result["total_sessions"] == 2
    assert result["validated_files"] == len(entries)
    assert result["missing_files"] == [] and result["corrupted_files"] == []

    hothash, (session_id, entry) = next((h, v) for h, v in entries.items() if v[1]["original_filename"] == "jolla.jpg")
    (root / entry["path"]).unlink()
    result = validate(str(storage.storage_uuid))
    assert result["validated_files"] == len(entries) - 1
    assert result["missing_files"] == [
        {"hothash": hothash, "expected_path": f"{root}/{entry['path']}", "session_id": session_id}
    ]
