"""Copies in the dashboard (issue 17 point 8): the photo's copies, the copies bars, "Copy to…", the migrate and
retire-check flows, "Repair from copies", the overview's protection summary and the photos list it links to.

Real storages on tmp_path ("Main SSD", "Backup Drive", "NAS Archive") filled by real imports and real replications;
job-starting forms are checked up to the queued Job row (no worker), and job pages are shown with the result of
the real plain function.
"""

import html as html_lib
import re

import pytest
from django.template.defaultfilters import filesizeformat
from django.test import Client

from copies.migration import migrate_storage
from copies.repair import repair_storage
from copies.replication import replicate_storage
from imports.models import ImageFile, Photo
from indexing.health import run_health_check
from indexing.validation import validate_storage
from jobs.models import Job
from storages.models import FileStorage
from tests.copies.test_copies import import_card, make_card, new_storage, plug_back, unplug
from tests.copies.test_repair import flip_a_byte

pytestmark = pytest.mark.django_db

CARD = ("jpeg/camera/DSCN0010.jpg", "jpeg/camera/jolla.jpg", "png/hopper.png")


@pytest.fixture
def staff(client, admin_user) -> Client:
    client.force_login(admin_user)
    return client


@pytest.fixture
def three(allowed_root, corpus):
    """Main SSD with one imported card, and an empty Backup Drive and NAS Archive."""
    main = new_storage(allowed_root, "Main SSD")
    backup = new_storage(allowed_root, "Backup Drive")
    archive = new_storage(allowed_root, "NAS Archive")
    session = import_card(main, make_card(allowed_root, corpus, names=CARD))
    return main, backup, archive, session


def html(response) -> str:
    assert response.status_code == 200, response.content[:3000]
    return response.content.decode()


def text(page: str) -> str:
    """The page's words with tags dropped and spaces folded, as a reader sees them."""
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page)))


def messages_of(response) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages]


# --- the photo's copies --------------------------------------------------------------------------


def test_the_photo_page_says_how_many_copies_are_available_and_where(staff, three):
    main, backup, archive, session = three
    replicate_storage(source=main, target=backup)
    replicate_storage(source=main, target=archive)
    away = unplug(archive)
    photo = Photo.objects.order_by("id").first()

    page = html(staff.get(f"/photos/{photo.hothash}/"))

    assert "2 of 3 copies available now" in text(page)
    copies = page[page.index('id="copies"') : page.index("<h2>Files</h2>")]
    for storage in (main, backup, archive):
        assert f'<a href="/storages/{storage.storage_uuid}/">{storage.display_name}</a>' in copies
    assert copies.count('<span class="badge ok">available</span>') == 2
    assert copies.count('<span class="badge warn">unplugged</span>') == 1
    assert re.search(r"NAS Archive</a>\s*<span class=\"badge warn\">unplugged", copies)
    # Replication reads each copy back, so the backups are verified; the import's own copy is too.
    verified = ImageFile.objects.filter(photo=photo, file_storage=backup).values_list("verified_at", flat=True)[0]
    assert f"verified {verified:%Y-%m-%d %H:%M}" in copies

    plug_back(archive, away)
    assert "3 of 3 copies available now" in text(html(staff.get(f"/photos/{photo.hothash}/")))


def test_a_photo_with_one_copy_says_1_of_1(staff, three):
    photo = Photo.objects.order_by("id").first()
    assert "1 of 1 copy available now" in text(html(staff.get(f"/photos/{photo.hothash}/")))


# --- copies bars -----------------------------------------------------------------------------------


def test_the_storage_page_shows_its_copies_bar_and_a_copy_to_form_listing_the_others(staff, three):
    main, backup, archive, session = three
    page = html(staff.get(f"/storages/{main.storage_uuid}/"))
    words = text(page)
    # Three active storages: the policy is 2 copies, and the card's 3 photos are only on Main SSD.
    assert "0 of 3 photos kept in 2+ storages (0.0%)" in words
    assert f'href="/photos/?copies_lt=2&amp;storage_uuid={main.storage_uuid}">3 with fewer</a>' in page
    assert f'href="/photos/?only_on={main.storage_uuid}">3 only here</a>' in page
    assert re.search(r'<meter class="bar copies low" min="0" max="100" value="0.0"', page)
    form = page[page.index('action="/storages/' + str(main.storage_uuid) + '/copy/"') :]
    form = form[: form.index("</form>")]
    options = re.findall(r'<option value="([^"]+)"[^>]*>([^<]+)</option>', form)
    assert sorted(options) == sorted(
        [(str(backup.storage_uuid), "Backup Drive (primary)"), (str(archive.storage_uuid), "NAS Archive (primary)")]
    )
    assert 'name="session"' not in form and "Copy every session" in form

    replicate_storage(source=main, target=backup)
    page = html(staff.get(f"/storages/{main.storage_uuid}/"))
    assert "3 of 3 photos kept in 2+ storages (100.0%)" in text(page) and "none only here" in text(page)
    assert re.search(r'<meter class="bar copies" min="0" max="100" value="100.0"', page)


def test_the_session_page_shows_its_copies_bar_and_copies_that_one_session(staff, three, allowed_root, corpus):
    main, backup, archive, session = three
    other = import_card(main, make_card(allowed_root, corpus, names=["jpeg/camera/door-knocker.jpg"], folder="card2"))
    replicate_storage(source=main, target=backup, session_ids=[other.pk])
    page = html(staff.get(f"/sessions/{session.pk}/"))
    assert "0 of 3 photos kept in 2+ storages" in text(page)
    assert f'href="/photos/?only_on={main.storage_uuid}&amp;session_id={session.pk}">3 only here</a>' in page
    assert f'<input type="hidden" name="session" value="{session.pk}">' in page and "Copy this session" in page
    assert "1 of 1 photo kept in 2+ storages (100.0%)" in text(html(staff.get(f"/sessions/{other.pk}/")))

    response = staff.post(
        f"/storages/{main.storage_uuid}/copy/", {"target": backup.storage_uuid, "session": session.pk}
    )

    job = Job.objects.get(kind="replicate")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert job.storage == main and job.session == session and job.status == Job.Status.QUEUED
    assert job.params == {"target_storage_uuid": str(backup.storage_uuid), "session_ids": [session.pk]}


def test_a_storage_alone_is_told_there_is_nothing_to_copy_into(staff, allowed_root, corpus):
    alone = new_storage(allowed_root, "Only drive")
    import_card(alone, make_card(allowed_root, corpus, names=CARD))
    page = html(staff.get(f"/storages/{alone.storage_uuid}/"))
    assert "There is no other active storage to copy into" in text(page)
    assert "/copy/" not in page
    # One storage: the policy asks for one copy, which every photo has.
    assert "3 of 3 photos kept in 1+ storage (100.0%)" in text(page)


# --- "Copy to…" ------------------------------------------------------------------------------------


def test_copy_to_starts_the_replication_of_every_session(staff, three):
    main, backup, archive, session = three
    response = staff.post(f"/storages/{main.storage_uuid}/copy/", {"target": archive.storage_uuid})
    job = Job.objects.get()
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert (job.kind, job.storage, job.session) == ("replicate", main, None)
    assert job.params == {"target_storage_uuid": str(archive.storage_uuid), "session_ids": None}
    assert messages_of(response) == [f"Started job #{job.pk}: copying to NAS Archive."]


@pytest.mark.parametrize(
    "target, said",
    [
        ("itself", "Choose another storage to copy into."),
        ("unknown", "Choose another storage to copy into."),
        ("not-a-uuid", "is not a valid UUID"),
        ("", "Choose a storage."),
    ],
)
def test_copy_to_refuses_a_target_that_is_not_another_storage(staff, three, target, said):
    main = three[0]
    value = {"itself": main.storage_uuid, "unknown": "0b5f8a4e-8c5e-4b59-9d3f-2a1f0e6b7c11"}.get(target, target)
    response = staff.post(f"/storages/{main.storage_uuid}/copy/", {"target": value})
    assert response.status_code == 302 and response["Location"] == f"/storages/{main.storage_uuid}/#copies"
    (message,) = messages_of(response)
    assert message.startswith("Nothing was copied. ") and said in message
    assert not Job.objects.exists()


def test_copy_to_an_unplugged_storage_is_refused_with_the_reason(staff, three):
    main, backup, archive, session = three
    FileStorage.objects.filter(pk=archive.pk).update(role=FileStorage.Role.ARCHIVE)
    unplug(backup)
    page = html(staff.get(f"/storages/{main.storage_uuid}/"))
    assert f'<option value="{backup.storage_uuid}">Backup Drive (primary, unplugged)</option>' in page
    assert f'<option value="{archive.storage_uuid}">NAS Archive (archive)</option>' in page
    response = staff.post(
        f"/storages/{main.storage_uuid}/copy/", {"target": backup.storage_uuid, "session": session.pk}
    )
    assert response["Location"] == f"/sessions/{session.pk}/#copies"
    (message,) = messages_of(response)
    assert message.startswith("Nothing was copied.") and "Backup Drive" in message
    assert not Job.objects.exists()
    page = text(html(staff.get(response["Location"])))
    assert message in page


def test_copy_to_a_session_of_another_storage_is_refused(staff, three, allowed_root, corpus):
    main, backup, archive, session = three
    theirs = import_card(backup, make_card(allowed_root, corpus, names=["jpeg/camera/door-knocker.jpg"], folder="c2"))
    response = staff.post(
        f"/storages/{main.storage_uuid}/copy/", {"target": archive.storage_uuid, "session": theirs.pk}
    )
    (message,) = messages_of(response)
    assert "has no import session with id" in message
    assert not Job.objects.exists()


def test_the_replication_job_page_shows_what_was_copied_and_links_the_target(staff, three):
    main, backup, archive, session = three
    result = replicate_storage(source=main, target=backup).as_dict()
    params = {"target_storage_uuid": str(backup.storage_uuid), "session_ids": None}
    job = Job.objects.create(kind="replicate", storage=main, status="succeeded", params=params, result=result)
    job.progress = {"total": result["total_bytes"], "done": result["total_bytes"], "files_total": 3, "files_done": 3}
    job.save()

    page = html(staff.get(f"/jobs/{job.pk}/"))

    words = text(page)
    size = filesizeformat(result["bytes_copied"]).replace("\xa0", " ")  # text() folds the no-break space
    assert f"3 files copied ({size}), 0 already there, 0 failed, of 3" in words
    assert "Nothing was deleted." in words
    assert f"{result['total_bytes']} of {result['total_bytes']} bytes" in words and "Files3 of 3" in words
    assert f'<a href="/storages/{backup.storage_uuid}/">See the storage copied into</a>' in page


# --- migrate ---------------------------------------------------------------------------------------


def test_the_migrate_form_starts_the_migration_job(staff, three, allowed_root):
    main = three[0]
    new_drive = allowed_root / "new-ssd"
    new_drive.mkdir()
    page = html(staff.get(f"/storages/{main.storage_uuid}/"))
    assert f'action="/storages/{main.storage_uuid}/migrate/"' in page and 'name="new_base_path"' in page
    assert "The old copy is left as it is" in page

    response = staff.post(f"/storages/{main.storage_uuid}/migrate/", {"new_base_path": str(new_drive)})

    job = Job.objects.get()
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert (job.kind, job.storage, job.params) == ("migrate", main, {"new_base_path": str(new_drive)})


@pytest.mark.parametrize(
    "new_base_path, said",
    [
        ("", "This field is required."),
        ("relative/path", "absolute"),
        ("/nowhere/at/all", None),
        ("base", "already at"),
    ],
)
def test_the_migrate_form_answers_a_bad_path_on_the_form_and_starts_nothing(staff, three, new_base_path, said):
    main = three[0]
    if new_base_path == "base":
        new_base_path = main.base_path
    response = staff.post(f"/storages/{main.storage_uuid}/migrate/", {"new_base_path": new_base_path})
    assert response.status_code == 400
    page = response.content.decode()
    form = page[page.index('id="migrate"') :]
    form = form[: form.index("</form>")]
    errors = re.findall(r'<span class="error" role="alert">([^<]+)</span>', form)
    assert len(errors) == 1, form
    if said:
        assert said in errors[0]
    assert f'value="{new_base_path}"' in form or not new_base_path  # what was typed stays
    assert not Job.objects.exists()
    main.refresh_from_db()
    assert main.base_path == three[0].base_path


def test_the_migration_job_page_shows_bytes_and_says_the_old_copy_was_left(staff, three, allowed_root):
    main = three[0]
    old_copy = main.full_path
    new_drive = allowed_root / "new-ssd"
    new_drive.mkdir()
    report = migrate_storage(storage=main, new_base_path=str(new_drive))
    result = report.as_dict()
    progress = {"total": result["bytes_total"], "done": result["bytes_total"], "files_total": result["files_total"]}
    progress["files_done"] = result["files_total"]
    job = Job.objects.create(kind="migrate", storage=main, status="succeeded", result=result, progress=progress)

    page = html(staff.get(f"/jobs/{job.pk}/"))

    words = text(page)
    assert f"{result['bytes_total']} of {result['bytes_total']} bytes" in words
    assert f"{result['files_total']} of {result['files_total']}" in words
    assert "Moved" in words and str(new_drive) in words
    assert f"The old copy was left untouched at {old_copy}" in words and old_copy.exists()


def test_a_running_migration_shows_its_time_left(staff, three):
    from django.utils import timezone

    main = three[0]
    started = timezone.now() - timezone.timedelta(seconds=1000)
    job = Job.objects.create(
        kind="migrate",
        storage=main,
        status="running",
        started_at=started,
        progress={"total": 4000, "done": 1000, "files_total": 8, "files_done": 2, "phase": "copy"},
    )
    words = text(html(staff.get(f"/jobs/{job.pk}/")))
    assert "1000 of 4000 bytes" in words and "2 of 8" in words and "copy" in words
    eta = float(re.search(r"Time left\s*(\d+) s", words).group(1))
    assert 3000 <= eta <= 3600  # 1000 s for a quarter of the bytes: about 3000 s for the rest


# --- retire-check ----------------------------------------------------------------------------------


def test_retire_check_lists_the_photos_whose_only_copy_is_here_then_says_safe(staff, three):
    main, backup, archive, session = three
    page = html(staff.get(f"/storages/{main.storage_uuid}/"))
    assert f'action="/storages/{main.storage_uuid}/retire-check/"' in page

    page = html(staff.get(f"/storages/{main.storage_uuid}/retire-check/"))

    assert "Not safe to retire" in page and "3 photos would lose their only copy" in text(page)
    section = page[page.index('id="only-copy"') :]
    for photo in Photo.objects.all():
        assert f'href="/photos/{photo.hothash}/"' in section
    assert 'id="only-verified"' not in page

    replicate_storage(source=main, target=backup)
    page = html(staff.get(f"/storages/{main.storage_uuid}/retire-check/"))
    assert "Safe to retire" in page and "Not safe" not in page and 'id="only-copy"' not in page


def test_retire_check_names_the_photos_whose_only_verified_copy_is_here(staff, three):
    main, backup, archive, session = three
    replicate_storage(source=main, target=backup)
    ImageFile.objects.filter(file_storage=backup).update(verified_at=None)
    ImageFile.objects.filter(file_storage=main).update(verified_at="2026-01-01T00:00:00Z")
    words = text(html(staff.get(f"/storages/{main.storage_uuid}/retire-check/")))
    assert "Not safe to retire" in words and "3 would lose their only verified copy" in words
    assert "Only verified copy here (3)" in words


def test_retire_check_answers_for_an_unplugged_storage_and_a_bad_uuid_is_404(staff, three):
    main = three[0]
    unplug(main)
    assert "Not safe to retire" in html(staff.get(f"/storages/{main.storage_uuid}/retire-check/"))
    assert staff.get("/storages/0b5f8a4e-8c5e-4b59-9d3f-2a1f0e6b7c11/retire-check/").status_code == 404


# --- repair from copies ----------------------------------------------------------------------------


def _validation_job(storage) -> Job:
    result = validate_storage(storage, mode="full").as_dict()
    return Job.objects.create(kind="validate", storage=storage, status="succeeded", result=result)


def test_repair_from_copies_shows_after_a_validation_that_found_problems_and_starts_the_job(staff, three):
    main, backup, archive, session = three
    replicate_storage(source=main, target=backup)
    _validation_job(main)
    page = html(staff.get(f"/storages/{main.storage_uuid}/"))
    assert "Repair from copies" not in page  # a clean validation: nothing to repair

    rows = list(ImageFile.objects.filter(file_storage=main).order_by("id"))
    flip_a_byte(main.full_path / rows[0].relative_path)
    (main.full_path / rows[1].relative_path).unlink()
    validation = _validation_job(main)
    page = html(staff.get(f"/storages/{main.storage_uuid}/"))
    assert re.search(
        r"found\s*<span class=\"badge bad\">1 corrupt</span>\s*<span class=\"badge warn\">1 missing</span>", page
    )
    repair_action = f'action="/storages/{main.storage_uuid}/actions/repair/"'
    assert repair_action in page
    assert repair_action in html(staff.get(f"/jobs/{validation.pk}/"))  # and on the validation's own page

    response = staff.post(f"/storages/{main.storage_uuid}/actions/repair/")

    job = Job.objects.get(kind="repair")
    assert response["Location"] == f"/jobs/{job.pk}/" and job.storage == main and job.status == Job.Status.QUEUED


def test_repair_of_an_unplugged_storage_is_refused(staff, three):
    main = three[0]
    unplug(main)
    response = staff.post(f"/storages/{main.storage_uuid}/actions/repair/")
    assert response["Location"] == f"/storages/{main.storage_uuid}/"
    assert "unavailable" in messages_of(response)[0].lower()
    assert not Job.objects.filter(kind="repair").exists()


def test_the_repair_job_page_lists_repaired_files_and_those_with_no_good_copy(staff, three, allowed_root, corpus):
    main, backup, archive, session = three
    replicate_storage(source=main, target=backup)
    lonely = import_card(main, make_card(allowed_root, corpus, names=["jpeg/camera/door-knocker.jpg"], folder="c2"))
    repaired = ImageFile.objects.filter(import_session=session).order_by("id").first()
    unrepairable = ImageFile.objects.get(import_session=lonely)
    flip_a_byte(main.full_path / repaired.relative_path)
    flip_a_byte(main.full_path / unrepairable.relative_path)
    validate_storage(main, mode="full")
    result = repair_storage(main).as_dict()
    job = Job.objects.create(kind="repair", storage=main, status="succeeded", result=result)

    page = html(staff.get(f"/jobs/{job.pk}/"))

    assert "1 file repaired, 1 with no good copy, 0 failed, of 2 checked" in text(page)
    done = page[page.index('<caption class="hint">Repaired</caption>') :]
    done, nothing = done[: done.index("</table>")], done[done.index("No good copy anywhere") :]
    assert f'href="/photos/{repaired.photo.hothash}/"' in done and ".imalink/quarantine/" in done
    assert f'href="/photos/{unrepairable.photo.hothash}/"' in nothing and unrepairable.relative_path in nothing


# --- overview and the photos list --------------------------------------------------------------------


def test_the_overview_summarises_protection_and_links_to_the_under_protected(staff, three, allowed_root, corpus):
    main, backup, archive, session = three
    lonely = import_card(backup, make_card(allowed_root, corpus, names=["jpeg/camera/door-knocker.jpg"], folder="c2"))
    replicate_storage(source=main, target=archive, session_ids=[session.pk])
    extra = import_card(main, make_card(allowed_root, corpus, names=["jpeg/camera/canon_hdr_NO.jpg"], folder="c3"))

    page = html(staff.get("/"))

    words = text(page)
    assert "5 photos: 3 with 2+ copies, 1 only on Backup Drive, 1 only on Main SSD." in words
    assert f'<a href="/photos/?only_on={main.storage_uuid}">1 only on Main SSD</a>' in page
    assert 'href="/photos/?copies_lt=2">See the 2 under-protected photos</a>' in page

    listed = html(staff.get("/photos/?copies_lt=2"))
    expected = {Photo.objects.get(files__import_session=s).hothash for s in (lonely, extra)}
    assert set(re.findall(r'href="/photos/([^/"]+)/"', listed)) == expected
    assert "2 photos kept in fewer than 2 storages." in text(listed)

    only_main = html(staff.get(f"/photos/?only_on={main.storage_uuid}"))
    assert set(re.findall(r'href="/photos/([^/"]+)/"', only_main)) == {
        Photo.objects.get(files__import_session=extra).hothash
    }
    assert "1 photo only on Main SSD." in text(only_main)


def test_the_photos_list_is_in_the_menu_and_lists_every_photo_with_its_copies(staff, three):
    main, backup, archive, session = three
    replicate_storage(source=main, target=backup)
    page = html(staff.get("/photos/"))
    assert '<li><a href="/photos/">Photos</a></li>' in page
    assert "3 photos." in text(page) and text(page).count("2 copies") == 3
    assert set(re.findall(r'href="/photos/([^/"]+)/"', page)) == set(Photo.objects.values_list("hothash", flat=True))


def test_the_health_checks_few_copies_issue_links_to_the_photos_page(staff, three, allowed_root, corpus):
    main, backup, archive, session = three
    replicate_storage(source=main, target=backup)
    extra = import_card(main, make_card(allowed_root, corpus, names=["jpeg/camera/canon_hdr_NO.jpg"], folder="c3"))
    report = run_health_check()
    (issue,) = [i for i in report.issues if i.get("link")]
    page_link = f"/photos/?copies_lt=2&amp;storage_uuid={main.storage_uuid}"
    assert issue["link"] == f"/api/v1/photos/?copies_lt=2&storage_uuid={main.storage_uuid}"
    assert f'<a href="{page_link}">See them</a>' in html(staff.get("/health/"))
    assert f'<a href="{page_link}">See them</a>' in html(staff.get("/"))

    listed = html(staff.get(page_link.replace("&amp;", "&")))
    assert set(re.findall(r'href="/photos/([^/"]+)/"', listed)) == {
        Photo.objects.get(files__import_session=extra).hothash
    }
    assert "1 photo kept in fewer than 2 storages, with a file on Main SSD." in text(listed)


def test_the_overview_has_no_protection_summary_before_any_photo(staff, allowed_root):
    new_storage(allowed_root, "Main SSD")
    assert 'id="protection"' not in html(staff.get("/"))


@pytest.mark.parametrize(
    "query, said",
    [
        ("copies_lt=0", "copies_lt must be a whole number of storages from 1 to 1000"),
        ("copies_lt=two", "copies_lt must be a whole number"),
        ("only_on=nope", "There is no storage 'nope'"),
        ("storage_uuid=0b5f8a4e-8c5e-4b59-9d3f-2a1f0e6b7c11", "There is no storage"),
        ("session_id=999999", "There is no import session '999999'"),
    ],
)
def test_the_photos_list_answers_a_bad_filter_clearly(staff, three, query, said):
    response = staff.get(f"/photos/?{query}")
    assert response.status_code == 400
    assert said in response.content.decode().replace("&#x27;", "'")


# --- staff only --------------------------------------------------------------------------------------


def test_the_new_pages_and_forms_are_for_staff_only(client, admin_user, django_user_model, three, allowed_root):
    main, backup = three[0], three[1]
    gets = [f"/storages/{main.storage_uuid}/retire-check/", "/photos/?copies_lt=2"]
    posts = [
        (f"/storages/{main.storage_uuid}/copy/", {"target": backup.storage_uuid}),
        (f"/storages/{main.storage_uuid}/migrate/", {"new_base_path": str(allowed_root)}),
        (f"/storages/{main.storage_uuid}/actions/repair/", {}),
    ]
    for path in gets:
        assert client.get(path)["Location"].startswith("/accounts/login/?next=")
    for path, data in posts:
        assert client.post(path, data)["Location"].startswith("/accounts/login/?next=")
    someone = django_user_model.objects.create_user("someone", password="x-pass-12345")
    client.force_login(someone)
    for path in gets:
        assert client.get(path).status_code == 403
    for path, data in posts:
        assert client.post(path, data).status_code == 403
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(admin_user)
    assert csrf.post(posts[0][0], posts[0][1]).status_code == 403
    assert not Job.objects.exists()
