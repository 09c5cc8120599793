"""/api/v1/photos/: list, one photo with its files, its hotpreview, and changing the user's metadata."""

import io
import shutil

import pytest
from PIL import Image

from imports.models import Author, ImportSession, Photo
from indexing.rewrite import import_folder
from jobs.models import Job
from storages.models import FileStorage
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def storage(make_storage):
    return FileStorage.objects.get(storage_uuid=make_storage()["uuid"])


def import_files(storage, allowed_root, corpus, *names, folder="card", title="Card"):
    source = allowed_root / folder
    source.mkdir()
    for name in names:
        shutil.copy(corpus / name, source / name.rsplit("/", 1)[-1])
    session = ImportSession.objects.create(title=title, file_storage=storage)
    report = import_folder(session_id=session.pk, source_path=str(source))
    assert report.imported == len(names), report.failures
    return session


@pytest.fixture
def session(storage, allowed_root, corpus):
    return import_files(
        storage,
        allowed_root,
        corpus,
        "jpeg/camera/DSCN0010.jpg",
        "jpeg/camera/img_1771.jpg",
        "jpeg/camera/jolla.jpg",
    )


@pytest.fixture
def raw_photo(storage, allowed_root, corpus):
    import_files(storage, allowed_root, corpus, "raw/metadata_only/CanonRaw.cr2", folder="raw", title="Raw")
    photo = Photo.objects.get(files__original_filename="CanonRaw.cr2")
    assert photo.hothash.startswith("raw:")
    return photo


def dscn(session):
    return Photo.objects.get(files__original_filename="DSCN0010.jpg")


def test_it_lists_photos_newest_first(api, session):
    body = api.get("/api/v1/photos/").json()
    assert body["success"] is True
    data = body["data"]
    assert (data["count"], data["page"], data["pages"]) == (3, 1, 1)
    taken = [p["taken_at"] for p in data["photos"]]
    assert taken == sorted(taken, reverse=True)
    assert {"hothash", "title", "rating", "tags", "author", "has_hotpreview", "hotpreview_url"} <= set(
        data["photos"][0]
    )


def test_it_paginates(api, session):
    first = api.get("/api/v1/photos/?page_size=2").json()["data"]
    second = api.get("/api/v1/photos/?page_size=2&page=2").json()["data"]
    assert (first["pages"], len(first["photos"]), len(second["photos"])) == (2, 2, 1)
    assert not {p["hothash"] for p in first["photos"]} & {p["hothash"] for p in second["photos"]}
    assert_error(api.get("/api/v1/photos/?page_size=501"), 422, "validation_error")


def test_it_filters_by_session_storage_and_title(api, session, storage, allowed_root, corpus):
    other = import_files(storage, allowed_root, corpus, "jpeg/camera/canon_hdr_NO.jpg", folder="other", title="Other")
    assert api.get(f"/api/v1/photos/?session_id={other.pk}").json()["data"]["count"] == 1
    assert api.get(f"/api/v1/photos/?session_id={session.pk}").json()["data"]["count"] == 3
    assert api.get(f"/api/v1/photos/?storage_uuid={storage.storage_uuid}").json()["data"]["count"] == 4
    assert api.get("/api/v1/photos/?storage_uuid=00000000-0000-0000-0000-000000000000").json()["data"]["count"] == 0
    Photo.objects.filter(pk=dscn(session).pk).update(title="Tuscany hills")
    found = api.get("/api/v1/photos/?q=tuscany").json()["data"]
    assert [p["title"] for p in found["photos"]] == ["Tuscany hills"]


def test_it_gets_a_photo_with_its_files(api, session, storage):
    photo = dscn(session)
    data = api.get(f"/api/v1/photos/{photo.hothash}").json()["data"]
    assert data["hothash"] == photo.hothash
    assert data["camera_make"].upper().startswith("NIKON")
    assert data["gps_latitude"] == pytest.approx(43.467, abs=0.01)
    [file] = data["files"]
    assert file["path"] == "photos/DSCN0010.jpg"
    assert len(file["checksum"]) == 32
    assert (file["file_format"], file["status"], file["is_primary"]) == ("jpeg", "present", True)
    assert file["file_size"] == 161713
    assert file["storage_uuid"] == str(storage.storage_uuid)
    assert file["session_id"] == session.pk


def test_the_hotpreview_is_a_jpeg(api, session):
    photo = dscn(session)
    response = api.get(f"/api/v1/photos/{photo.hothash}/hotpreview")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response.content[:3] == b"\xff\xd8\xff"
    with Image.open(io.BytesIO(response.content)) as im:
        assert max(im.size) <= 200


def test_it_updates_the_users_metadata(api, session):
    photo = dscn(session)
    author = Author.objects.create(name="Kari")
    response = api.put(
        f"/api/v1/photos/{photo.hothash}",
        {"title": "Town hall", "rating": 4, "tags": ["italy", " tuscany ", "italy"], "author_id": author.pk},
    )
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert (data["title"], data["rating"], data["tags"], data["author"]) == (
        "Town hall",
        4,
        ["italy", "tuscany"],
        "Kari",
    )
    photo.refresh_from_db()
    assert (photo.title, photo.rating, photo.tags, photo.author_id) == ("Town hall", 4, ["italy", "tuscany"], author.pk)


def test_a_partial_update_keeps_the_other_fields_and_null_author_clears_it(api, session):
    photo = dscn(session)
    author = Author.objects.create(name="Kari")
    api.put(f"/api/v1/photos/{photo.hothash}", {"title": "Kept", "author_id": author.pk})
    data = api.put(f"/api/v1/photos/{photo.hothash}", {"rating": 2}).json()["data"]
    assert (data["title"], data["rating"], data["author_id"]) == ("Kept", 2, author.pk)
    data = api.put(f"/api/v1/photos/{photo.hothash}", {"author_id": None}).json()["data"]
    assert (data["title"], data["author_id"]) == ("Kept", None)


def test_an_edit_queues_the_session_index_so_recovery_keeps_it(api, session):
    photo = dscn(session)
    api.put(f"/api/v1/photos/{photo.hothash}", {"rating": 5})
    api.put(f"/api/v1/photos/{photo.hothash}", {"rating": 3})
    # One queued job per session is enough: it reads the newest values when it runs.
    job = Job.objects.get(kind="index_session")
    assert (job.session_id, job.storage_id, job.status) == (session.pk, session.file_storage_id, "queued")


def test_an_edit_on_an_unplugged_storage_is_saved_without_an_index_job(api, session, allowed_root):
    photo = dscn(session)
    storage = session.file_storage
    storage.full_path.rename(allowed_root / "away")
    response = api.put(f"/api/v1/photos/{photo.hothash}", {"rating": 1})
    assert response.status_code == 200
    assert not Job.objects.filter(kind="index_session").exists()


@pytest.mark.parametrize(
    "body",
    [
        {"rating": 6},
        {"rating": -1},
        {"tags": [""]},
        {"tags": "a,b"},
        {"tags": ["x" * 101]},
        {"tags": [str(n) for n in range(101)]},
        {"hothash": "changed"},
        {"title": "x" * 301},
    ],
)
def test_bad_updates_are_422_and_change_nothing(api, session, body):
    photo = dscn(session)
    before = (photo.title, photo.rating, photo.tags)
    assert_error(api.put(f"/api/v1/photos/{photo.hothash}", body), 422, "validation_error")
    photo.refresh_from_db()
    assert (photo.title, photo.rating, photo.tags) == before
    assert not Job.objects.exists()


def test_an_unknown_author_is_404(api, session):
    assert_error(api.put(f"/api/v1/photos/{dscn(session).hothash}", {"author_id": 999}), 404, "not_found")


def test_an_unknown_hothash_is_404(api, session):
    assert_error(api.get("/api/v1/photos/" + "0" * 32), 404, "not_found")
    assert_error(api.get("/api/v1/photos/" + "0" * 32 + "/hotpreview"), 404, "not_found")
    assert_error(api.put("/api/v1/photos/" + "0" * 32, {"rating": 1}), 404, "not_found")


def test_a_raw_hothash_with_a_colon_works(api, raw_photo):
    data = api.get(f"/api/v1/photos/{raw_photo.hothash}").json()["data"]
    assert data["hothash"] == raw_photo.hothash
    assert (data["has_hotpreview"], data["hotpreview_url"]) == (False, None)
    assert [f["file_format"] for f in data["files"]] == ["cr2"]
    assert_error(api.get(f"/api/v1/photos/{raw_photo.hothash}/hotpreview"), 404, "no_hotpreview")
    assert api.put(f"/api/v1/photos/{raw_photo.hothash}", {"rating": 3}).json()["data"]["rating"] == 3


def test_it_needs_authentication(client, session):
    assert_error(client.get("/api/v1/photos/"), 401, "unauthorized")


def test_the_routes_are_in_the_openapi_schema(api):
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    assert {"/api/v1/photos/", "/api/v1/photos/{hothash}", "/api/v1/photos/{hothash}/hotpreview"} <= set(paths)


def test_an_edit_survives_a_broker_that_is_down(api, session, monkeypatch, caplog, django_capture_on_commit_callbacks):
    from kombu.exceptions import OperationalError

    from imalink.celery import app

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to localhost:6379. Connection refused.")

    # Stands in for an unreachable Redis, which the test cannot take away from other tests on this machine.
    monkeypatch.setattr(app, "send_task", broker_down)
    photo = dscn(session)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.put(f"/api/v1/photos/{photo.hothash}", {"rating": 2})
    assert response.status_code == 200, response.content
    photo.refresh_from_db()
    assert photo.rating == 2
    assert Job.objects.get(kind="index_session").status == "queued"
    assert "stays queued" in caplog.text


def test_the_queued_index_job_writes_the_edit_to_the_session_index(api, session):
    import json

    from jobs.services import job_run

    photo = dscn(session)
    api.put(f"/api/v1/photos/{photo.hothash}", {"rating": 5, "tags": ["rome"], "title": "Kept on disk"})
    job_run(Job.objects.get(kind="index_session").pk)
    index = json.loads((session.file_storage.full_path / f"imports/session_{session.pk}.json").read_text())
    saved = index["files"][photo.hothash]["photo"]
    assert (saved["title"], saved["rating"], saved["tags"]) == ("Kept on disk", 5, ["rome"])
