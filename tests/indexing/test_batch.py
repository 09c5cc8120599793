"""Bulk index generation: one parent job, children across the workers, and the seed's aiohttp batch
(five concurrent POSTs) giving correct indexes while a scan runs on the same storage.
"""

import json
import time

from imports.models import ImportSession
from indexing.writer import index_status
from jobs.models import Job
from jobs.services import job_run, job_start
from storages.models import FileStorage
from tests.conftest import assert_error
from tests.indexing.test_schedules import import_some
from tests.seed import seed_python_block


def make_sessions(make_storage, allowed_root, corpus, count):
    storages = [FileStorage.objects.get(storage_uuid=make_storage(name)["uuid"]) for name in ("A", "B")]
    names = [
        "jpeg/camera/DSCN0010.jpg",
        "jpeg/camera/jolla.jpg",
        "png/hopper.png",
        "jpeg/camera/img_1771.jpg",
        "jpeg/camera/canon_hdr_NO.jpg",
        "heic/IMG_2682.heic",
    ]
    sessions = []
    for i in range(count):
        folder = allowed_root / f"s{i}"  # import_some makes its card folder inside this one
        folder.mkdir()
        sessions.append(import_some(storages[i % 2], folder, corpus, names=[names[i % len(names)]]))
    return storages, sessions


def test_a_batch_runs_as_one_parent_job_with_children_across_the_workers(
    celery_worker, api, make_storage, allowed_root, corpus
):
    celery_worker.stop()
    celery_worker.start(concurrency=2)
    storages, sessions = make_sessions(make_storage, allowed_root, corpus, 4)
    for storage in storages:
        for index in (storage.full_path / "imports").glob("*.json"):
            index.unlink()
    response = api.post("/api/v1/storage-index/batch", {"session_ids": [s.pk for s in sessions]})
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert (data["succeeded"], data["failed"]) == (4, 0) and sorted(data["session_ids"]) == sorted(
        s.pk for s in sessions
    )
    parent = Job.objects.get(pk=data["job_id"])
    assert parent.progress["total"] == parent.progress["done"] == 4
    children = Job.objects.filter(parent=parent)
    assert children.count() == 4 and set(children.values_list("status", flat=True)) == {"succeeded"}
    assert all(c.celery_task_id and c.enqueued_at for c in children), "each child is a message of the group"
    # Celery's link, not the child's own code, finished the parent: each child's task sent the callback.
    log = celery_worker.log.read_text()
    assert log.count("Task jobs.settle_parent[") >= 4 and log.count("Task jobs.run_job[") >= 5, log[-3000:]
    for session in sessions:
        assert (session.file_storage.full_path / f"imports/session_{session.pk}.json").exists()
    assert_error(api.post("/api/v1/storage-index/batch", {"session_ids": [999999]}), 404, "not_found")
    assert_error(api.post("/api/v1/storage-index/batch", {"session_ids": []}), 422, "validation_error")


def test_the_seed_batch_generate_indexes_works_while_a_scan_runs(imalink_server, make_storage, allowed_root, corpus):
    import requests
    from django.contrib.auth import get_user_model

    from imalink.models import ApiToken

    token = ApiToken.issue(user=get_user_model().objects.get(username="admin"))[1]
    storages, sessions = make_sessions(make_storage, allowed_root, corpus, 5)
    for session in sessions:
        photo = session.image_files.first().photo
        photo.title = f"Set before the batch {session.pk}"
        photo.save()
    # A scan of each storage runs at the same time as the five POSTs.
    scans = [
        requests.post(
            f"{imalink_server.url}/api/v1/storage-index/scan/{s.storage_uuid}?wait=0",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()["data"]["job_id"]
        for s in storages
    ]

    code = seed_python_block("Workflow 8", "Batch Index Generation")
    assert code.startswith("import asyncio\nimport aiohttp\n")
    code = code.replace("http://localhost:8000", imalink_server.url)
    code = code.replace(
        "aiohttp.ClientSession()", f'aiohttp.ClientSession(headers={{"Authorization": "Bearer {token}"}})'
    )
    code = code.replace("session_ids = [42, 43, 44, 45, 46]", f"session_ids = {[s.pk for s in sessions]}")
    namespace = {"__name__": "seed_workflow_8"}
    exec(compile(code, "seed-workflow-8-batch", "exec"), namespace)
    results = namespace["results"]
    assert len(results) == 5 and all(isinstance(r, dict) and r["success"] for r in results), results

    deadline = time.monotonic() + 120
    while not all(Job.objects.get(pk=j).is_finished for j in scans) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(Job.objects.get(pk=j).status == "succeeded" for j in scans)
    for storage in storages:
        status = index_status(storage)
        assert all(s["current"] for s in status["sessions"]), status  # no lost writes
    for session in sessions:
        index = json.loads((session.file_storage.full_path / f"imports/session_{session.pk}.json").read_text())
        assert [e["photo"]["title"] for e in index["files"].values()] == [f"Set before the batch {session.pk}"]


def test_cancelling_a_batch_cancels_its_children_and_ends_the_parent(
    transactional_db, redis_available, test_queue, api, make_storage
):
    storage = FileStorage.objects.get(storage_uuid=make_storage("A")["uuid"])
    sessions = [ImportSession.objects.create(title=f"S{i}", file_storage=storage) for i in range(3)]
    batch = job_start(kind="index_batch", params={"session_ids": [s.pk for s in sessions]}, enqueue=False)
    assert job_run(batch.pk).status == "running"  # the children went to a queue that no worker reads
    children = Job.objects.filter(parent=batch)
    assert set(children.values_list("status", flat=True)) == {"queued"}
    progress = api.get(f"/api/v1/jobs/{batch.pk}").json()["data"]["progress"]
    assert (progress["total"], progress["done"]) == (3, 0)

    data = api.post(f"/api/v1/jobs/{batch.pk}/cancel").json()["data"]

    assert data["status"] == "cancelled" and data["result"]["cancelled"] == 3, data
    assert (data["progress"]["total"], data["progress"]["done"]) == (3, 3)
    assert set(children.values_list("status", flat=True)) == {"cancelled"}
    assert all(job_run(c.pk) is None for c in children), "a late message runs no cancelled child"
