"""Login throttling (django-axes): too many failures for one username from one address lock that pair out.

Every attempt goes through the real login forms with Django's test client and CSRF checks on.
"""

import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.test import Client

from tests.conftest import REPO

pytestmark = pytest.mark.django_db

PASSWORD = "the-right-password-for-ann"
USER_LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"


@pytest.fixture
def ann(django_user_model):
    return django_user_model.objects.create_user("ann", password=PASSWORD, is_staff=True)


def browser() -> Client:
    return Client(enforce_csrf_checks=True)


def log_in(client: Client, path: str, username: str, password: str, **extra):
    """GET the form (for its CSRF cookie), then POST it as a browser does."""
    assert client.get(path, **extra).status_code == 200
    data = {"username": username, "password": password, "csrfmiddlewaretoken": client.cookies["csrftoken"].value}
    return client.post(path, data, **extra)


def fail(client: Client, path: str, username: str, times: int, **extra):
    for _ in range(times):
        response = log_in(client, path, username, "not-the-password", **extra)
    return response


def assert_locked_out(response, username="ann"):
    assert response.status_code == 429, response.content
    page = response.content.decode()
    assert "Too many failed logins" in page and "too many failed login attempts" in page
    assert "Try again in 15 minutes" in page
    assert "Access attempts" in page and f"manage.py axes_reset_username {username}" in page
    assert 'action="/accounts/login/"' not in page  # the lockout page, not the login form again


def test_the_limit_locks_out_even_the_right_password(ann, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    client = browser()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = log_in(client, USER_LOGIN, "ann", "not-the-password")
        assert response.status_code == 200 and "didn't match" in response.content.decode()
    assert_locked_out(log_in(client, USER_LOGIN, "ann", "not-the-password"))
    assert_locked_out(log_in(client, USER_LOGIN, "ann", PASSWORD))
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302  # still not logged in


def test_another_username_or_another_address_is_not_locked(ann, django_user_model, settings):
    django_user_model.objects.create_user("bob", password="bobs-own-password-123", is_staff=True)
    fail(browser(), USER_LOGIN, "ann", settings.AXES_FAILURE_LIMIT)
    assert_locked_out(log_in(browser(), USER_LOGIN, "ann", PASSWORD))

    response = log_in(browser(), USER_LOGIN, "bob", "bobs-own-password-123")
    assert response.status_code == 302 and response["Location"] == "/"
    elsewhere = browser()
    response = log_in(elsewhere, USER_LOGIN, "ann", PASSWORD, REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 302 and elsewhere.get("/").status_code == 200


def test_an_admin_lifts_the_lockout_in_the_axes_admin(ann, admin_user, settings):
    from axes.models import AccessAttempt

    fail(browser(), USER_LOGIN, "ann", settings.AXES_FAILURE_LIMIT)
    assert_locked_out(log_in(browser(), USER_LOGIN, "ann", PASSWORD))

    staff = browser()
    staff.force_login(admin_user)
    changelist = "/admin/axes/accessattempt/"
    page = staff.get(changelist)
    assert page.status_code == 200 and "ann" in page.content.decode()
    attempts = list(AccessAttempt.objects.filter(username="ann").values_list("pk", flat=True))
    assert attempts
    response = staff.post(
        changelist,
        {
            "action": "delete_selected",
            "_selected_action": attempts,
            "post": "yes",
            "csrfmiddlewaretoken": staff.cookies["csrftoken"].value,
        },
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(username="ann").exists()

    client = browser()
    assert log_in(client, USER_LOGIN, "ann", PASSWORD).status_code == 302
    assert client.get("/").status_code == 200


def test_an_admin_lifts_the_lockout_with_the_command(ann, settings):
    fail(browser(), USER_LOGIN, "ann", settings.AXES_FAILURE_LIMIT)
    assert_locked_out(log_in(browser(), USER_LOGIN, "ann", PASSWORD))
    call_command("axes_reset_username", "ann")
    assert log_in(browser(), USER_LOGIN, "ann", PASSWORD).status_code == 302


def test_a_success_resets_the_count(ann, settings):
    client = browser()
    fail(client, USER_LOGIN, "ann", settings.AXES_FAILURE_LIMIT - 1)
    assert log_in(client, USER_LOGIN, "ann", PASSWORD).status_code == 302
    client = browser()
    response = fail(client, USER_LOGIN, "ann", settings.AXES_FAILURE_LIMIT - 1)
    assert response.status_code == 200  # 2 × (limit - 1) failures, but a success between them
    assert log_in(client, USER_LOGIN, "ann", PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_too(ann, settings):
    client = browser()
    assert fail(client, ADMIN_LOGIN, "ann", settings.AXES_FAILURE_LIMIT - 1).status_code == 200
    assert_locked_out(log_in(client, ADMIN_LOGIN, "ann", "not-the-password"))
    assert_locked_out(log_in(client, ADMIN_LOGIN, "ann", PASSWORD))
    assert client.get("/admin/").status_code == 302
    # One count for both doors: the user's login page refuses ann from here as well.
    assert_locked_out(log_in(browser(), USER_LOGIN, "ann", PASSWORD))


def test_failures_on_both_doors_add_up(ann, settings):
    half = settings.AXES_FAILURE_LIMIT // 2
    fail(browser(), ADMIN_LOGIN, "ann", half)
    assert_locked_out(fail(browser(), USER_LOGIN, "ann", settings.AXES_FAILURE_LIMIT - half))


PROBE = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME)"
)


def probe(tmp_path, **env):
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("IMALINK_LOGIN_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    base.update(IMALINK_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="imalink.settings", **env)
    return subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=base, capture_output=True, text=True, timeout=60)


@pytest.mark.database_independent
def test_the_policy_comes_from_the_environment(tmp_path):
    assert probe(tmp_path).stdout.split() == ["5", "0.25"]  # 5 failures, 15 minutes (axes reads hours)
    assert probe(tmp_path, IMALINK_LOGIN_FAILURE_LIMIT="3", IMALINK_LOGIN_COOLOFF_MINUTES="60").stdout.split() == [
        "3",
        "1.0",
    ]
    bad = probe(tmp_path, IMALINK_LOGIN_FAILURE_LIMIT="many")
    assert bad.returncode != 0 and "IMALINK_LOGIN_FAILURE_LIMIT='many' is not a whole number" in bad.stderr
    bad = probe(tmp_path, IMALINK_LOGIN_COOLOFF_MINUTES="0")
    assert bad.returncode != 0 and "IMALINK_LOGIN_COOLOFF_MINUTES='0' must be at least 1" in bad.stderr
