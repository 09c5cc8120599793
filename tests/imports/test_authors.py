"""/api/v1/authors/: creating, reading, changing and deleting authors, and keeping the ones still named."""

import pytest

from imports.models import Author, ImportSession
from storages.models import FileStorage
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

BASE = "/api/v1/authors"


def data_of(response):
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    return body["data"]


def test_it_creates_an_author(api):
    data = data_of(api.post(f"{BASE}/", {"name": "Kari Nordmann", "email": "kari@example.org"}))

    assert data["name"] == "Kari Nordmann"
    assert data["email"] == "kari@example.org"
    assert data["created_at"]
    author = Author.objects.get(pk=data["id"])
    assert (author.name, author.email) == ("Kari Nordmann", "kari@example.org")


def test_it_creates_an_author_without_email(api):
    data = data_of(api.post(f"{BASE}/", {"name": "No Mail"}))

    assert data["email"] == ""
    assert Author.objects.filter(pk=data["id"], email="").exists()


def test_it_lists_authors(api):
    Author.objects.create(name="Bjørn")
    Author.objects.create(name="Anne")

    data = data_of(api.get(f"{BASE}/"))

    assert data["count"] == 2
    assert [a["name"] for a in data["authors"]] == ["Anne", "Bjørn"]


def test_it_gets_an_author(api):
    author = Author.objects.create(name="Per", email="per@example.org")

    data = data_of(api.get(f"{BASE}/{author.id}"))

    assert (data["id"], data["name"], data["email"]) == (author.id, "Per", "per@example.org")


def test_it_changes_an_author(api):
    author = Author.objects.create(name="Old", email="old@example.org")

    data = data_of(api.put(f"{BASE}/{author.id}", {"name": "New", "email": "new@example.org"}))

    assert (data["name"], data["email"]) == ("New", "new@example.org")
    author.refresh_from_db()
    assert (author.name, author.email) == ("New", "new@example.org")


def test_it_changes_only_the_fields_sent(api):
    author = Author.objects.create(name="Keep", email="keep@example.org")

    data_of(api.put(f"{BASE}/{author.id}", {"name": "Renamed"}))

    author.refresh_from_db()
    assert (author.name, author.email) == ("Renamed", "keep@example.org")


def test_it_deletes_an_unused_author(api):
    author = Author.objects.create(name="Gone")

    data = data_of(api.delete(f"{BASE}/{author.id}"))

    assert data["id"] == author.id
    assert not Author.objects.filter(pk=author.id).exists()
    assert_error(api.get(f"{BASE}/{author.id}"), 404, "not_found")


def test_it_keeps_an_author_named_on_a_session(api, make_storage):
    storage = make_storage("Archive")
    author = Author.objects.create(name="In use")
    session = ImportSession.objects.create(
        title="Italy", file_storage=FileStorage.objects.get(pk=storage["id"]), default_author=author
    )

    assert_error(api.delete(f"{BASE}/{author.id}"), 409, "author_in_use")

    assert Author.objects.filter(pk=author.id).exists()
    session.refresh_from_db()
    assert session.default_author_id == author.id


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.org", "two@@example.org"])
def test_it_refuses_an_invalid_email(api, email):
    author = Author.objects.create(name="Valid", email="valid@example.org")

    assert_error(api.post(f"{BASE}/", {"name": "X", "email": email}), 422, "validation_error")
    assert_error(api.put(f"{BASE}/{author.id}", {"email": email}), 422, "validation_error")

    assert Author.objects.count() == 1
    author.refresh_from_db()
    assert author.email == "valid@example.org"


@pytest.mark.parametrize("body", [{"name": ""}, {"name": "   "}, {}, {"name": "X", "role": "admin"}, {"name": 5}])
def test_it_refuses_a_bad_author(api, body):
    assert_error(api.post(f"{BASE}/", body), 422, "validation_error")

    assert Author.objects.count() == 0


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_it_answers_404_for_an_unknown_author(api, method):
    author = Author.objects.create(name="Known")
    body = {"name": "X"} if method == "put" else None

    assert_error(getattr(api, method)(f"{BASE}/{author.id + 1000}", body=body), 404, "not_found")

    assert list(Author.objects.values_list("name", flat=True)) == ["Known"]
