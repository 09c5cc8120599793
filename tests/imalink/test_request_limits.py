"""Request size: a body over IMALINK_MAX_REQUEST_BYTES answers 413 on every route (the API in the error shape, pages
and the admin in plain text), whether it declares its length or comes chunked; a body just under it is processed.
"""

import json
import os
import subprocess
import sys

import pytest
import requests

from imports.models import Author
from tests.conftest import REPO, assert_error

pytestmark = pytest.mark.django_db

DEFAULT_LIMIT = 2_621_440  # 2.5 MB, Django's own default


def oversized_json(limit: int = DEFAULT_LIMIT, **fields) -> str:
    """A real JSON object, one byte-heavy field making it larger than the limit."""
    return json.dumps({**fields, "description": "x" * (limit + 1000)})


def padded_json(body: dict, size: int) -> str:
    """This JSON object, padded with whitespace (still valid JSON) to exactly size bytes."""
    text = json.dumps(body)
    return text + " " * (size - len(text))


def assert_too_large(response, limit: int = DEFAULT_LIMIT) -> None:
    error = assert_error(response, 413, "request_too_large")
    assert error["details"] == {"limit_bytes": limit}
    assert f"{limit:,}" in error["message"]


def test_an_oversized_body_answers_413_in_the_error_shape_on_api_routes(api, make_storage, allowed_root):
    storage = make_storage("Target")
    author = api.post("/api/v1/authors/", {"name": "Ann"}).json()["data"]
    for method, path in [
        ("post", "/api/v1/file-storage/create"),
        ("put", f"/api/v1/file-storage/{storage['storage_uuid']}"),
        ("post", "/api/v1/import-sessions/create"),
        ("post", "/api/v1/authors/"),
        ("put", f"/api/v1/authors/{author['id']}"),
        ("post", f"/api/v1/storage-index/validate/{storage['storage_uuid']}"),
    ]:
        response = getattr(api, method)(path, raw=oversized_json(name="Too big", base_path=str(allowed_root)))
        assert_too_large(response)
    assert Author.objects.count() == 1


def test_an_anonymous_oversized_body_is_refused_before_anything_else(client):
    response = client.post("/api/v1/authors/", oversized_json(), content_type="application/json")
    assert_too_large(response)
    # The refusal still carries the security headers every other answer has.
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"


def test_an_oversized_form_answers_a_plain_413_on_pages_and_the_admin(client, admin_user):
    client.force_login(admin_user)
    form = {"display_name": "x" * (DEFAULT_LIMIT + 10), "base_path": "/nowhere"}
    for path in ["/storages/new/", "/accounts/login/", "/admin/login/"]:
        response = client.post(path, form)
        assert response.status_code == 413, path
        assert response["Content-Type"].startswith("text/plain")
        assert f"{DEFAULT_LIMIT:,} bytes" in response.content.decode()


def test_a_body_just_under_the_limit_is_processed(api):
    response = api.post("/api/v1/authors/", raw=padded_json({"name": "Exactly at the limit"}, DEFAULT_LIMIT))
    assert response.status_code == 200, response.content[:300]
    assert Author.objects.filter(name="Exactly at the limit").exists()
    assert_too_large(api.post("/api/v1/authors/", raw=padded_json({"name": "One over"}, DEFAULT_LIMIT + 1)))


def test_the_setting_changes_the_limit(api, settings):
    settings.IMALINK_MAX_REQUEST_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    assert api.post("/api/v1/authors/", raw=padded_json({"name": "Small"}, 4096)).status_code == 200
    assert_too_large(api.post("/api/v1/authors/", raw=padded_json({"name": "Small"}, 4097)), 4096)


def test_djangos_own_size_check_answers_413_too(api, client, admin_user, settings):
    # Should Django's limit ever be below ours, its RequestDataTooBig (raised while a view reads the body) is a 413 too.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    assert_too_large(api.post("/api/v1/authors/", raw=padded_json({"name": "Big"}, 8000)), 4096)
    client.force_login(admin_user)
    response = client.post("/storages/new/", {"display_name": "x" * 8000, "base_path": "/nowhere"})
    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/plain")


def probe(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    base.update(IMALINK_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="imalink.settings", **env)
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.IMALINK_MAX_REQUEST_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=base, capture_output=True, text=True, timeout=60)


def test_the_limit_comes_from_the_environment(tmp_path):
    assert probe(tmp_path).stdout.split() == [str(DEFAULT_LIMIT)] * 2
    assert probe(tmp_path, IMALINK_MAX_REQUEST_BYTES="10485760").stdout.split() == ["10485760"] * 2
    refused = probe(tmp_path, IMALINK_MAX_REQUEST_BYTES="2.5MB")
    assert refused.returncode != 0
    assert "IMALINK_MAX_REQUEST_BYTES='2.5MB' is not a whole number" in refused.stderr


def chunks(data: bytes, size: int = 64 * 1024):
    """A generator body: requests sends it with Transfer-Encoding: chunked and no Content-Length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.redis
@pytest.mark.live_server_http
def test_a_chunked_body_without_content_length_is_limited_too(imalink_server, api_token):
    session = requests.Session()
    session.trust_env = False
    session.headers.update({"Authorization": f"Bearer {api_token}", "Content-Type": "application/json"})
    url = f"{imalink_server.url}/api/v1/authors/"

    over = session.post(url, data=chunks(oversized_json(name="Chunked").encode()), timeout=60)
    assert over.request.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in over.request.headers
    assert_too_large(over)

    under = session.post(url, data=chunks(padded_json({"name": "Chunked, under"}, DEFAULT_LIMIT).encode()), timeout=60)
    assert under.status_code == 200, under.text[:300]
    assert under.json()["data"]["name"] == "Chunked, under"

    page = session.post(
        f"{imalink_server.url}/accounts/login/",
        data=chunks(b"username=" + b"x" * (DEFAULT_LIMIT + 1)),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=60,
    )
    assert page.status_code == 413
    assert page.headers["Content-Type"].startswith("text/plain")
