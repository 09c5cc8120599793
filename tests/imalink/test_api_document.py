"""The OpenAPI document: small, built once per process, every operation's errors declared as 4XX and 5XX in the
one error shape, and shown (with its docs page) to staff only, by token or session.
"""

import json

import ninja.main
import pytest

from imalink.api import api as ninja_api
from imalink.models import ApiToken
from imalink.schemas import ErrorResponse
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

DOCUMENT = "/api/v1/openapi.json"
DOCS = "/api/v1/docs"
METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture
def document(api):
    response = api.get(DOCUMENT)
    assert response.status_code == 200, response.content
    return response


@pytest.fixture
def clerk(django_user_model):
    """An active account without staff rights."""
    return django_user_model.objects.create_user("clerk", "", "clerk-password-for-tests")


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def test_the_document_is_under_200_kb(document):
    assert len(document.content) < 200 * 1024, f"{len(document.content):,} bytes"


def test_every_operation_declares_4xx_and_5xx_in_the_error_shape(document):
    schema = document.json()
    listed = list(operations(schema))
    assert len(listed) > 30
    for name, operation in listed:
        for status in ("4XX", "5XX"):
            content = operation["responses"].get(status, {}).get("content", {})
            assert content == {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}, name
        # No single error code is listed beside the ranges: that is what made the document 1.1 MB.
        assert not [s for s in operation["responses"] if s[0] in "45" and s not in ("4XX", "5XX")], name
    components = schema["components"]["schemas"]
    assert components["ErrorResponse"]["required"] == ["error"]
    assert components["ErrorResponse"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    assert set(components["ErrorDetail"]["required"]) == {"code", "message"}
    assert set(ErrorResponse.model_fields) == set(components["ErrorResponse"]["properties"])


def test_the_routes_real_answers_are_still_documented(document):
    schema = document.json()
    ops = dict(operations(schema))
    for name, operation in ops.items():
        assert "200" in operation["responses"], name
    created = ops["POST /api/v1/file-storage/create"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert created == {"$ref": "#/components/schemas/StorageOutResponse"}
    accepted = ops["POST /api/v1/health/check"]["responses"]["202"]["content"]["application/json"]["schema"]
    assert accepted == {"$ref": "#/components/schemas/JobAcceptedResponse"}
    envelope = schema["components"]["schemas"]["JobAcceptedResponse"]
    assert set(envelope["properties"]) == {"success", "data"}
    preview = ops["GET /api/v1/photos/{hothash}/hotpreview"]["responses"]["200"]["content"]
    assert list(preview) == ["image/jpeg"]


def test_the_document_is_built_once_per_process(api, monkeypatch):
    real_builder, builds = ninja.main.get_schema, []

    def counting_builder(*args, **kwargs):
        builds.append(1)
        return real_builder(*args, **kwargs)

    monkeypatch.setattr(ninja.main, "get_schema", counting_builder)
    monkeypatch.setattr(ninja_api, "_documents", {})  # as in a fresh process
    first = api.get(DOCUMENT)
    second = api.get(DOCUMENT)
    assert api.get(DOCS).status_code == 200
    assert (first.status_code, second.status_code) == (200, 200)
    assert json.loads(first.content) == json.loads(second.content)
    assert len(builds) == 1


def test_an_anonymous_client_gets_401_in_the_error_shape(client):
    assert_error(client.get(DOCUMENT), 401, "unauthorized")


def test_an_anonymous_browser_is_sent_to_log_in_for_the_docs_page(client):
    response = client.get(DOCS)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/api/v1/docs")


def test_a_staff_token_gets_the_document(client, api_token):
    response = client.get(DOCUMENT, headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "ImaLink API"


def test_a_staff_session_gets_the_document_and_the_docs_page(client, admin_user):
    client.force_login(admin_user)
    assert client.get(DOCUMENT).status_code == 200
    page = client.get(DOCS)
    assert page.status_code == 200
    assert b"swagger" in page.content.lower()


def test_a_wrong_token_gets_401(client):
    assert_error(client.get(DOCUMENT, headers={"Authorization": "Bearer ilk_not-a-real-token"}), 401, "unauthorized")


def test_a_non_staff_token_gets_403(client, clerk):
    plain = ApiToken.issue(user=clerk, name="clerk")[1]
    error = assert_error(client.get(DOCUMENT, headers={"Authorization": f"Bearer {plain}"}), 403, "forbidden")
    assert "staff" in error["message"]


def test_a_non_staff_session_gets_403(client, clerk):
    client.force_login(clerk)
    assert_error(client.get(DOCUMENT), 403, "forbidden")
    assert client.get(DOCS).status_code == 403


def test_the_web_server_builds_the_document_as_it_starts(monkeypatch):
    import importlib

    import imalink.wsgi

    monkeypatch.setattr(ninja_api, "_documents", {})
    importlib.reload(imalink.wsgi)  # what each gunicorn worker runs as it starts
    ((document, served),) = ninja_api._documents.values()
    assert document is ninja_api.get_openapi_schema(path_params={})
    assert json.loads(served) == json.loads(json.dumps(document))
