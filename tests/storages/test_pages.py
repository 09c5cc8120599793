"""The storages pages: overview, new storage, storage detail and its action buttons, on real folders.

Job-starting buttons are checked up to the queued Job row; no worker is needed for that.
"""

import os

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from imports.models import ImportSession
from indexing.scanner import scan_storage
from jobs.models import Job
from storages.models import FileStorage
from tests.indexing.test_scanner import AFTER, import_tree, reorganise

pytestmark = pytest.mark.django_db


@pytest.fixture
def user_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def storage(make_storage) -> FileStorage:
    return FileStorage.objects.get(storage_uuid=make_storage("Main archive")["uuid"])


def detail_url(storage):
    return f"/storages/{storage.storage_uuid}/"


def action_url(storage, action):
    return f"/storages/{storage.storage_uuid}/actions/{action}/"


def unplug(storage):
    """What pulling the drive looks like from here: the storage folder is gone from its base path."""
    os.rename(storage.full_path, storage.full_path.with_name("elsewhere"))


def html(response) -> str:
    assert response.status_code == 200, response.content[:2000]
    return response.content.decode()


# --- login ---------------------------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_the_login_page(client, storage):
    for path in ("/", "/storages/new/", detail_url(storage)):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={path}"


def test_it_sends_anonymous_action_posts_to_the_login_page(client, storage):
    response = client.post(action_url(storage, "scan"))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert not Job.objects.exists()


# --- overview ------------------------------------------------------------------------------------


def test_it_shows_the_empty_state_without_storages(user_client):
    page = html(user_client.get("/"))
    assert "<title>Overview · ImaLink</title>" in page
    assert "No storages yet" in page
    assert 'href="/storages/new/"' in page and "Create your first storage" in page
    assert page.count("<h1") == 1


def test_it_shows_a_card_per_storage(user_client, make_storage):
    first = FileStorage.objects.get(storage_uuid=make_storage("Main archive")["uuid"])
    make_storage("Backup drive")
    ImportSession.objects.create(title="Italy", file_storage=first)

    page = html(user_client.get("/"))

    assert page.count('class="card storage-card"') == 2
    assert f'href="/storages/{first.storage_uuid}/"' in page
    assert "Main archive" in page and "Backup drive" in page
    assert '<span class="badge ok">accessible</span>' in page
    assert "index.json present" in page
    assert 'class="bar space' in page
    assert "No health report yet — see" in page and 'href="/health/"' in page
    assert "Create your first storage" not in page


def test_it_draws_the_usage_chart_on_the_server(user_client, storage):
    page = html(user_client.get("/"))
    chart = page.split('<svg class="usage-chart"')[1].split("</svg>")[0]
    assert 'role="img"' in chart and 'aria-label="Storage usage. Main archive:' in chart
    assert chart.count("<rect") == 2  # used and free
    assert "<title>Main archive:" in chart and "free (" in chart


def test_it_marks_a_storage_low_on_space(user_client, storage):
    FileStorage.objects.filter(pk=storage.pk).update(free_bytes=500 * 1024**2, total_bytes=100 * 1024**3)
    page = html(user_client.get("/"))
    assert 'class="bar space low"' in page
    assert "low on space" in page


def test_it_shows_running_and_recent_jobs_with_live_progress(user_client, storage):
    running = Job.objects.create(kind="scan", storage=storage, status="running", progress={"total": 8, "done": 2})
    done = Job.objects.create(kind="validate", storage=storage, status="succeeded", progress={"total": 4, "done": 4})

    page = html(user_client.get("/"))

    assert f'data-job-id="{running.pk}" data-status="running"' in page
    assert f'data-job-id="{done.pk}" data-status="succeeded"' in page
    assert f'href="/jobs/{running.pk}/"' in page
    assert '<progress class="bar" data-bar max="100" value="25"' in page
    assert 'data-field="percent">25%' in page and 'data-field="percent">100%' in page


def test_overview_queries_do_not_grow_with_the_number_of_storages(
    user_client, make_storage, django_assert_max_num_queries
):
    make_storage("Storage 0")
    user_client.get("/")  # the first request may warm caches (content types, session)
    with CaptureQueriesContext(connection) as one:
        html(user_client.get("/"))
    one_storage = len(one)  # now: the next request resets connection.queries
    for n in range(1, 5):
        storage = FileStorage.objects.get(storage_uuid=make_storage(f"Storage {n}")["uuid"])
        ImportSession.objects.create(title=f"Session {n}", file_storage=storage)
        Job.objects.create(kind="scan", storage=storage, status="succeeded")
    with django_assert_max_num_queries(one_storage):
        page = html(user_client.get("/"))
    assert page.count('class="card storage-card"') == 5


def test_the_overview_counts_each_storage_s_own_files_sizes_and_missing_files(user_client, make_storage):
    from tests.storages.test_statistics import add_files

    mine = FileStorage.objects.get(storage_uuid=make_storage("Mine")["uuid"])
    theirs = FileStorage.objects.get(storage_uuid=make_storage("Theirs")["uuid"])
    add_files(mine, ImportSession.objects.create(title="A", file_storage=mine), 3, size=2 * 1024 * 1024)
    add_files(mine, ImportSession.objects.create(title="B", file_storage=mine), 2, size=1024, status="missing")
    add_files(theirs, ImportSession.objects.create(title="C", file_storage=theirs), 1, size=1024)

    page = html(user_client.get("/"))

    cards = {name: page[page.index(f">{name}<") :] for name in ("Mine", "Theirs")}
    assert '<dt>Files</dt><dd>3 <span class="badge warn">2 missing</span></dd>' in cards["Mine"][:2000]
    assert "<dt>Size</dt><dd>6.0\xa0MB</dd>" in cards["Mine"][:2000]
    assert "<dt>Files</dt><dd>1</dd>" in cards["Theirs"][:2000]


# --- new storage ---------------------------------------------------------------------------------


def test_it_shows_the_new_storage_form_with_labels(user_client, allowed_root):
    page = html(user_client.get("/storages/new/"))
    assert "<title>New storage · ImaLink</title>" in page
    for field in ("base_path", "display_name", "description"):
        assert f'for="id_{field}"' in page
    assert str(allowed_root) in page


def test_it_creates_a_storage_folder_from_the_form(user_client, allowed_root):
    response = user_client.post(
        "/storages/new/", {"base_path": str(allowed_root), "display_name": "Photos SSD", "description": "Fast"}
    )

    storage = FileStorage.objects.get()
    assert response.status_code == 302
    assert response["Location"] == detail_url(storage)
    assert storage.display_name == "Photos SSD" and storage.description == "Fast"
    assert (storage.full_path / ".imalink" / "storage.json").is_file()
    assert storage.full_path.parent == allowed_root
    page = html(user_client.get(response["Location"]))
    assert "Created storage" in page


@pytest.mark.parametrize("base_path", ["/etc", "relative/path", "{root}/../outside", "{root}/does-not-exist"])
def test_it_shows_why_a_base_path_is_refused(user_client, allowed_root, base_path):
    base_path = base_path.format(root=allowed_root)
    response = user_client.post("/storages/new/", {"base_path": base_path, "display_name": "Nope"})

    page = html(response)
    # The service's reason is shown on the base_path field, and tied to it for screen readers.
    assert '<ul class="errorlist error" id="id_base_path_error"><li>base_path ' in page
    assert 'aria-invalid="true" aria-describedby="id_base_path_helptext id_base_path_error"' in page
    assert not FileStorage.objects.exists()
    assert list(allowed_root.iterdir()) == []


def test_it_requires_a_display_name(user_client, allowed_root):
    page = html(user_client.post("/storages/new/", {"base_path": str(allowed_root), "display_name": ""}))
    assert "This field is required." in page
    assert not FileStorage.objects.exists()


# --- storage detail ------------------------------------------------------------------------------


def test_it_shows_a_storage(user_client, storage):
    session = ImportSession.objects.create(title="Italy 2024", file_storage=storage)

    page = html(user_client.get(detail_url(storage)))

    assert "<title>Main archive · ImaLink</title>" in page
    assert page.count("<h1") == 1
    for fact in (str(storage.storage_uuid), storage.directory_name, storage.base_path, str(storage.full_path)):
        assert fact in page
    assert f'href="/sessions/{session.pk}/"' in page and "Italy 2024" in page
    assert "No scan yet." in page
    for label in (
        "Check accessibility",
        "Scan",
        "Scan (dry run)",
        "Scan and adopt new files",
        "Regenerate indexes",
        "Validate (quick)",
        "Validate (full)",
        "Deactivate",
    ):
        assert f">{label}</button>" in page
    assert page.count("csrfmiddlewaretoken") >= 8


def test_it_pages_the_import_sessions(user_client, storage):
    for n in range(51):
        ImportSession.objects.create(title=f"Session {n}", file_storage=storage)
    page = html(user_client.get(detail_url(storage)))
    assert "Page 1 of 2" in page and page.count('href="/sessions/') == 50
    second = html(user_client.get(detail_url(storage) + "?page=2"))
    assert second.count('href="/sessions/') == 1


def test_it_answers_404_for_an_unknown_storage(user_client):
    assert user_client.get("/storages/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_it_shows_the_last_scan_with_moved_files(user_client, storage, allowed_root, corpus):
    import_tree(allowed_root, corpus, storage)
    reorganise(storage.full_path)
    report = scan_storage(storage)
    job = Job.objects.create(kind="scan", storage=storage, status="succeeded", result=report.as_dict())

    page = html(user_client.get(detail_url(storage)))

    assert "No scan yet." not in page
    assert f'href="/jobs/{job.pk}/"' in page
    assert f"Moved files ({len(AFTER)})" in page
    for old, new in AFTER.items():
        assert f"<code>{old}</code>" in page and f"<code>{new}</code>" in page
    for moved in report.moved_files:
        if moved["hothash"].startswith("raw:"):
            assert f"/photos/{moved['hothash']}" not in page
        else:
            assert f'<img class="thumb-sm" loading="lazy" src="/photos/{moved["hothash"]}/hotpreview.jpg"' in page
    assert "Missing files (0)" in page


# --- actions -------------------------------------------------------------------------------------


def test_it_checks_accessibility(user_client, storage):
    response = user_client.post(action_url(storage, "check-accessibility"), follow=True)
    assert response.redirect_chain == [(detail_url(storage), 302)]
    assert "is accessible and writable" in html(response)
    storage.refresh_from_db()
    assert storage.is_accessible is True and storage.accessibility_checked_at is not None


@pytest.mark.parametrize(
    "action, kind, params",
    [
        ("scan", "scan", {"dry_run": False, "adopt_new": False}),
        ("scan-dry-run", "scan", {"dry_run": True, "adopt_new": False}),
        ("scan-adopt", "scan", {"dry_run": False, "adopt_new": True}),
        ("regenerate-indexes", "index_storage", {}),
        ("validate-quick", "validate", {"mode": "quick"}),
        ("validate-full", "validate", {"mode": "full"}),
    ],
)
def test_it_starts_a_job_and_follows_it(user_client, admin_user, storage, action, kind, params):
    response = user_client.post(action_url(storage, action))

    job = Job.objects.get()
    assert (job.kind, job.params, job.storage, job.status) == (kind, params, storage, "queued")
    assert job.created_by == admin_user
    assert response.status_code == 302
    assert response["Location"] == f"/jobs/{job.pk}/"


def test_it_deactivates_and_reactivates(user_client, storage):
    user_client.post(action_url(storage, "deactivate"))
    storage.refresh_from_db()
    assert storage.is_active is False
    assert ">Reactivate</button>" in html(user_client.get(detail_url(storage)))

    user_client.post(action_url(storage, "reactivate"))
    storage.refresh_from_db()
    assert storage.is_active is True


def test_actions_are_post_only(user_client, storage):
    assert user_client.get(action_url(storage, "scan")).status_code == 405
    assert not Job.objects.exists()


def test_it_answers_404_for_an_unknown_action(user_client, storage):
    assert user_client.post(action_url(storage, "format-drive")).status_code == 404


def test_it_refuses_an_action_without_a_csrf_token(admin_user, storage):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(action_url(storage, "scan")).status_code == 403
    assert client.post(action_url(storage, "deactivate")).status_code == 403
    assert not Job.objects.exists()
    storage.refresh_from_db()
    assert storage.is_active is True


# --- an unplugged drive --------------------------------------------------------------------------


def test_an_unplugged_storage_still_renders_and_refuses_to_scan(user_client, storage):
    unplug(storage)

    response = user_client.post(action_url(storage, "scan"), follow=True)

    assert response.redirect_chain == [(detail_url(storage), 302)]
    page = html(response)
    assert not Job.objects.exists()
    assert "is unavailable" in page and storage.directory_name in page
    assert '<span class="badge bad">unavailable</span>' in page
    overview = html(user_client.get("/"))
    assert '<span class="badge bad">unavailable</span>' in overview
    assert "Free space unknown" in overview


def test_an_unplugged_storage_renders_before_anyone_has_noticed(user_client, storage):
    unplug(storage)  # the row still says accessible: the pages must not trip over the missing folder
    assert "Main archive" in html(user_client.get("/"))
    assert "index.json missing" in html(user_client.get(detail_url(storage)))

    user_client.post(action_url(storage, "check-accessibility"))
    assert '<span class="badge bad">unavailable</span>' in html(user_client.get(detail_url(storage)))


@pytest.mark.parametrize("action", ["regenerate-indexes", "validate-quick", "validate-full", "scan-adopt"])
def test_an_unplugged_storage_refuses_every_disk_action(user_client, storage, action):
    unplug(storage)
    response = user_client.post(action_url(storage, action))
    assert response["Location"] == detail_url(storage)
    assert not Job.objects.exists()


def test_the_page_and_the_health_check_share_one_low_space_setting(user_client, storage, settings):
    from indexing.health import run_health_check

    for threshold_above_free, low in ((True, True), (False, False)):
        storage.refresh_from_db()
        free_gb = (storage.free_bytes or 0) / 1024**3
        settings.IMALINK_LOW_SPACE_GB = (
            free_gb + 50 if threshold_above_free else 0.001
        )  # 1 MB: no test drive is that full
        report = run_health_check()  # it also refreshes the free space the page shows
        health_says_low = any(
            i["message"].endswith("GB free") and "low on space" in i["message"] for i in report.issues
        )
        assert health_says_low is low, (settings.IMALINK_LOW_SPACE_GB, report.issues)
        assert ("low on space" in html(user_client.get("/"))) is low
        assert ("low on space" in html(user_client.get(f"/storages/{storage.storage_uuid}/"))) is low
