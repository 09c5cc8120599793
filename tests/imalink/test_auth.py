"""API access: a bearer token or a logged-in session (with CSRF on unsafe methods); anything else is 401."""

import re

import pytest
from django.core.management import call_command
from django.test import Client

from imalink.models import ApiToken, hash_token
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db


def all_api_operations():
    """Every (method, path) of the OpenAPI schema, with path parameters filled in."""
    from imalink.api import api

    schema = api.get_openapi_schema()
    for path, operations in schema["paths"].items():
        concrete = re.sub(r"\{[^}]*uuid[^}]*\}", "00000000-0000-0000-0000-000000000000", path)
        concrete = re.sub(r"\{[^}]+\}", "1", concrete)
        for method in operations:
            yield method, concrete


def test_the_schema_lists_the_seed_routes():
    operations = set(all_api_operations())
    for expected in [
        ("post", "/api/v1/file-storage/create"),
        ("get", "/api/v1/file-storage/"),
        ("post", "/api/v1/file-storage/00000000-0000-0000-0000-000000000000/accessibility"),
        ("get", "/api/v1/file-storage/00000000-0000-0000-0000-000000000000/statistics"),
        ("post", "/api/v1/import-sessions/create"),
        ("get", "/api/v1/import-sessions/1"),
    ]:
        assert expected in operations


def test_every_route_refuses_an_anonymous_call(client):
    operations = list(all_api_operations())
    assert len(operations) > 15
    for method, path in operations:
        response = getattr(client, method)(path, content_type="application/json")
        assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize("header", ["Bearer ilk_not-a-real-token", "Bearer ", "Token abc", "Basic YWRtaW46YWRtaW4="])
def test_a_wrong_token_is_refused(client, admin_user, header):
    assert_error(client.get("/api/v1/file-storage/", headers={"Authorization": header}), 401, "unauthorized")


def test_a_revoked_token_is_refused(client, admin_user):
    token, plain = ApiToken.issue(user=admin_user)
    assert client.get("/api/v1/file-storage/", headers={"Authorization": f"Bearer {plain}"}).status_code == 200
    token.revoke()
    assert_error(client.get("/api/v1/file-storage/", headers={"Authorization": f"Bearer {plain}"}), 401)


def test_a_token_of_an_inactive_user_is_refused(client, admin_user):
    _, plain = ApiToken.issue(user=admin_user)
    admin_user.is_active = False
    admin_user.save()
    assert_error(client.get("/api/v1/file-storage/", headers={"Authorization": f"Bearer {plain}"}), 401)


def test_tokens_are_stored_hashed(admin_user):
    token, plain = ApiToken.issue(user=admin_user)
    token.refresh_from_db()
    assert token.digest == hash_token(plain) and plain not in token.digest
    assert not ApiToken.objects.filter(digest=plain).exists()
    assert token.hint == plain[:10]


def test_create_api_token_prints_a_working_token(client, admin_user, capsys):
    call_command("create_api_token", "admin")
    plain = capsys.readouterr().out.strip()
    assert plain.startswith("ilk_")
    assert client.get("/api/v1/file-storage/", headers={"Authorization": f"Bearer {plain}"}).status_code == 200


def test_create_api_token_refuses_an_unknown_user():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_api_token", "ghost")


def test_a_logged_in_session_can_read(admin_user):
    browser = Client()
    browser.force_login(admin_user)
    assert browser.get("/api/v1/file-storage/").status_code == 200


def test_a_session_post_without_csrf_is_refused_and_changes_nothing(admin_user, allowed_root):
    from storages.models import FileStorage

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    body = {"base_path": str(allowed_root), "display_name": "x"}
    assert_error(browser.post("/api/v1/file-storage/create", body, content_type="application/json"), 403, "forbidden")
    assert FileStorage.objects.count() == 0 and list(allowed_root.iterdir()) == []


def test_a_session_post_with_csrf_works(admin_user, allowed_root):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    browser.get("/admin/")  # sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    body = {"base_path": str(allowed_root), "display_name": "x"}
    response = browser.post(
        "/api/v1/file-storage/create", body, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert response.status_code == 200, response.content


def test_a_token_request_needs_no_csrf(api, allowed_root):
    response = api.post("/api/v1/file-storage/create", {"base_path": str(allowed_root), "display_name": "x"})
    assert response.status_code == 200


def test_an_unknown_api_path_gets_the_error_shape(api):
    assert_error(api.get("/api/v1/no/such/route"), 404, "not_found")


def test_the_api_docs_are_served(client, admin_user):
    client.force_login(admin_user)  # staff only (tests/imalink/test_api_document.py)
    assert client.get("/api/v1/docs").status_code == 200
    schema = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/file-storage/create" in schema["paths"]


def test_a_database_outage_answers_503_in_the_error_shape(api, monkeypatch):
    from django.db import OperationalError

    from storages import api as storages_api

    def unreachable(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(storages_api.FileStorage.objects, "all", unreachable)
    error = assert_error(api.get("/api/v1/file-storage/"), 503, "service_unavailable")
    assert "connection refused" not in error["message"]
