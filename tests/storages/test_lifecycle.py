"""Listing, reading, renaming, deactivating and reactivating storages under /api/v1/file-storage/."""

import uuid

import pytest

from storages.models import FileStorage
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

BASE = "/api/v1/file-storage"


def test_it_lists_storages_with_the_seed_fields(api, make_storage):
    first, second = make_storage("Main SSD"), make_storage("Backup Drive")

    response = api.get(f"{BASE}/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    storages = body["data"]["storages"]
    assert body["data"]["count"] == 2
    assert [s["display_name"] for s in storages] == ["Main SSD", "Backup Drive"]
    assert [s["storage_uuid"] for s in storages] == [first["storage_uuid"], second["storage_uuid"]]
    for listed, made in zip(storages, (first, second)):
        assert listed["uuid"] == listed["storage_uuid"]
        assert listed["id"] == made["id"]
        assert listed["directory_name"] == made["directory_name"]


def test_it_lists_nothing_when_there_are_no_storages(api):
    response = api.get(f"{BASE}/")

    assert response.status_code == 200
    assert response.json()["data"] == {"storages": [], "count": 0}


def test_it_gets_one_storage(api, make_storage):
    made = make_storage("Main Photo Archive")

    response = api.get(f"{BASE}/{made['storage_uuid']}")

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["storage_uuid"] == made["storage_uuid"]
    assert data["display_name"] == "Main Photo Archive"
    assert data["full_path"] == made["full_path"]


def test_it_renames_and_describes_a_storage(api, make_storage):
    made = make_storage("Old name")

    response = api.put(
        f"{BASE}/{made['storage_uuid']}", {"display_name": "New name", "description": "Moved to the NAS"}
    )

    assert response.status_code == 200, response.content
    assert response.json()["data"]["display_name"] == "New name"
    storage = FileStorage.objects.get(storage_uuid=made["storage_uuid"])
    assert (storage.display_name, storage.description) == ("New name", "Moved to the NAS")
    assert storage.directory_name == made["directory_name"]
    assert api.get(f"{BASE}/{made['storage_uuid']}").json()["data"]["display_name"] == "New name"


def test_it_changes_only_the_fields_sent(api, make_storage):
    made = make_storage("Keep me")

    response = api.put(f"{BASE}/{made['storage_uuid']}", {"description": "Only this"})

    assert response.status_code == 200, response.content
    storage = FileStorage.objects.get(storage_uuid=made["storage_uuid"])
    assert (storage.display_name, storage.description) == ("Keep me", "Only this")


@pytest.mark.parametrize("name", ["", "   "])
def test_it_refuses_an_empty_display_name(api, make_storage, name):
    made = make_storage("Named")

    assert_error(api.put(f"{BASE}/{made['storage_uuid']}", {"display_name": name}), 422, "validation_error")

    assert FileStorage.objects.get(storage_uuid=made["storage_uuid"]).display_name == "Named"


def test_it_refuses_a_base_path_without_a_copy_of_the_storage(api, make_storage, allowed_root):
    # base_path changes only through the verified migration (tests/storages/test_migration.py).
    made = make_storage("Pinned")
    other = allowed_root / "other"
    other.mkdir()

    response = api.put(f"{BASE}/{made['storage_uuid']}", {"display_name": "Renamed", "base_path": str(other)})

    assert_error(response, 400, "migration_refused")
    storage = FileStorage.objects.get(storage_uuid=made["storage_uuid"])
    assert storage.base_path == made["base_path"] == str(allowed_root)
    assert storage.display_name == "Pinned"


def test_it_deactivates_and_reactivates_a_storage(api, make_storage):
    made = make_storage("Retiring")
    assert made["is_active"] is True

    response = api.post(f"{BASE}/{made['storage_uuid']}/deactivate")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["is_active"] is False
    assert FileStorage.objects.get(storage_uuid=made["storage_uuid"]).is_active is False
    assert api.get(f"{BASE}/{made['storage_uuid']}").json()["data"]["is_active"] is False

    response = api.post(f"{BASE}/{made['storage_uuid']}/reactivate")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["is_active"] is True
    assert FileStorage.objects.get(storage_uuid=made["storage_uuid"]).is_active is True


def test_it_lists_deactivated_storages_unless_asked_not_to(api, make_storage):
    kept, retired = make_storage("Kept"), make_storage("Retired")
    api.post(f"{BASE}/{retired['storage_uuid']}/deactivate")

    everything = api.get(f"{BASE}/").json()["data"]["storages"]
    active = api.get(f"{BASE}/?include_inactive=false").json()["data"]["storages"]

    assert {s["storage_uuid"] for s in everything} == {kept["storage_uuid"], retired["storage_uuid"]}
    assert [s["storage_uuid"] for s in active] == [kept["storage_uuid"]]


ROUTES = [
    ("get", "{}", None),
    ("put", "{}", {"display_name": "X"}),
    ("post", "{}/deactivate", None),
    ("post", "{}/reactivate", None),
    ("post", "{}/accessibility", None),
    ("get", "{}/statistics", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_it_answers_404_for_an_unknown_uuid(api, make_storage, method, path, body):
    make_storage("Someone else")
    unknown = uuid.uuid4()

    response = getattr(api, method)(f"{BASE}/{path.format(unknown)}", body=body)

    assert_error(response, 404, "not_found")
    assert FileStorage.objects.filter(storage_uuid=unknown).count() == 0


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
@pytest.mark.parametrize("bad", ["not-a-uuid", "1234", "%00"])
def test_it_answers_an_error_for_a_malformed_uuid(api, make_storage, method, path, body, bad):
    made = make_storage("Untouched")

    response = getattr(api, method)(f"{BASE}/{path.format(bad)}", body=body)

    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)
    storage = FileStorage.objects.get(storage_uuid=made["storage_uuid"])
    assert (storage.display_name, storage.is_active) == ("Untouched", True)
