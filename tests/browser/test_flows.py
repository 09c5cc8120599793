"""A person runs ImaLink from a real browser (headless Chromium via Playwright) against the live server
that `make run` starts (web, worker, beat): log in, create a storage, import the corpus, see the
thumbnails, reorganise files and scan, rate a photo, migrate the drive in the admin, and recover after the
database is wiped. Every step saves a screenshot under test-output/<test>/.
"""

import os
import re
import shutil
import subprocess
import time

import pytest
from django.core.management import call_command

from imports.models import ImageFile, Photo
from jobs.models import Job
from storages.models import FileStorage
from tests.conftest import stop_process

PAGES = ["/", "/storages/new/", "/imports/new/", "/photos/", "/recovery/", "/health/", "/jobs/"]


def wait_for(predicate, timeout=180, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def log_in(page, url, password):
    page.goto(url + "/")
    assert "/accounts/login/" in page.url  # anonymous visitors are sent to the login page
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + "/")


def wait_for_job_page(page, timeout=180_000):
    page.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    page.wait_for_selector("[data-job-id][data-status=succeeded]", timeout=timeout)
    page.wait_for_load_state()
    page.reload()  # the page reloads itself when the job ends; reloading here too avoids racing it
    page.wait_for_selector("[data-job-id][data-status=succeeded]")
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def test_a_person_runs_the_archive_from_the_browser(imalink_server, browser_page, allowed_root, corpus, tmp_path):
    page, url = browser_page, imalink_server.url
    password = (tmp_path / "var" / "admin_password").read_text().strip()

    # 1. Log in.
    log_in(page, url, password)
    assert page.get_by_role("heading", name="Overview").is_visible()
    page.shot("1-logged-in")

    # 2. Create a storage.
    drive = allowed_root / "drive"
    drive.mkdir()
    page.get_by_role("link", name="Create your first storage").click()
    page.get_by_label("Base path").fill(str(drive))
    page.get_by_label("Display name").fill("Family archive")
    page.get_by_role("button", name="Create storage").click()
    page.wait_for_selector("h1:has-text('Family archive')")
    storage = FileStorage.objects.get(display_name="Family archive")
    assert (storage.full_path / ".imalink" / "storage.json").exists()
    page.shot("2-storage-created")

    # 3. Import the corpus, with the progress bar reaching 100%.
    card = allowed_root / "card"
    shutil.copytree(corpus, card, ignore=shutil.ignore_patterns("*.tsv", "*.md"))
    page.goto(url + "/imports/new/")
    page.get_by_label("Title").fill("Corpus card")
    page.get_by_label("Source folder").fill(str(card))
    page.get_by_label("Target folder under photos/").fill("2024/corpus")
    page.get_by_role("button", name="Start import").click()
    job_id = wait_for_job_page(page)
    assert page.locator("[data-field=percent]").inner_text() == "100%"
    assert page.get_by_role("progressbar").evaluate("bar => bar.value") == 100
    job = Job.objects.get(pk=job_id)
    assert job.result["imported"] > 60 and job.result["failed"] > 0
    page.reload()
    assert page.locator("[data-failures] li").count() == job.result["failed"]  # failures with their reasons
    page.shot("3-import-finished")

    # 4. See the thumbnails.
    page.goto(f"{url}/sessions/{job.session_id}/")
    thumbs = page.locator(".thumbs img[loading=lazy]")
    assert thumbs.count() > 20
    thumbs.first.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const i = document.querySelector('.thumbs img[loading=lazy]'); "
        "return i && i.complete && i.naturalWidth > 0; }"
    )
    page.shot("4-thumbnails")

    # 5. Move files on disk, scan, and see the moves listed.
    root = storage.full_path
    (root / "photos" / "Vacations").mkdir()
    os.rename(root / "photos/2024/corpus/jpeg/camera/DSCN0010.jpg", root / "photos/Vacations/DSCN0010.jpg")
    os.rename(root / "photos/2024/corpus/jpeg/camera/jolla.jpg", root / "photos/Vacations/jolla.jpg")
    page.goto(f"{url}/storages/{storage.storage_uuid}/")
    page.get_by_role("button", name="Scan", exact=True).click()
    wait_for_job_page(page)
    page.goto(f"{url}/storages/{storage.storage_uuid}/")
    moved = page.locator("section", has=page.get_by_role("heading", name="Last scan"))
    assert "photos/Vacations/DSCN0010.jpg" in moved.inner_text() and "photos/Vacations/jolla.jpg" in moved.inner_text()
    page.shot("5-moved-files")

    # 6. Rate a photo.
    photo = ImageFile.objects.get(relative_path="photos/Vacations/DSCN0010.jpg").photo
    page.goto(f"{url}/photos/{photo.hothash}/")
    page.get_by_label("Rating").select_option("4")
    page.get_by_label("Tags").fill("italy, family")
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector(".message")
    photo.refresh_from_db()
    assert photo.rating == 4 and photo.tags == ["italy", "family"]
    page.shot("6-rated")
    # The edit queued index jobs; they put the rating into the indexes on the drive.
    wait_for(
        lambda: not Job.objects.filter(kind="index_session", status__in=["queued", "running"]).exists(),
        what="index jobs",
    )

    # 7. Migrate the storage to a new drive in the admin.
    new_drive = allowed_root / "new-drive"
    new_drive.mkdir()
    subprocess.run(["rsync", "-a", f"{root}/", f"{new_drive / storage.directory_name}/"], check=True) if shutil.which(
        "rsync"
    ) else shutil.copytree(root, new_drive / storage.directory_name, symlinks=True)
    page.goto(f"{url}/admin/storages/filestorage/{storage.pk}/change/")
    page.get_by_label("Base path").fill(str(allowed_root / "card"))
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_selector(".errorlist")  # waits for the form to come back with the reason
    page.shot("7a-migration-refused")
    page.get_by_label("Base path").fill(str(new_drive))
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_selector(".messagelist .success")
    storage.refresh_from_db()
    assert storage.base_path == str(new_drive) and storage.is_accessible
    page.shot("7b-migrated")

    # 8. The database is lost; ImaLink starts afresh, and the person recovers from the drive.
    stop_process(imalink_server.proc)
    call_command("flush", interactive=False, verbosity=0)
    imalink_server.start()  # a new admin with a new password, as on a first start
    log_in(page, url, (tmp_path / "var" / "admin_password").read_text().strip())
    page.goto(url + "/recovery/")
    page.get_by_label("Search roots").fill(str(new_drive))
    page.get_by_role("button", name="Find storages").click()
    assert "Family archive" in page.locator("main").inner_text()
    page.get_by_role("button", name="Recover", exact=True).click()
    wait_for_job_page(page)
    assert "restored" in page.locator("main").inner_text()
    page.shot("8-recovered")
    restored = FileStorage.objects.get(storage_uuid=storage.storage_uuid)
    assert restored.base_path == str(new_drive)
    assert ImageFile.objects.filter(file_storage=restored).count() == job.result["imported"]
    assert Photo.objects.get(hothash=photo.hothash).rating == 4  # the person's rating survived the loss


def assert_page_fits_and_reads_aloud(page, url, path, width):
    """The page has its title and one h1, every field a label, and nothing wider than the screen: a wide table
    scrolls inside its .table-wrap instead of the page."""
    page.goto(url + path)
    assert page.title().endswith("ImaLink"), path
    assert page.locator("h1").count() == 1, path
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name)""")
    assert unlabeled == [], (path, unlabeled)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    if overflow > 1:
        too_wide = page.evaluate(
            """() => [...document.querySelectorAll('main *')]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1"""
            """ && !e.closest('.table-wrap'))
            .slice(-3).map(e => e.outerHTML.slice(0, 120))"""
        )
        pytest.fail(f"{path} scrolls sideways by {overflow}px at {width}px; too wide: {too_wide}")
    loose = page.evaluate("() => [...document.querySelectorAll('table')].filter(t => !t.closest('.table-wrap')).length")
    assert loose == 0, f"{path} has {loose} tables outside a .table-wrap"
    page.shot(f"{width}{path.replace('/', '_') or '_'}")


@pytest.mark.parametrize("width", [375, 1280])
def test_every_page_fits_the_screen_and_can_be_read_aloud(imalink_server, browser_page, allowed_root, tmp_path, width):
    page, url = browser_page, imalink_server.url
    page.set_viewport_size({"width": width, "height": 800})
    log_in(page, url, (tmp_path / "var" / "admin_password").read_text().strip())
    for path in PAGES:
        assert_page_fits_and_reads_aloud(page, url, path, width)


def test_the_detail_pages_fit_a_phone_screen(imalink_server, browser_page, allowed_root, corpus, tmp_path):
    """The storage, session, photo and job pages at 375 px, filled by a real import and a real scan."""
    page, url = browser_page, imalink_server.url
    page.set_viewport_size({"width": 375, "height": 800})
    log_in(page, url, (tmp_path / "var" / "admin_password").read_text().strip())

    drive = allowed_root / "drive"
    drive.mkdir()
    page.goto(url + "/storages/new/")
    page.get_by_label("Base path").fill(str(drive))
    page.get_by_label("Display name").fill("Phone check")
    page.get_by_role("button", name="Create storage").click()
    page.wait_for_selector("h1:has-text('Phone check')")
    storage = FileStorage.objects.get(display_name="Phone check")

    # A RAW+JPEG pair (one photo, two files), a photo with GPS, and a truncated file that fails with a reason.
    card = allowed_root / "card"
    for name in [
        "raw/pair/canon_eos_6d.dng",
        "raw/pair/canon_eos_6d.JPG",
        "jpeg/camera/DSCN0010.jpg",
        "jpeg/camera/jolla.jpg",
        "bad/truncated/32d08f4a5eb10332506ebedbb9bc7257.jpg",
    ]:
        (card / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(corpus / name, card / name)
    page.goto(url + "/imports/new/")
    page.get_by_label("Title").fill("Phone-width card")
    page.get_by_label("Source folder").fill(str(card))
    page.get_by_label("Target folder under photos/").fill("2024/phone-width")
    page.get_by_role("button", name="Start import").click()
    import_job = Job.objects.get(pk=wait_for_job_page(page))
    assert import_job.result["imported"] == 4 and import_job.result["failed"] == 1, import_job.result

    # A moved file, so the storage page shows a table of the last scan.
    root = storage.full_path
    (root / "photos" / "Moved on a phone").mkdir()
    os.rename(root / "photos/2024/phone-width/jpeg/camera/jolla.jpg", root / "photos/Moved on a phone/jolla.jpg")
    page.goto(f"{url}/storages/{storage.storage_uuid}/")
    page.get_by_role("button", name="Scan", exact=True).click()
    scan_job_id = wait_for_job_page(page)

    pair = ImageFile.objects.get(file_storage=storage, relative_path__endswith="canon_eos_6d.dng").photo
    assert pair.files.count() == 2
    for path in [
        f"/storages/{storage.storage_uuid}/",
        f"/sessions/{import_job.session_id}/",
        f"/photos/{pair.hothash}/",
        f"/jobs/{import_job.pk}/",
        f"/jobs/{scan_job_id}/",
    ]:
        assert_page_fits_and_reads_aloud(page, url, path, 375)
