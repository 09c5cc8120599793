"""POST /api/v1/import-sessions/{id}/import: refusals that change nothing, the sync/async rule on a real
worker, live progress, cancel, the import_photos command, and the seed's Workflow 2 against a live server.
"""

import os
import time

import pytest
from django.core.management import call_command
from PIL import Image

from imports.models import ImageFile, ImportSession
from jobs.models import Job
from storages.models import FileStorage
from tests.conftest import assert_error
from tests.seed import SEED, LiveServerRequests, seed_python_block


def make_photos(folder, count, *, size=(320, 240), seed=0):
    """`count` distinct small JPEGs (different pixels, so different checksums and hothashes)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        n = seed + i
        image = Image.new("RGB", size, ((n * 37) % 256, (n * 91) % 256, (n * 53) % 256))
        for x in range(0, size[0], 16):
            image.putpixel((x, (n * 7 + x) % size[1]), (255 - (n % 256), x % 256, 0))
        image.save(folder / f"IMG_{n:04d}.jpg", quality=90)
    return folder


def make_camera_copies(folder, count, corpus):
    """`count` copies of a real 12 MP camera JPEG, each with distinct trailing bytes: real work per file."""
    folder.mkdir(parents=True, exist_ok=True)
    original = (corpus / "jpeg/camera/20240427_234934.JPG").read_bytes()
    for i in range(count):
        (folder / f"DSC_{i:04d}.JPG").write_bytes(original + f"copy {i}".encode())
    return folder


@pytest.fixture
def session(make_storage):
    storage = FileStorage.objects.get(storage_uuid=make_storage()["uuid"])
    return ImportSession.objects.create(title="Card", file_storage=storage)


def snapshot(storage):
    root = storage.full_path
    return (
        sorted(p.relative_to(root).as_posix() for p in root.rglob("*")),
        ImageFile.objects.count(),
        Job.objects.count(),
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"source_path": "relative/card"}, "path_rejected"),
        ({"source_path": "/nonexistent/card"}, "path_not_found"),
        ({"source_path": "/etc"}, "path_not_allowed"),
        ({"source_path": "CARD", "target_subdirectory": "../escape"}, "path_rejected"),
        ({"source_path": "CARD", "target_subdirectory": "/abs/path"}, "path_rejected"),
        ({"source_path": "CARD", "target_subdirectory": "a/./b"}, "path_rejected"),
        ({"source_path": "CARD", "target_subdirectory": "a\x00b"}, "path_rejected"),
        ({"source_path": "STORAGE"}, "path_rejected"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(api, session, allowed_root, body, code):
    card = make_photos(allowed_root / "card", 2)
    storage = session.file_storage
    body = {
        k: (str(card) if v == "CARD" else str(storage.full_path / "photos") if v == "STORAGE" else v)
        for k, v in body.items()
    }
    before = snapshot(storage)
    assert_error(api.post(f"/api/v1/import-sessions/{session.pk}/import", body), 400, code)
    assert snapshot(storage) == before


@pytest.mark.django_db
def test_an_unknown_session_is_404(api, allowed_root):
    assert_error(api.post("/api/v1/import-sessions/99999/import", {"source_path": str(allowed_root)}), 404, "not_found")


@pytest.mark.django_db
def test_an_unplugged_storage_is_refused_with_409_and_nothing_changes(api, session, allowed_root):
    card = make_photos(allowed_root / "card", 2)
    storage = session.file_storage
    storage.full_path.rename(allowed_root / "unplugged")
    response = api.post(f"/api/v1/import-sessions/{session.pk}/import", {"source_path": str(card)})
    error = assert_error(response, 409, "storage_unavailable")
    assert error["details"]["reason_code"] in ("storage_folder_missing", "not_mounted")
    assert Job.objects.count() == 0 and ImageFile.objects.count() == 0


def test_an_import_answers_with_its_result_when_it_finishes_in_time(celery_worker, api, session, allowed_root):
    card = make_photos(allowed_root / "card", 6)
    (card / "notes.txt").write_text("not a photo")
    response = api.post(
        f"/api/v1/import-sessions/{session.pk}/import", {"source_path": str(card), "target_subdirectory": "2024/italy"}
    )
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert (data["imported"], data["duplicates"], data["failed"], data["skipped"], data["total"]) == (6, 0, 0, 1, 7)
    assert data["failures"] == []
    assert data["skipped_files"] == [
        {"path": "notes.txt", "code": "not_image", "reason": data["skipped_files"][0]["reason"]}
    ]
    assert "left in the source" in data["skipped_files"][0]["reason"]
    assert data["images_count"] == 6
    assert (session.file_storage.full_path / "photos/2024/italy/IMG_0000.jpg").exists()
    job = api.get(f"/api/v1/jobs/{data['job_id']}").json()["data"]
    assert job["status"] == "succeeded" and job["progress"]["done"] == 7 and job["progress"]["imported"] == 6
    assert api.get(f"/api/v1/import-sessions/{session.pk}").json()["data"]["images_count"] == 6


def test_wait_0_answers_202_and_the_job_shows_live_progress(celery_worker, api, session, allowed_root, corpus):
    card = make_camera_copies(allowed_root / "card", 120, corpus)
    response = api.post(f"/api/v1/import-sessions/{session.pk}/import?wait=0", {"source_path": str(card)})
    assert response.status_code == 202, response.content
    job_id = response.json()["data"]["job_id"]
    assert response.json()["data"]["status_url"] == f"/api/v1/jobs/{job_id}"
    seen = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job = api.get(f"/api/v1/jobs/{job_id}").json()["data"]
        seen.append(job["progress"].get("done") or 0)
        if job["status"] == "succeeded":
            break
        time.sleep(0.1)
    assert job["status"] == "succeeded", job
    assert job["progress"]["total"] == 120 and job["result"]["imported"] == 120
    assert any(0 < d < 120 for d in seen), f"no intermediate progress was ever visible: {sorted(set(seen))}"
    assert {"eta_seconds", "progress"} <= set(job)


def test_a_cancelled_import_stops_and_leaves_everything_consistent(celery_worker, api, session, allowed_root, corpus):
    card = make_camera_copies(allowed_root / "card", 150, corpus)
    job_id = api.post(f"/api/v1/import-sessions/{session.pk}/import?wait=0", {"source_path": str(card)}).json()["data"][
        "job_id"
    ]
    deadline = time.monotonic() + 60
    while (Job.objects.get(pk=job_id).progress.get("done") or 0) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
    while not Job.objects.get(pk=job_id).is_finished and time.monotonic() < deadline + 60:
        time.sleep(0.1)
    job = Job.objects.get(pk=job_id)
    assert job.status == "cancelled", (job.status, job.errors)
    assert 0 < job.result["imported"] < 150 and job.result["cancelled"] is True
    storage = session.file_storage
    on_disk = {p.relative_to(storage.full_path).as_posix() for p in (storage.full_path / "photos").rglob("*.JPG")}
    assert on_disk == set(ImageFile.objects.values_list("relative_path", flat=True))
    assert os.listdir(storage.full_path / ".imalink/tmp") == []


@pytest.mark.django_db
def test_the_import_photos_command_runs_the_same_job(session, allowed_root, capsys):
    card = make_photos(allowed_root / "card", 3)
    call_command("import_photos", str(session.pk), str(card), "--target-subdirectory", "2024/cli")
    out = capsys.readouterr()
    assert "Imported 3, duplicates 0, failed 0 of 3 files" in out.out
    job = Job.objects.get(kind="import")
    assert job.status == "succeeded" and job.progress["done"] == 3 and job.session_id == session.pk
    assert ImageFile.objects.filter(relative_path__startswith="photos/2024/cli/").count() == 3
    call_command("import_photos", str(session.pk), str(card), "--target-subdirectory", "2024/cli")
    assert "Imported 0, duplicates 3" in capsys.readouterr().out


@pytest.mark.django_db
def test_the_import_photos_command_refuses_bad_input(session):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="absolute path"):
        call_command("import_photos", str(session.pk), "relative/card")


def test_the_seed_import_and_index_photos_flow_runs_against_a_live_server(imalink_server, allowed_root, make_storage):
    """Workflow 2 as written, with the base URL and auth added and the import call in place of 'process files'."""
    from django.contrib.auth import get_user_model

    from imalink.models import ApiToken

    if not SEED.exists():
        pytest.skip("seed document not found")
    token = ApiToken.issue(user=get_user_model().objects.get(username="admin"))[1]
    storage = make_storage("Main")
    card = make_photos(allowed_root / "card", 5)
    requests = LiveServerRequests(imalink_server.url, token)

    code = seed_python_block("Workflow 2", "Step 2")
    assert "# ... file processing happens here ..." in code
    code = code.replace("import requests\n", "").replace(
        "# ... file processing happens here ...",
        "requests.post(f\"/api/v1/import-sessions/{session['data']['id']}/import\", "
        'json={"source_path": SOURCE}).raise_for_status()',
    )
    namespace = {"requests": requests, "get_storage_id": lambda uuid: storage["id"], "SOURCE": str(card)}
    exec(compile(code, "seed-workflow-2", "exec"), namespace)
    result = namespace["import_and_index_photos"](str(card), storage["uuid"], "Memory card")
    assert result["index_generated"] is True
    session_id = result["session_id"]
    root = FileStorage.objects.get(pk=storage["id"]).full_path
    import json

    index = json.loads((root / f"imports/session_{session_id}.json").read_text())
    assert len(index["files"]) == 5
    master = json.loads((root / "index.json").read_text())
    assert [s["id"] for s in master["import_sessions"]] == [session_id]
    # Step 3: verify the import.
    verified = requests.get(f"/api/v1/import-sessions/{session_id}").json()
    assert verified["data"]["images_count"] == 5
