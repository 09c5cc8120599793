"""First start: the admin user is made once with a random password, and a broker is always found."""

import pytest

from imalink import first_run

pytestmark = pytest.mark.django_db


def test_the_admin_is_created_once_with_a_private_password_file(settings, tmp_path, django_user_model):
    settings.VAR_DIR = tmp_path
    password = first_run.ensure_admin_user()
    assert password and len(password) >= 20
    path = tmp_path / "admin_password"
    assert path.read_text().strip() == password
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    user = django_user_model.objects.get(username="admin")
    assert user.is_superuser and user.check_password(password)
    assert first_run.ensure_admin_user() is None
    assert path.read_text().strip() == password


def test_redis_is_the_broker_when_it_answers(settings, redis_available):
    settings.REDIS_URL = redis_available
    url, line = first_run.choose_broker(environ={})
    assert url == redis_available and "Redis" in line


def test_the_embedded_broker_is_used_when_no_redis_answers(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    url, line = first_run.choose_broker(environ={"REDIS_URL": settings.REDIS_URL})
    assert url == "filesystem://"
    assert "embedded filesystem broker" in line and "\n" not in line


def test_an_explicit_broker_url_wins(settings):
    url, _ = first_run.choose_broker(environ={"CELERY_BROKER_URL": "redis://elsewhere:6379/3"})
    assert url == "redis://elsewhere:6379/3"
