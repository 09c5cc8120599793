"""The import, session and photo pages: login, forms that change nothing on bad input, previews, edits."""

import io
import shutil

import pytest
from django.test import Client
from PIL import Image

from imports.models import Author, ImportSession, Photo
from indexing.rewrite import import_folder, storage_create
from jobs.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def drive(allowed_root):
    path = allowed_root / "drive"
    path.mkdir()
    return path


@pytest.fixture
def storage(drive):
    return storage_create(base_path=str(drive), display_name="Main drive")


@pytest.fixture
def card(allowed_root, corpus):
    folder = allowed_root / "card"
    folder.mkdir()
    for name in ("jpeg/camera/DSCN0010.jpg", "jpeg/camera/jolla.jpg", "raw/metadata_only/CanonRaw.cr2"):
        shutil.copy(corpus / name, folder)
    return folder


@pytest.fixture
def session(storage, card):
    session = ImportSession.objects.create(title="Tuscany", file_storage=storage)
    assert import_folder(session_id=session.pk, source_path=str(card)).imported == 3
    return session


def photo_of(filename):
    return Photo.objects.get(files__original_filename=filename)


def unplug(drive, allowed_root):
    drive.rename(allowed_root / "unplugged")


def is_jpeg(content):
    return content[:3] == b"\xff\xd8\xff"


@pytest.mark.parametrize(
    "path", ["/imports/new/", "/sessions/1/", "/photos/abc/", "/photos/abc/hotpreview.jpg", "/photos/abc/preview.jpg"]
)
def test_anonymous_visitors_are_sent_to_log_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_import_form_without_a_storage_offers_to_create_one(logged_in):
    response = logged_in.get("/imports/new/")
    assert response.status_code == 200
    assert b"Create your first storage" in response.content
    assert b'href="/storages/new/"' in response.content


def test_the_import_form_has_labelled_fields(logged_in, storage):
    html = logged_in.get("/imports/new/").content.decode()
    assert html.count("<h1>") == 1 and "<title>New import" in html
    assert "csrfmiddlewaretoken" in html
    for name in ("storage", "title", "description", "author", "source_path", "target_subdirectory", "recursive"):
        assert f'for="id_{name}"' in html and f'name="{name}"' in html
    assert "Main drive" in html


def form_data(storage, source_path, **extra):
    return {
        "storage": storage.pk,
        "title": "Card from Rome",
        "source_path": str(source_path),
        "target_subdirectory": "2024/rome",
        "recursive": "on",
        **extra,
    }


@pytest.mark.parametrize(
    "source, target, message",
    [
        ("relative/path", "", "absolute"),
        ("/definitely/not/allowed", "", "source_path"),
        ("{card}", "../escape", "target_subdirectory"),
    ],
)
def test_a_bad_import_shows_the_error_and_creates_nothing(logged_in, storage, card, source, target, message):
    response = logged_in.post("/imports/new/", form_data(storage, source.format(card=card), target_subdirectory=target))
    assert response.status_code == 200
    assert b'class="error"' in response.content
    assert message.encode() in response.content
    assert not ImportSession.objects.exists()
    assert not Job.objects.exists()


def test_an_import_into_an_unplugged_storage_is_refused(logged_in, storage, card, drive, allowed_root):
    unplug(drive, allowed_root)
    response = logged_in.post("/imports/new/", form_data(storage, card))
    assert response.status_code == 200
    assert b"unavailable" in response.content
    assert not ImportSession.objects.exists() and not Job.objects.exists()


def test_a_good_import_creates_the_session_and_a_queued_job(logged_in, storage, card):
    author = Author.objects.create(name="Kari")
    response = logged_in.post("/imports/new/", form_data(storage, card, author=author.pk, description="Day one"))
    session = ImportSession.objects.get()
    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert (session.title, session.description, session.default_author, session.file_storage) == (
        "Card from Rome",
        "Day one",
        author,
        storage,
    )
    assert (job.kind, job.status, job.session, job.storage) == ("import", "queued", session, storage)
    assert job.params == {"source_path": str(card), "target_subdirectory": "2024/rome", "recursive": True}


def test_the_session_page_shows_thumbnails_statuses_and_index(logged_in, session):
    html = logged_in.get(f"/sessions/{session.pk}/").content.decode()
    jpeg = photo_of("DSCN0010.jpg")
    raw = photo_of("CanonRaw.cr2")
    assert html.count("<h1>") == 1 and "<title>Tuscany" in html
    assert f'loading="lazy" src="/photos/{jpeg.hothash}/hotpreview.jpg"' in html
    assert f'href="/photos/{raw.hothash}/"' in html
    assert f"/photos/{raw.hothash}/hotpreview.jpg" not in html  # a placeholder instead
    assert "no preview" in html
    assert html.count('class="badge ok">present<') == 3
    assert "Regenerate index" in html
    assert 'Current</dt><dd><span class="badge ok">yes' in html


def test_the_session_page_marks_missing_files(logged_in, session):
    session.image_files.filter(original_filename="jolla.jpg").update(status="missing")
    html = logged_in.get(f"/sessions/{session.pk}/").content.decode()
    assert 'class="badge bad">missing<' in html
    assert "1 missing" in html


def test_the_session_page_renders_with_the_storage_unplugged(logged_in, session, drive, allowed_root):
    unplug(drive, allowed_root)
    response = logged_in.get(f"/sessions/{session.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "unavailable" in html
    assert f"/photos/{photo_of('DSCN0010.jpg').hothash}/hotpreview.jpg" in html
    hotpreview = logged_in.get(f"/photos/{photo_of('DSCN0010.jpg').hothash}/hotpreview.jpg")
    assert hotpreview.status_code == 200 and is_jpeg(hotpreview.content)


def test_the_session_page_paginates(logged_in, session, settings, monkeypatch):
    monkeypatch.setattr("imports.views.THUMBS_PER_PAGE", 2)
    first = logged_in.get(f"/sessions/{session.pk}/").content.decode()
    second = logged_in.get(f"/sessions/{session.pk}/?page=2").content.decode()
    assert "Page 1 of 2" in first and "Page 2 of 2" in second
    assert first.count("<figure>") == 2 and second.count("<figure>") == 1


def test_an_unknown_session_is_404(logged_in):
    assert logged_in.get("/sessions/999/").status_code == 404


def test_regenerating_the_index_starts_a_job(logged_in, session):
    response = logged_in.post(f"/sessions/{session.pk}/regenerate-index/")
    job = Job.objects.get()
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert (job.kind, job.session, job.storage, job.status) == (
        "index_session",
        session,
        session.file_storage,
        "queued",
    )


def test_regenerating_the_index_of_an_unplugged_storage_is_refused(logged_in, session, drive, allowed_root):
    unplug(drive, allowed_root)
    response = logged_in.post(f"/sessions/{session.pk}/regenerate-index/", follow=True)
    assert b"cannot be regenerated" in response.content
    assert not Job.objects.exists()


def test_the_photo_page_shows_files_exif_and_a_map_link(logged_in, session):
    photo = photo_of("DSCN0010.jpg")
    html = logged_in.get(f"/photos/{photo.hothash}/").content.decode()
    assert html.count("<h1>") == 1
    assert "photos/DSCN0010.jpg" in html
    assert photo.files.get().checksum in html
    assert "Main drive" in html and "JPEG" in html and "present" in html
    assert "NIKON" in html.upper() and "2008-10-22" in html
    assert "https://www.openstreetmap.org/?mlat=43.46" in html
    assert f'src="/photos/{photo.hothash}/preview.jpg"' in html
    for name in ("title", "description", "rating", "tags", "author"):
        assert f'for="id_{name}"' in html


def test_the_photo_page_edits_rating_tags_and_author(logged_in, session):
    photo = photo_of("jolla.jpg")
    author = Author.objects.create(name="Kari")
    response = logged_in.post(
        f"/photos/{photo.hothash}/",
        {"title": "Harbour", "description": "", "rating": "4", "tags": "sea, boats, , sea", "author": author.pk},
        follow=True,
    )
    assert response.redirect_chain == [(f"/photos/{photo.hothash}/", 302)]
    assert b"saved" in response.content
    photo.refresh_from_db()
    assert (photo.title, photo.rating, photo.tags, photo.author) == ("Harbour", 4, ["sea", "boats"], author)
    assert Job.objects.filter(kind="index_session", session=session).exists()


def test_a_bad_edit_shows_the_error_and_changes_nothing(logged_in, session):
    photo = photo_of("jolla.jpg")
    response = logged_in.post(f"/photos/{photo.hothash}/", {"rating": "6", "tags": "x" * 101})
    assert response.status_code == 200
    assert b'class="error"' in response.content
    photo.refresh_from_db()
    assert photo.rating == 0


def test_a_long_tag_is_refused_by_the_service(logged_in, session):
    photo = photo_of("jolla.jpg")
    response = logged_in.post(f"/photos/{photo.hothash}/", {"rating": "1", "tags": "ok, " + "x" * 101})
    assert response.status_code == 200 and b"at most 100 characters" in response.content
    photo.refresh_from_db()
    assert (photo.rating, photo.tags) == (0, [])


def test_the_preview_is_rendered_from_the_original_when_the_storage_is_there(logged_in, session):
    response = logged_in.get(f"/photos/{photo_of('jolla.jpg').hothash}/preview.jpg")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.content)) as im:
        assert im.format == "JPEG" and 200 < max(im.size) <= 1024


def test_the_preview_falls_back_to_the_hotpreview_when_unplugged(logged_in, session, drive, allowed_root):
    photo = photo_of("jolla.jpg")
    unplug(drive, allowed_root)
    response = logged_in.get(f"/photos/{photo.hothash}/preview.jpg")
    assert response.status_code == 200
    assert response.content == bytes(photo.hotpreview)


def test_the_raw_photo_page_works_and_its_hotpreview_is_404(logged_in, session):
    raw = photo_of("CanonRaw.cr2")
    assert raw.hothash.startswith("raw:")
    page = logged_in.get(f"/photos/{raw.hothash}/")
    assert page.status_code == 200 and b"CanonRaw.cr2" in page.content
    assert logged_in.get(f"/photos/{raw.hothash}/hotpreview.jpg").status_code == 404


def test_the_hotpreview_is_cached_privately(logged_in, session):
    response = logged_in.get(f"/photos/{photo_of('DSCN0010.jpg').hothash}/hotpreview.jpg")
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "private, max-age=86400"
    assert is_jpeg(response.content)


def test_an_unknown_photo_is_404(logged_in):
    assert logged_in.get("/photos/" + "0" * 32 + "/").status_code == 404
    assert logged_in.get("/photos/" + "0" * 32 + "/preview.jpg").status_code == 404


def test_posts_without_a_csrf_token_are_refused(admin_user, session, storage, card):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    photo = photo_of("jolla.jpg")
    assert strict.post("/imports/new/", form_data(storage, card)).status_code == 403
    assert strict.post(f"/photos/{photo.hothash}/", {"rating": "5"}).status_code == 403
    assert strict.post(f"/sessions/{session.pk}/regenerate-index/").status_code == 403
    assert ImportSession.objects.count() == 1 and not Job.objects.exists()
