"""Copies across storages from a real browser (issue 17 point 8): headless Chromium against the live server that
`make run` starts (web, worker, beat). Three storages on tmp_path ("Main SSD", "Backup Drive", "NAS Archive"); the
person checks whether Main SSD can be retired, copies it to the backup, repairs a corrupted file from that copy, and
moves Main SSD to a new drive, each by clicking through the pages and the jobs they start.
"""

import shutil

from imports.models import ImageFile, ImportSession, Photo
from indexing.rewrite import import_folder, storage_create
from jobs.models import Job
from storages.layout import QUARANTINE_DIR
from storages.models import FileStorage
from tests.browser.test_csp import Watch
from tests.browser.test_flows import assert_page_fits_and_reads_aloud, log_in, wait_for_job_page

CARD = ("jpeg/camera/DSCN0010.jpg", "jpeg/camera/jolla.jpg", "png/hopper.png")


def storages_with_a_card(allowed_root, corpus):
    made = []
    for name, role in (("Main SSD", "primary"), ("Backup Drive", "backup"), ("NAS Archive", "archive")):
        base = allowed_root / name.lower().replace(" ", "-")
        base.mkdir()
        storage = storage_create(base_path=str(base), display_name=name)
        FileStorage.objects.filter(pk=storage.pk).update(role=role)
        made.append(storage)
    card = allowed_root / "card"
    card.mkdir()
    for name in CARD:
        shutil.copy(corpus / name, card)
    session = ImportSession.objects.create(title="Card", file_storage=made[0])
    report = import_folder(session_id=session.pk, source_path=str(card))
    assert report.imported == 3, report.failures
    return (*made, session)


def test_retire_check_copy_repair_and_migrate_clicked_through(
    imalink_server, browser_page, allowed_root, corpus, tmp_path
):
    page, url = browser_page, imalink_server.url
    watch = Watch(page)  # every page under the Content-Security-Policy: no refusal, no script error, no 4xx/5xx

    def shot(name):
        page.shot(name)
        watch.problems += [f"{page.url}: {v}" for v in page.evaluate("() => window.__violations || []")]

    main, backup, archive, session = storages_with_a_card(allowed_root, corpus)
    log_in(page, url, (tmp_path / "var" / "admin_password").read_text().strip())
    main_page = f"{url}/storages/{main.storage_uuid}/"
    photo = Photo.objects.order_by("id").first()

    # The overview's protection summary: nothing is copied yet.
    page.goto(url + "/")
    summary = page.locator("[data-protection-summary]")
    assert summary.inner_text() == "3 photos: 0 with 2+ copies, 3 only on Main SSD."
    shot("1-overview-unprotected")
    summary.get_by_role("link", name="3 only on Main SSD").click()
    page.wait_for_selector("[data-photo-count]")
    assert page.locator("[data-photo-count]").inner_text().startswith("3 photos only on Main SSD.")

    # 1. Retire-check: not safe, and the photos that would lose their only copy are linked.
    page.goto(main_page)
    page.get_by_role("button", name="Check before retiring").click()
    page.wait_for_selector("h1:has-text('Retire Main SSD?')")
    assert page.get_by_text("Not safe to retire").is_visible()
    assert page.locator("#only-copy a[href^='/photos/']").count() == 3
    shot("2-retire-not-safe")
    page.locator(f"#only-copy a[href='/photos/{photo.hothash}/']").click()
    page.wait_for_selector("[data-copies]")
    assert page.locator("[data-copies]").inner_text().startswith("1 of 1 copy available now")

    # 2. Copy to…: Main SSD's sessions into Backup Drive, through the replication job.
    page.goto(main_page)
    page.get_by_label("Copy to").select_option(label="Backup Drive (backup)")
    page.get_by_role("button", name="Copy every session").click()
    job = Job.objects.get(pk=wait_for_job_page(page))
    assert job.kind == "replicate" and job.result["copied_files"] == 3, job.result
    assert page.locator("[data-result]").inner_text().startswith("3 files copied")
    shot("3-copied")
    assert ImageFile.objects.filter(file_storage=backup).count() == ImageFile.objects.filter(file_storage=main).count()
    page.goto(f"{url}/photos/{photo.hothash}/")
    assert page.locator("[data-copies]").inner_text().startswith("2 of 2 copies available now")
    assert page.locator("#copies").get_by_role("link", name="Backup Drive").is_visible()
    page.goto(main_page)
    assert page.locator("#copies [data-copies-summary]").inner_text().startswith("3 of 3 photos kept in 2+ storages")
    page.get_by_role("button", name="Check before retiring").click()
    page.wait_for_selector("h1:has-text('Retire Main SSD?')")
    assert page.get_by_text("Safe to retire").is_visible()
    shot("4-retire-safe")

    # The session page copies that one session, to NAS Archive.
    page.goto(f"{url}/sessions/{session.pk}/")
    page.get_by_label("Copy to").select_option(label="NAS Archive (archive)")
    page.get_by_role("button", name="Copy this session").click()
    job = Job.objects.get(pk=wait_for_job_page(page))
    assert job.params["session_ids"] == [session.pk] and job.result["copied_files"] == 3, job.result

    # 3. Repair: a flipped byte on Main SSD, found by a full validation, put back from a copy.
    row = ImageFile.objects.filter(file_storage=main).order_by("id").first()
    damaged_path = main.full_path / row.relative_path
    good = damaged_path.read_bytes()
    data = bytearray(good)
    data[len(data) // 2] ^= 0x01
    damaged_path.write_bytes(bytes(data))
    page.goto(main_page)
    page.get_by_role("button", name="Validate (full)").click()
    job = Job.objects.get(pk=wait_for_job_page(page))
    assert len(job.result["corrupted_files"]) == 1, job.result
    page.goto(main_page)
    assert page.locator("#repair").get_by_text("1 corrupt").is_visible()
    shot("5-validation-found-a-problem")
    page.locator("#repair").get_by_role("button", name="Repair from copies").click()
    job = Job.objects.get(pk=wait_for_job_page(page))
    assert job.kind == "repair" and len(job.result["repaired"]) == 1, job.result
    assert page.locator("[data-result]").inner_text().startswith("1 file repaired, 0 with no good copy")
    assert page.get_by_role("link", name=row.relative_path).is_visible()
    shot("6-repaired")
    assert damaged_path.read_bytes() == good
    assert [p.read_bytes() for p in (main.full_path / QUARANTINE_DIR).rglob("*") if p.is_file()] == [bytes(data)]

    # 4. Migrate: Main SSD moves to a new drive; the job shows bytes, and says the old copy was left.
    page.set_viewport_size({"width": 375, "height": 800})
    for path in (f"/storages/{main.storage_uuid}/", f"/storages/{main.storage_uuid}/retire-check/", "/photos/"):
        assert_page_fits_and_reads_aloud(page, url, path, 375)
    page.set_viewport_size({"width": 1280, "height": 900})
    old_copy = main.full_path
    new_drive = allowed_root / "new-ssd"
    new_drive.mkdir()
    page.goto(main_page)
    page.get_by_label("New base path").fill("not/absolute")
    page.get_by_role("button", name="Move the storage").click()
    assert page.locator("#migrate [role=alert]").is_visible()
    assert not Job.objects.filter(kind="migrate").exists()
    page.get_by_label("New base path").fill(str(new_drive))
    page.get_by_role("button", name="Move the storage").click()
    job = Job.objects.get(pk=wait_for_job_page(page))
    assert job.kind == "migrate" and job.result["switched"], job.result
    assert page.locator("[data-old-copy]").inner_text().startswith("The old copy was left untouched")
    bytes_total = job.result["bytes_total"]
    assert page.get_by_text(f"{bytes_total} of {bytes_total} bytes").is_visible()
    shot("7-migrated")
    main = FileStorage.objects.get(pk=main.pk)
    assert main.full_path == new_drive / main.directory_name and old_copy.is_dir()
    page.set_viewport_size({"width": 375, "height": 800})
    for path in (f"/jobs/{job.pk}/", f"/photos/{photo.hothash}/", "/"):
        assert_page_fits_and_reads_aloud(page, url, path, 375)
        shot(f"375-{path.strip('/').replace('/', '-') or 'overview'}")
    # The one answer above 399 is the refused path, a 400 by design.
    assert [p for p in watch.problems if not p.endswith(f"400 for {url}/storages/{main.storage_uuid}/migrate/")] == []
