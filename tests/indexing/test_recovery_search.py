"""Recovery's search and cost on a drive that is hostile input (issue 13, points 5 and 6).

The search finds every imalink_* storage at any depth up to its limit, inside user folders of any name, and
never enters a storage it found nor follows a symbolic link. Recovery reads a storage only through its
descriptor (storages.drive): a symlinked hotpreview fan-out folder makes the storage unsafe, and nothing
outside is read. index-backups/ is listed once per storage, a cancel between sessions ends the job cancelled,
and the recovery page's find runs as a job.
"""

import json
import os
import shutil

import pytest
from django.core.management import call_command
from django.test import Client

from imports.models import ImportSession, Photo
from indexing import recovery, views
from indexing.recovery import find_storage_folders, recover_from_indexes
from jobs import services as jobs
from jobs.models import Job
from storages import drive
from storages.models import FileStorage
from tests.conftest import imported_storage

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def make_storage_at(base, name):
    from indexing.rewrite import storage_create

    base.mkdir(parents=True, exist_ok=True)
    return storage_create(base_path=str(base), display_name=name)


def test_the_seed_example_paths_are_all_found_with_the_roots_of_workflow_6(allowed_root):
    external = make_storage_at(allowed_root / "external" / "photos", "External")
    backup = make_storage_at(allowed_root / "backup" / "photos", "Backup")
    nas = make_storage_at(allowed_root / "nas" / "archive", "NAS")
    # Inside a found storage nothing is searched: an imalink_* folder in its photos/ is a user's file, not a storage.
    inner = external.full_path / "photos" / "imalink_20200101_000000_00000000"
    (inner / ".imalink").mkdir(parents=True)
    (inner / ".imalink" / "storage.json").write_text("{}")
    # A user folder named imports/ (deeper than the seed's) is searched too; a symbolic link never is.
    deep = make_storage_at(allowed_root / "nas" / "imports" / "2024", "Deep")
    os.symlink(nas.full_path, allowed_root / "backup" / "imalink_20240101_000000_deadbeef")

    roots = [allowed_root / "external", allowed_root / "backup", allowed_root / "nas"]
    found = find_storage_folders(roots)

    assert sorted(found) == sorted([external.full_path, backup.full_path, nas.full_path, deep.full_path])


def test_the_search_stops_at_its_depth_limit(allowed_root):
    shallow = make_storage_at(allowed_root / "a" / "b", "Shallow")
    make_storage_at(allowed_root / "1" / "2" / "3" / "4" / "5" / "6" / "7", "Too deep")
    assert find_storage_folders([allowed_root], depth=3) == [shallow.full_path]


@pytest.fixture
def archive(allowed_root, corpus):
    """One storage with three photos and written indexes; the database is then wiped."""
    storage, session = imported_storage(allowed_root, corpus)
    base, root, session_id = allowed_root / "drive", storage.full_path, session.pk
    call_command("flush", interactive=False, verbosity=0)
    return base, root, session_id


def test_a_symlinked_hotpreview_fan_out_folder_makes_the_storage_unsafe_and_nothing_outside_is_read(archive, tmp_path):
    base, root, session_id = archive
    previews = root / ".imalink" / "hotpreviews"
    fan_outs = sorted(p for p in previews.iterdir() if p.is_dir())
    assert fan_outs, "the import wrote hotpreviews"
    outside = tmp_path / "outside"
    shutil.copytree(fan_outs[0], outside)  # the same names, so an old reader would serve them as previews
    secret = {str(p.relative_to(outside)): p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    shutil.rmtree(fan_outs[0])
    os.symlink(outside, fan_outs[0])

    report = recover_from_indexes([base])

    (found,) = report.storages
    assert found["outcome"] == "skipped" and found["reason_code"] == "unsafe_layout", found
    assert any(str(fan_outs[0]) in p["where"] and "symbolic link" in p["problem"] for p in found["problems"]), found[
        "problems"
    ]
    assert not Photo.objects.exists() and not FileStorage.objects.exists()
    assert secret and {str(p.relative_to(outside)): p.read_bytes() for p in outside.rglob("*") if p.is_file()} == secret


def test_twenty_thousand_sessions_beside_two_thousand_backups_recover_and_the_backups_are_listed_once(
    archive, monkeypatch
):
    base, root, session_id = archive
    master = json.loads((root / "index.json").read_text())
    named = [
        {"id": i, "title": f"Session {i}", "index_file": f"imports/session_{i}.json", "file_count": 0}
        for i in range(100_001, 120_001)
    ]
    master["import_sessions"].extend(named)
    (root / "index.json").write_text(json.dumps(master))
    backups = root / ".imalink" / "index-backups"
    shutil.rmtree(backups, ignore_errors=True)
    backups.mkdir()
    template = json.loads((root / f"imports/session_{session_id}.json").read_text())
    from_backups = list(range(100_001, 101_001))
    for i in from_backups:  # 1,000 missing sessions with two backups each: the newest is corrupt, the older good
        data = {
            **template,
            "import_session": {**template["import_session"], "id": i, "title": f"Session {i}"},
            "files": {},
        }
        (backups / f"session_{i}.20260101T000000000000Z.json").write_text(json.dumps(data))
        (backups / f"session_{i}.20260102T000000000000Z.json").write_text('{"import_session": ')
    assert len(os.listdir(backups)) == 2000

    listed = []
    real_listdir = drive.Storage.listdir

    def spy(self, relative=""):
        listed.append(str(relative))
        return real_listdir(self, relative)

    monkeypatch.setattr(drive.Storage, "listdir", spy)
    report = recover_from_indexes([base])

    (found,) = report.storages
    assert listed.count(str(recovery.BACKUP_DIR)) == 1, listed[:10]
    assert found["files_restored"] == 3
    assert sorted(found["sessions_restored"]) == sorted([session_id, *from_backups])
    sources = found["index_sources"]
    assert all(
        sources[f"imports/session_{i}.json"] == f"backup:session_{i}.20260101T000000000000Z.json" for i in from_backups
    )
    assert sum(1 for v in sources.values() if v == "missing") == 19_000
    assert ImportSession.objects.count() == 1001


def test_a_cancel_between_sessions_ends_the_recover_job_cancelled(archive, monkeypatch):
    base, root, session_id = archive
    template = json.loads((root / f"imports/session_{session_id}.json").read_text())
    for i in range(5000, 5005):
        data = {
            **template,
            "import_session": {**template["import_session"], "id": i, "title": f"Extra {i}"},
            "files": {},
        }
        (root / f"imports/session_{i}.json").write_text(json.dumps(data))
    job = jobs.job_start(kind="recover", params={"search_roots": [str(base)]}, enqueue=False)
    monkeypatch.setattr(jobs, "PROGRESS_INTERVAL_S", 0)  # every cancel check asks the database
    real_restore = recovery._restore_session
    restored = []

    def restore_then_cancel(name, data, **kw):
        real_restore(name, data, **kw)
        restored.append(name)
        if len(restored) == 1:
            Job.objects.filter(pk=job.pk).update(cancel_requested=True)

    monkeypatch.setattr(recovery, "_restore_session", restore_then_cancel)
    finished = jobs.job_run(job.pk)

    assert finished.status == Job.Status.CANCELLED, (finished.status, finished.result)
    assert len(restored) == 1, "no session after the cancel is restored"
    assert finished.result["cancelled"] is True
    assert not FileStorage.objects.exists(), "the storage being recovered when it was cancelled is undone"


def test_the_recovery_page_runs_find_as_a_job_and_shows_its_result(archive, admin_user, monkeypatch):
    base, root, session_id = archive
    sent = []
    monkeypatch.setattr(jobs, "_enqueue", lambda job_id: sent.append(job_id))  # no worker here: the job waits
    monkeypatch.setattr(views, "FIND_WAIT_S", 0)
    searched = []
    real_find = recovery.find_storage_folders
    monkeypatch.setattr(recovery, "find_storage_folders", lambda *a, **kw: searched.append(a) or real_find(*a, **kw))
    browser = Client()
    browser.force_login(admin_user)

    response = browser.post("/recovery/", {"search_roots": str(base), "action": "find"})

    job = Job.objects.get(kind="recovery_find")
    assert response.status_code == 302 and response.url == f"/recovery/?find={job.pk}"
    assert sent == [job.pk] and searched == [], "the search ran inside the request"
    waiting = browser.get(response.url).content.decode()
    assert f'data-job-id="{job.pk}"' in waiting and "data-reload-when-done" in waiting
    assert jobs.job_run(job.pk).status == Job.Status.SUCCEEDED
    page = browser.get(response.url).content.decode()
    assert "Drive" in page and root.name in page and "Card" in page
    assert job.params == {"search_roots": [str(base)]}
