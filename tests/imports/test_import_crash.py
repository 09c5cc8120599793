"""A worker SIGKILLed in the middle of an import: after a restart, re-running the import finishes the work
exactly, with no lost file, no duplicate row or file, and no partial copy left in .imalink/tmp/.
"""

import os
import time

import pytest

from imports.checksums import file_checksum
from imports.models import ImageFile, ImportSession
from jobs.models import Job
from storages.models import FileStorage
from tests.imports.test_import_api import make_camera_copies, make_photos

COUNT = 120


def wait_until(predicate, timeout=120, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("kill_after", [3, 37])
def test_a_killed_import_is_finished_exactly_by_a_rerun(
    celery_worker, api, make_storage, allowed_root, corpus, kill_after
):
    storage = FileStorage.objects.get(storage_uuid=make_storage()["uuid"])
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    make_camera_copies(allowed_root / "card" / "a", COUNT - 20, corpus)
    make_photos(allowed_root / "card" / "b", 20)
    body = {"source_path": str(allowed_root / "card"), "target_subdirectory": "2024"}

    first = api.post(f"/api/v1/import-sessions/{session.pk}/import?wait=0", body).json()["data"]["job_id"]
    wait_until(
        lambda: (Job.objects.get(pk=first).progress.get("done") or 0) >= kill_after, what=f"{kill_after} files done"
    )
    celery_worker.kill()
    assert Job.objects.get(pk=first).status == "running"
    assert ImageFile.objects.count() < COUNT, "the import finished before the kill; the test proves nothing"

    celery_worker.start()
    response = api.post(f"/api/v1/import-sessions/{session.pk}/import", body)
    assert response.status_code == 200, response.content
    result = response.json()["data"]
    assert result["failed"] == 0
    assert result["imported"] + result["duplicates"] == COUNT

    root = storage.full_path
    rows = list(ImageFile.objects.filter(file_storage=storage))
    assert len(rows) == COUNT
    assert len({r.checksum for r in rows}) == COUNT, "a file has two rows"
    on_disk = {p.relative_to(root).as_posix() for p in (root / "photos").rglob("*") if p.is_file()}
    assert on_disk == {r.relative_path for r in rows}, "a file without a row, or a row without a file"
    assert not any(" (2)" in path for path in on_disk), "a re-run copied a file twice"
    for row in rows:
        source = allowed_root / "card" / row.relative_path.removeprefix("photos/2024/")
        assert file_checksum(root / row.relative_path) == row.checksum == file_checksum(source)
    assert os.listdir(root / ".imalink" / "tmp") == []
