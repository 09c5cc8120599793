"""Who gets in: an auth matrix over every API route and every page, CSRF, hashed tokens, secrets kept out of
logs and errors, and production settings that pass `manage.py check --deploy`.

Policy: ImaLink has no per-user permissions and every route reads or writes server paths, so only active
staff accounts may use the API and the pages; anyone else logged in gets 403.
"""

import logging
import re
import secrets
import string
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import IntConverter, SlugConverter, UUIDConverter

from imalink.models import ApiToken
from tests.conftest import REPO, assert_error, subprocess_env
from tests.imalink.test_auth import all_api_operations

pytestmark = pytest.mark.django_db

UNSAFE = {"post", "put", "patch", "delete"}
SKIPPED_PREFIXES = ("admin/", "api/", "accounts/", "static", "metrics")


def _page_urls(patterns=None, prefix=""):
    """Every page URL (named pattern) outside admin, API, accounts, static files and metrics."""
    patterns = get_resolver().url_patterns if patterns is None else patterns
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if route.startswith(SKIPPED_PREFIXES):
            continue
        if isinstance(entry, URLResolver):
            yield from _page_urls(entry.url_patterns, route)
        elif isinstance(entry, URLPattern) and entry.name:
            kwargs = {}
            for name, converter in getattr(entry.pattern, "converters", {}).items():
                if isinstance(converter, UUIDConverter):
                    kwargs[name] = "00000000-0000-0000-0000-000000000000"
                elif isinstance(converter, IntConverter):
                    kwargs[name] = 1
                elif isinstance(converter, SlugConverter):
                    kwargs[name] = "scan"
                else:
                    kwargs[name] = "x"
            yield reverse(entry.name, kwargs=kwargs)


def page_urls() -> list[str]:
    urls = sorted(set(_page_urls()))
    assert len(urls) >= 10, urls
    return urls


def api_operations() -> list[tuple[str, str]]:
    operations = list(all_api_operations())
    assert len(operations) > 15
    return operations


@pytest.fixture
def clerk(django_user_model):
    """An active account that is not staff."""
    return django_user_model.objects.create_user("clerk", "", "clerk-password-for-tests")


def _call(client, method, path, **headers):
    return getattr(client, method)(path, content_type="application/json", headers=headers)


def _csrf_client(user) -> tuple[Client, str]:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    browser.get(reverse("login"))  # sets the csrftoken cookie
    return browser, browser.cookies["csrftoken"].value


# --- the API ----------------------------------------------------------------------------------------


def test_every_api_route_refuses_anonymous_wrong_and_revoked_tokens(client, admin_user):
    token, plain = ApiToken.issue(user=admin_user)
    token.revoke()
    for method, path in api_operations():
        assert_error(_call(client, method, path), 401, "unauthorized")
        assert_error(_call(client, method, path, Authorization="Bearer ilk_wrong-token"), 401, "unauthorized")
        assert_error(_call(client, method, path, Authorization=f"Bearer {plain}"), 401, "unauthorized")


def test_every_api_route_refuses_a_non_staff_token_with_403(client, clerk):
    _, plain = ApiToken.issue(user=clerk)
    for method, path in api_operations():
        error = assert_error(_call(client, method, path, Authorization=f"Bearer {plain}"), 403, "forbidden")
        assert "staff" in error["message"], (method, path)


def test_every_api_route_refuses_a_non_staff_session_with_403(clerk):
    browser, csrf = _csrf_client(clerk)
    for method, path in api_operations():
        error = assert_error(_call(browser, method, path, **{"X-CSRFToken": csrf}), 403, "forbidden")
        assert "staff" in error["message"], (method, path)


def test_an_inactive_staff_session_is_unauthenticated(admin_user):
    browser = Client()
    browser.force_login(admin_user)
    admin_user.is_active = False
    admin_user.save()
    # Django's ModelBackend drops an inactive user from the session, so this is 401, not 403.
    assert_error(browser.get("/api/v1/file-storage/"), 401, "unauthorized")


def test_every_api_route_lets_staff_through(client, admin_user, allowed_root, settings):
    settings.IMALINK_SYNC_WAIT = 0
    _, plain = ApiToken.issue(user=admin_user)
    for method, path in api_operations():
        response = _call(client, method, path, Authorization=f"Bearer {plain}")
        assert response.status_code not in (401, 403), (method, path, response.content)
        assert response.status_code < 500, (method, path, response.content)


def test_a_staff_user_who_is_not_superuser_gets_in(client, django_user_model):
    staff = django_user_model.objects.create_user("keeper", "", "keeper-password-for-tests", is_staff=True)
    _, plain = ApiToken.issue(user=staff)
    assert client.get("/api/v1/file-storage/", headers={"Authorization": f"Bearer {plain}"}).status_code == 200


def test_every_unsafe_api_route_refuses_a_session_without_csrf(admin_user):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    unsafe = [(m, p) for m, p in api_operations() if m in UNSAFE]
    assert len(unsafe) > 8
    for method, path in unsafe:
        error = assert_error(_call(browser, method, path), 403, "forbidden")
        assert "CSRF" in error["message"], (method, path)


# --- the pages --------------------------------------------------------------------------------------


def test_every_page_sends_anonymous_visitors_to_the_login_page(client):
    login = reverse(settings.LOGIN_URL)
    for url in page_urls():
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code == 302, (method, url, response.status_code)
            assert response["Location"].startswith(f"{login}?next="), (url, response["Location"])


def test_every_page_refuses_a_logged_in_non_staff_account(clerk):
    browser = Client()
    browser.force_login(clerk)
    for url in page_urls():
        for method in ("get", "post"):
            response = getattr(browser, method)(url)
            assert response.status_code == 403, (method, url, response.status_code)


def test_every_page_lets_staff_through(admin_user):
    browser = Client()
    browser.force_login(admin_user)
    for url in page_urls():
        response = browser.get(url)
        assert response.status_code not in (401, 403) and response.status_code < 500, (url, response.status_code)
        assert not (response.status_code == 302 and "/accounts/login" in response["Location"]), url


# --- tokens and secrets -----------------------------------------------------------------------------


def test_the_plain_token_is_in_no_database_column(admin_user):
    _, plain = ApiToken.issue(user=admin_user, name="script")
    Client().get("/api/v1/file-storage/", headers={"Authorization": f"Bearer {plain}"})  # sets last_used_at
    rows = list(ApiToken.objects.values())
    assert rows
    for row in rows:
        for column, value in row.items():
            assert plain not in str(value), column
            assert plain[10:] not in str(value), column  # the hint keeps only the first characters


def test_tokens_appear_in_no_log_record_and_no_response(client, admin_user, caplog):
    _, plain = ApiToken.issue(user=admin_user)
    wrong = "ilk_" + secrets.token_urlsafe(32)
    caplog.set_level(logging.DEBUG)
    bodies = []
    for token in (wrong, plain):
        for method, path in [
            ("get", "/api/v1/file-storage/"),
            ("get", "/api/v1/file-storage/not-a-uuid"),
            ("post", "/api/v1/file-storage/create"),
            ("get", "/api/v1/no/such/route"),
        ]:
            bodies.append(_call(client, method, path, Authorization=f"Bearer {token}").content.decode())
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    for token in (wrong, plain):
        assert token not in logged
        assert all(token not in body for body in bodies)


def test_the_secret_key_is_in_no_error_response(client, api, monkeypatch):
    from storages import api as storages_api

    def leak(*args, **kwargs):
        raise RuntimeError(f"boom {settings.SECRET_KEY}")

    responses = [
        api.get("/api/v1/file-storage/00000000-0000-0000-0000-000000000000"),
        api.post("/api/v1/file-storage/create", raw="{not json"),
        api.get("/api/v1/no/such/route"),
        client.get("/api/v1/file-storage/"),
        client.get("/no/such/page/"),
    ]
    monkeypatch.setattr(storages_api.FileStorage.objects, "all", leak)
    responses.append(api.get("/api/v1/file-storage/"))
    assert responses[-1].status_code == 500
    for response in responses:
        assert settings.SECRET_KEY not in response.content.decode(errors="replace")


# --- production settings ----------------------------------------------------------------------------


def test_production_settings_pass_the_deploy_check(tmp_path):
    key = "".join(secrets.choice(string.ascii_letters + string.digits + "!@#%^&*(-_=+)") for _ in range(60))
    env = subprocess_env(
        tmp_path, DEBUG="false", IMALINK_HTTPS="true", SECRET_KEY=key, ALLOWED_HOSTS="photos.example.org"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"\(security\.W\d+\)", result.stdout + result.stderr)


def test_https_settings_are_off_by_default():
    assert settings.IMALINK_HTTPS is False
    assert not getattr(settings, "SECURE_SSL_REDIRECT", False)
