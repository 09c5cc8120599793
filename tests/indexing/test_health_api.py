"""/api/v1/health/: the stored reports, POST /check on a real worker, and the seed's Workflow 7 daily
health-check script run unchanged against a live server."""

import json
import re
import subprocess

import pytest

from imports.models import ImportSession
from indexing.health import run_health_check
from indexing.models import HealthReport
from indexing.rewrite import import_folder
from indexing.writer import write_storage_indexes
from jobs.models import Job
from storages.models import FileStorage
from tests.conftest import assert_error, require
from tests.imports.test_import_api import make_photos
from tests.seed import SEED, LiveServerRequests, seed_namespace, seed_python_block

REPORT_FIELDS = {"id", "created_at", "summary", "storages", "issues", "growth", "alerts", "healthy"}


@pytest.mark.django_db
def test_latest_is_404_before_any_report(api):
    error = assert_error(api.get("/api/v1/health/reports/latest"), 404, "no_health_report")
    assert "POST /api/v1/health/check" in error["message"]
    assert api.get("/api/v1/health/reports/").json()["data"] == {"reports": [], "count": 0, "page": 1, "pages": 1}


@pytest.mark.django_db
def test_latest_is_the_newest_report(api, make_storage, allowed_root, settings):
    settings.IMALINK_ALERT_EMAILS = []
    storage = FileStorage.objects.get(storage_uuid=make_storage("Unplugged")["uuid"])
    run_health_check()
    storage.full_path.rename(allowed_root / "away")
    newest = run_health_check()
    response = api.get("/api/v1/health/reports/latest")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert set(data) == REPORT_FIELDS
    assert data["id"] == newest.pk and data["healthy"] is False
    assert data["summary"] == {
        "total_storages": 1,
        "accessible_storages": 0,
        "total_files": 0,
        "total_size_gb": 0.0,
        "issues_count": 1,
    }
    assert data["issues"] == [
        {
            "key": f"not_accessible:{storage.storage_uuid}",
            "severity": "error",
            "message": newest.issues[0]["message"],
            "storage_uuid": str(storage.storage_uuid),
            "link": None,
        }
    ]
    assert data["alerts"]["opened"] == [f"not_accessible:{storage.storage_uuid}"]
    assert data["storages"][0]["name"] == "Unplugged" and data["storages"][0]["accessible"] is False
    assert set(data["growth"]) >= {"files", "bytes", "files_added", "since"}


@pytest.mark.django_db
def test_reports_are_paginated_newest_first(api, settings):
    settings.IMALINK_ALERT_EMAILS = []
    ids = [run_health_check().pk for _ in range(5)]
    first = api.get("/api/v1/health/reports/?page_size=2").json()["data"]
    assert [r["id"] for r in first["reports"]] == ids[::-1][:2]
    assert (first["count"], first["page"], first["pages"]) == (5, 1, 3)
    last = api.get("/api/v1/health/reports/?page_size=2&page=3").json()["data"]
    assert [r["id"] for r in last["reports"]] == [ids[0]] and last["reports"][0]["healthy"] is True
    assert_error(api.get("/api/v1/health/reports/?page_size=0"), 422, "validation_error")


@pytest.mark.django_db
def test_the_routes_need_auth(client):
    for method, path in [
        ("get", "/api/v1/health/reports/latest"),
        ("get", "/api/v1/health/reports/"),
        ("post", "/api/v1/health/check"),
    ]:
        assert_error(getattr(client, method)(path), 401, "unauthorized")


@pytest.mark.django_db
def test_check_with_wait_0_answers_202_at_once(api, test_queue):
    response = api.post("/api/v1/health/check?wait=0")
    assert response.status_code == 202, response.content
    data = response.json()["data"]
    job = Job.objects.get(pk=data["job_id"])
    assert job.kind == "health_check" and data["status_url"] == f"/api/v1/jobs/{job.pk}"


@pytest.mark.worker
def test_check_runs_on_a_worker_and_answers_with_the_report(celery_worker, api, make_storage):
    make_storage("Main")
    response = api.post("/api/v1/health/check")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert set(data) == REPORT_FIELDS | {"job_id", "status"}
    report = HealthReport.objects.get()
    assert data["id"] == report.pk and data["status"] == "succeeded"
    assert data["summary"]["total_storages"] == 1 and data["summary"]["accessible_storages"] == 1
    assert Job.objects.get(pk=data["job_id"]).result["report_id"] == report.pk
    assert api.get("/api/v1/health/reports/latest").json()["data"]["id"] == report.pk


# --- the seed's Workflow 7 --------------------------------------------------------------------------------


@pytest.fixture
def small_drive(allowed_root):
    """A 500 MB tmpfs inside the allowed root: a drive with less than the seed's 1 GB free."""
    mount_point = allowed_root / "small-drive"
    mount_point.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=500m", "tmpfs", str(mount_point)], capture_output=True
        ).returncode
        == 0
    )
    require(mounted, "mount -t tmpfs (needs root)")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.live_server_http
@pytest.mark.parametrize("unplug", [False, True], ids=["plugged", "one-unplugged"])
def test_the_seed_daily_health_check_runs_against_a_live_server(
    unplug, imalink_server, allowed_root, make_storage, small_drive, tmp_path, capsys, monkeypatch
):
    from django.contrib.auth import get_user_model

    from imalink.models import ApiToken

    if not SEED.exists():
        pytest.skip("seed document not found")
    token = ApiToken.issue(user=get_user_model().objects.get(username="admin"))[1]
    requests = LiveServerRequests(imalink_server.url, token)

    def fill(storage, photos, seed):
        session = ImportSession.objects.create(title=f"{storage.display_name} photos", file_storage=storage)
        import_folder(
            session_id=session.pk, source_path=str(make_photos(allowed_root / f"card-{seed}", photos, seed=seed))
        )
        write_storage_indexes(storage)

    main = FileStorage.objects.get(storage_uuid=make_storage("Main")["uuid"])
    small = FileStorage.objects.get(storage_uuid=make_storage("Small", base=small_drive)["uuid"])
    gone = FileStorage.objects.get(storage_uuid=make_storage("Travel")["uuid"])
    fill(main, 4, 0)
    fill(small, 2, 100)
    fill(gone, 3, 200)
    if unplug:
        gone.full_path.rename(allowed_root / "travel-drive-away")
    accessible, files = (2, 6) if unplug else (3, 9)

    code = seed_python_block("Workflow 7", "Daily Health Check Script")
    assert code.startswith("#!/usr/bin/env python3\n") and "import requests\n" in code
    namespace = seed_namespace("seed_workflow_7", requests)
    exec(compile(code, "seed-workflow-7", "exec"), namespace)
    report = namespace["daily_health_check"]()

    rows = {s["name"]: s for s in report["storages"]}
    assert set(rows) == {"Main", "Small", "Travel"}
    assert rows["Main"]["accessible"] and rows["Main"]["total_files"] == 4 and rows["Main"]["indexes_healthy"]
    assert rows["Main"]["import_sessions"] == 1 and rows["Main"]["free_space_gb"] >= 1.0
    assert rows["Small"]["accessible"] and rows["Small"]["free_space_gb"] < 1.0 and rows["Small"]["total_files"] == 2
    assert rows["Travel"]["accessible"] is not unplug
    assert report["summary"]["total_storages"] == 3 and report["summary"]["accessible_storages"] == accessible
    assert report["summary"]["total_files"] == files  # an unplugged drive's files are not counted
    assert ("Storage 'Travel' is not accessible" in report["issues"]) is unplug
    assert "Storage 'Small' is low on space" in report["issues"]
    assert not any("'Main'" in issue for issue in report["issues"])
    assert report["summary"]["issues_count"] == len(report["issues"])
    # The script's POST .../accessibility recorded each drive's state.
    assert FileStorage.objects.get(pk=gone.pk).is_accessible is not unplug

    # The script as a program: it prints a summary and writes storage_health_<timestamp>.json in its cwd.
    out_dir = tmp_path / "health-reports"
    out_dir.mkdir()
    monkeypatch.chdir(out_dir)
    capsys.readouterr()
    exec(compile(code, "seed-workflow-7", "exec"), seed_namespace("__main__", requests))
    printed = capsys.readouterr().out
    written = list(out_dir.glob("storage_health_*.json"))
    assert len(written) == 1 and re.fullmatch(r"storage_health_\d{8}_\d{6}\.json", written[0].name)
    saved = json.loads(written[0].read_text())
    assert saved["summary"] == report["summary"] and len(saved["storages"]) == 3
    assert f"Storage Health Report - {saved['timestamp']}" in printed
    assert f"Storages: {accessible}/3 accessible" in printed
    assert f"Files: {files} ({saved['summary']['total_size_gb']} GB)" in printed
    assert f"Issues: {len(report['issues'])}" in printed
    assert "Issues found:\n" in printed and "  - Storage 'Small' is low on space" in printed
    assert ("  - Storage 'Travel' is not accessible" in printed) is unplug

    # The server's own health check sees the same problems, as issues with stable keys.
    checked = requests.post("/api/v1/health/check").json()["data"]
    keys = {issue["key"] for issue in checked["issues"]}
    assert f"low_space:{small.storage_uuid}" in keys
    assert (f"not_accessible:{gone.storage_uuid}" in keys) is unplug
    assert checked["summary"]["total_files"] == files and checked["alerts"]["opened"]
