"""POST /api/v1/import-sessions/create and the session listing: a session is tied to one active storage."""

import pytest

from imports.models import Author, ImportSession
from storages.models import FileStorage
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

BASE = "/api/v1/import-sessions"


@pytest.fixture
def author():
    return Author.objects.create(name="Ola Nordmann", email="ola@example.org")


@pytest.fixture
def storage(make_storage):
    return make_storage("Main Photo Archive")


def create(api, body):
    response = api.post(f"{BASE}/create", body)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    return body["data"]


def assert_refused(api, body, status, code=None):
    count = ImportSession.objects.count()
    error = assert_error(api.post(f"{BASE}/create", body), status, code)
    assert ImportSession.objects.count() == count
    return error


def test_it_creates_a_session_from_the_seed_body(api, storage, author):
    # Workflow 1, step 3, exactly as the seed sends it.
    data = create(
        api,
        {
            "title": "Italy Vacation 2024",
            "description": "Family trip to Rome and Venice",
            "default_author_id": author.id,
            "file_storage_id": storage["id"],
        },
    )

    assert data["images_count"] == 0
    assert data["title"] == "Italy Vacation 2024"
    assert data["description"] == "Family trip to Rome and Venice"
    assert data["file_storage_id"] == storage["id"]
    assert data["file_storage_uuid"] == storage["storage_uuid"]
    assert data["default_author_id"] == author.id
    assert data["default_author"] == "Ola Nordmann"
    assert data["index_file"] == f"imports/session_{data['id']}.json"
    session = ImportSession.objects.get(pk=data["id"])
    assert session.file_storage.storage_uuid.hex == storage["storage_uuid"].replace("-", "")
    assert session.default_author == author


def test_it_creates_a_session_by_storage_uuid(api, storage):
    data = create(api, {"title": "By uuid", "file_storage_uuid": storage["storage_uuid"]})

    assert data["file_storage_id"] == storage["id"]
    assert data["images_count"] == 0
    assert data["default_author_id"] is None
    assert ImportSession.objects.get(pk=data["id"]).file_storage_id == storage["id"]


def test_it_creates_a_session_with_the_seed_minimal_body(api, storage):
    # Workflow 4, step 2: only a title and the storage's id.
    data = create(api, {"title": "Latest Import", "file_storage_id": storage["id"]})

    assert data["description"] == ""
    assert ImportSession.objects.filter(pk=data["id"], title="Latest Import").exists()


def test_it_lists_sessions_newest_first(api, storage, author):
    first = create(api, {"title": "First", "file_storage_id": storage["id"]})
    second = create(api, {"title": "Second", "file_storage_id": storage["id"], "default_author_id": author.id})

    response = api.get(f"{BASE}/")

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["count"] == 2
    assert [s["id"] for s in data["import_sessions"]] == [second["id"], first["id"]]
    assert [s["images_count"] for s in data["import_sessions"]] == [0, 0]


def test_it_lists_the_sessions_of_one_storage(api, make_storage):
    one, two = make_storage("One"), make_storage("Two")
    mine = create(api, {"title": "Mine", "file_storage_id": one["id"]})
    create(api, {"title": "Theirs", "file_storage_id": two["id"]})

    data = api.get(f"{BASE}/?storage_uuid={one['storage_uuid']}").json()["data"]

    assert [s["id"] for s in data["import_sessions"]] == [mine["id"]]


def test_it_gets_one_session(api, storage, author):
    made = create(api, {"title": "One", "file_storage_id": storage["id"], "default_author_id": author.id})

    response = api.get(f"{BASE}/{made['id']}")

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data == made


def test_it_answers_404_for_an_unknown_session(api, storage):
    made = create(api, {"title": "Known", "file_storage_id": storage["id"]})

    assert_error(api.get(f"{BASE}/{made['id'] + 1000}"), 404, "not_found")


def test_it_needs_a_storage(api, storage):
    error = assert_refused(api, {"title": "Nowhere"}, 422, "validation_error")

    assert set(error["details"]["fields"]) == {"file_storage_id", "file_storage_uuid"}


def test_it_refuses_an_unknown_storage_id(api, storage):
    assert_refused(api, {"title": "Lost", "file_storage_id": storage["id"] + 1000}, 404, "not_found")


def test_it_refuses_an_unknown_storage_uuid(api, storage):
    assert_refused(
        api, {"title": "Lost", "file_storage_uuid": "00000000-0000-4000-8000-000000000000"}, 404, "not_found"
    )


def test_it_refuses_an_id_and_uuid_of_different_storages(api, make_storage):
    one, two = make_storage("One"), make_storage("Two")

    assert_refused(
        api,
        {"title": "Ambiguous", "file_storage_id": one["id"], "file_storage_uuid": two["storage_uuid"]},
        404,
        "not_found",
    )


def test_it_refuses_an_unknown_author(api, storage, author):
    assert_refused(
        api,
        {"title": "Anonymous", "file_storage_id": storage["id"], "default_author_id": author.id + 1000},
        404,
        "not_found",
    )


def test_it_refuses_a_deactivated_storage(api, storage):
    assert api.post(f"/api/v1/file-storage/{storage['storage_uuid']}/deactivate").status_code == 200

    assert_refused(api, {"title": "Too late", "file_storage_id": storage["id"]}, 409, "storage_inactive")
    assert_refused(api, {"title": "Too late", "file_storage_uuid": storage["storage_uuid"]}, 409, "storage_inactive")
    assert FileStorage.objects.get(pk=storage["id"]).is_active is False


@pytest.mark.parametrize("title", ["", "   "])
def test_it_refuses_an_empty_title(api, storage, title):
    assert_refused(api, {"title": title, "file_storage_id": storage["id"]}, 422, "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"file_storage_id": "STORAGE"}, id="title-missing"),
        pytest.param({"title": "X", "file_storage_id": "five"}, id="id-not-a-number"),
        pytest.param({"title": "X", "file_storage_uuid": "not-a-uuid"}, id="uuid-malformed"),
        pytest.param({"title": "X", "file_storage_id": "STORAGE", "source_path": "/etc"}, id="unknown-field"),
        pytest.param({"title": ["X"], "file_storage_id": "STORAGE"}, id="title-a-list"),
    ],
)
def test_it_refuses_a_body_that_does_not_validate(api, storage, body):
    body = {key: (storage["id"] if value == "STORAGE" else value) for key, value in body.items()}

    assert_refused(api, body, 422, "validation_error")


def test_it_refuses_malformed_json(api, storage):
    count = ImportSession.objects.count()

    response = api.post(f"{BASE}/create", raw='{"title": "X", "file_storage_id": ')

    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)
    assert ImportSession.objects.count() == count


def test_it_pages_through_sessions_in_order(api, storage):
    made = [create(api, {"title": f"Session {n}", "file_storage_id": storage["id"]}) for n in range(3)]

    pages = [api.get(f"{BASE}/?page={page}&page_size=2").json()["data"] for page in (1, 2)]

    assert [p["pages"] for p in pages] == [2, 2]
    assert [s["id"] for p in pages for s in p["import_sessions"]] == [m["id"] for m in reversed(made)]
