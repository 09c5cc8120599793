"""Password reset by e-mail is off, with its pages answering 404 and no mail sent,
unless a mail server is configured."""

import os
import re
import subprocess
import sys

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tests.conftest import REPO

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann(django_user_model):
    return django_user_model.objects.create_user(
        "ann", email="ann@example.org", password="the-old-password-of-ann", is_staff=True
    )


def reset_routes(user):
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return [
        "/accounts/password_reset/",
        "/accounts/password_reset/done/",
        f"/accounts/reset/{uid}/{default_token_generator.make_token(user)}/",
        f"/accounts/reset/{uid}/set-password/",
        "/accounts/reset/done/",
    ]


def post_form(client: Client, path: str, data: dict):
    """GET the page (for its CSRF cookie) and POST the form, as a browser does."""
    client.get(path)
    return client.post(path, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


def test_without_mail_every_reset_route_answers_404_and_sends_nothing(ann, settings):
    settings.IMALINK_MAIL_CONFIGURED = False
    client = Client()
    for path in reset_routes(ann):
        assert client.get(path).status_code == 404, path
        assert (
            client.post(
                path, {"email": ann.email, "new_password1": "x-new-pass-42", "new_password2": "x-new-pass-42"}
            ).status_code
            == 404
        ), path
    assert mail.outbox == []
    ann.refresh_from_db()
    assert ann.check_password("the-old-password-of-ann")


def test_without_mail_the_login_page_offers_no_reset(settings):
    settings.IMALINK_MAIL_CONFIGURED = False
    page = Client().get("/accounts/login/").content.decode()
    assert "Forgot your password?" not in page and "/accounts/password_reset/" not in page


def test_with_mail_the_reset_works_end_to_end(ann, settings):
    settings.IMALINK_MAIL_CONFIGURED = True
    client = Client(enforce_csrf_checks=True)
    login_page = client.get("/accounts/login/").content.decode()
    assert 'href="/accounts/password_reset/">Forgot your password?</a>' in login_page

    response = post_form(client, "/accounts/password_reset/", {"email": ann.email})
    assert response.status_code == 302 and response["Location"] == "/accounts/password_reset/done/"
    assert client.get(response["Location"]).status_code == 200
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [ann.email]

    link = re.search(r"http://testserver(/accounts/reset/\S+/\S+/)", mail.outbox[0].body).group(1)
    response = client.get(link)
    assert response.status_code == 302  # Django swaps the token into the session and redirects to set-password
    response = post_form(
        client, response["Location"], {"new_password1": "a-brand-new-pass-77", "new_password2": "a-brand-new-pass-77"}
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/reset/done/"
    assert client.get("/accounts/reset/done/").status_code == 200
    ann.refresh_from_db()
    assert ann.check_password("a-brand-new-pass-77")


PROBE = "import django; django.setup(); from django.conf import settings; print(settings.IMALINK_MAIL_CONFIGURED)"


@pytest.mark.database_independent
def test_mail_counts_as_configured_when_email_host_is_set(tmp_path):
    base = {k: v for k, v in os.environ.items() if k not in ("EMAIL_HOST", "DATABASE_URL", "REDIS_URL")}
    base.update(IMALINK_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="imalink.settings")

    def probe(**env):
        result = subprocess.run(
            [sys.executable, "-c", PROBE], cwd=REPO, env={**base, **env}, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert probe() == "False"
    assert probe(EMAIL_HOST="") == "False"
    assert probe(EMAIL_HOST="smtp.example.org") == "True"
