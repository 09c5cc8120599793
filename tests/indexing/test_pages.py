"""The job, recovery and health pages, and the health check behind the last one."""

import shutil

import pytest
from django.test import Client

from imports.models import ImportSession
from indexing.health import run_health_check
from indexing.models import HealthReport
from indexing.rewrite import import_folder
from indexing.writer import write_storage_indexes
from jobs import services as jobs
from jobs.models import Job
from storages.models import FileStorage

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(admin_user):
    c = Client()
    c.force_login(admin_user)
    return c


@pytest.mark.parametrize("url", ["/jobs/", "/jobs/1/", "/recovery/", "/health/"])
def test_pages_need_a_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response.url.startswith("/accounts/login/?next=")


def test_the_job_page_shows_progress_failures_and_a_cancel_button(browser):
    job = Job.objects.create(
        kind="import",
        status="running",
        progress={
            "total": 10,
            "done": 4,
            "imported": 3,
            "failed": 1,
            "current": "DCIM/IMG_5.jpg",
            "recent_failures": [
                {"path": "bad.jpg", "code": "truncated", "reason": "truncated: image file is truncated"}
            ],
        },
    )
    page = browser.get(f"/jobs/{job.pk}/").content.decode()
    assert f'data-job-id="{job.pk}"' in page and '<progress class="bar" data-bar' in page
    assert "DCIM/IMG_5.jpg" in page and "bad.jpg: truncated: image file is truncated" in page
    assert "Cancel" in page
    response = browser.post(f"/jobs/{job.pk}/cancel/", follow=True)
    assert Job.objects.get(pk=job.pk).cancel_requested
    assert "will stop at its next file" in response.content.decode()


def test_the_job_page_shows_a_finished_import(browser):
    job = Job.objects.create(
        kind="import",
        status="succeeded",
        result={"imported": 5, "duplicates": 1, "failed": 0, "total": 6, "duration_s": 1.5, "failures": []},
    )
    page = browser.get(f"/jobs/{job.pk}/").content.decode()
    assert "Imported 5, duplicates 1, failed 0 of 6 files" in page and "Cancel" not in page


def test_the_recovery_page_finds_storages_and_starts_a_dry_run(browser, make_storage, allowed_root, test_queue):
    storage = make_storage("Family drive")
    response = browser.post("/recovery/", {"search_roots": str(allowed_root), "action": "find"})
    find = Job.objects.get(kind="recovery_find")  # the search runs as a job, not in the request
    assert response.status_code == 302 and response.url == f"/recovery/?find={find.pk}"
    jobs.job_run(find.pk)
    page = browser.get(response.url).content.decode()
    assert "Family drive" in page and storage["directory_name"] in page
    response = browser.post("/recovery/", {"search_roots": str(allowed_root), "action": "dry_run"})
    job = Job.objects.get(kind="recover")
    assert response.status_code == 302 and response.url == f"/jobs/{job.pk}/"
    assert job.params == {"search_roots": [str(allowed_root)], "dry_run": True}


def test_the_recovery_page_refuses_a_root_outside_the_allowed_folders(browser, allowed_root):
    response = browser.post("/recovery/", {"search_roots": "/etc", "action": "recover"})
    assert "outside the folders ImaLink may use" in response.content.decode()
    assert not Job.objects.exists()


def test_the_health_check_reports_the_seed_figures_and_issues(make_storage, allowed_root, corpus, settings):
    good = FileStorage.objects.get(storage_uuid=make_storage("Good")["uuid"])
    card = allowed_root / "card"
    card.mkdir()
    shutil.copy(corpus / "jpeg/camera/DSCN0010.jpg", card)
    session = ImportSession.objects.create(title="S", file_storage=good)
    import_folder(session_id=session.pk, source_path=str(card))
    write_storage_indexes(good)
    gone = FileStorage.objects.get(storage_uuid=make_storage("Unplugged")["uuid"])
    gone.full_path.rename(allowed_root / "elsewhere")
    settings.IMALINK_LOW_SPACE_GB = 10**9  # every real drive is "low" against this
    report = run_health_check()
    rows = {r["name"]: r for r in report.storages}
    assert rows["Good"]["accessible"] and rows["Good"]["total_files"] == 1 and rows["Good"]["indexes_healthy"]
    assert rows["Good"]["import_sessions"] == 1 and rows["Good"]["size_mb"] > 0
    assert not rows["Unplugged"]["accessible"]
    messages = [i["message"] for i in report.issues]
    assert any("'Unplugged' is not accessible" in m for m in messages)
    assert any("'Good' is low on space" in m for m in messages)
    assert report.summary == {
        "total_storages": 2,
        "accessible_storages": 1,
        "total_files": 1,
        "total_size_gb": report.summary["total_size_gb"],
        "issues_count": len(report.issues),
    }
    assert report.growth["files_added"] == 1
    second = run_health_check()
    assert second.growth["files_added"] == 0 and second.growth["since"] == report.created_at.isoformat()


def test_the_health_page_and_the_overview_show_the_latest_report(browser, make_storage, allowed_root, test_queue):
    storage = FileStorage.objects.get(storage_uuid=make_storage("Unplugged")["uuid"])
    storage.full_path.rename(allowed_root / "elsewhere")
    assert "No health report yet" in browser.get("/health/").content.decode()
    run_health_check()
    page = browser.get("/health/").content.decode()
    assert "Storage &#x27;Unplugged&#x27; is not accessible" in page and "History" in page
    assert "is not accessible" in browser.get("/").content.decode()
    response = browser.post("/health/")
    assert response.status_code == 302 and Job.objects.filter(kind="health_check").exists()


def test_the_health_check_job_runs(admin_user):
    job = jobs.job_start(kind="health_check", enqueue=False)
    finished = jobs.job_run(job.pk)
    assert finished.status == "succeeded" and HealthReport.objects.get(pk=finished.result["report_id"])
